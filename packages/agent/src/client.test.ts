import assert from 'node:assert/strict';
import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { hashDirectory, packDirectory } from '@lanes/archive';
import type { AgentReport, DesiredInstance } from '@lanes/spec';
import { waitFor } from '@lanes/testkit';
import { ControlPlaneClient, createPackageResolver, parseWatchMessage } from './client.js';
import { Supervisor } from './supervisor.js';
import { FAST_POLICY, desired, find, cleanupApps, killAllIn, silentLogger, writeTestApps } from './test-helpers.js';

const TOKEN = 'client-test-token';

/**
 * Plays the control plane's side of the data-plane protocol (docs/api.md): just enough to
 * drive the client — a watch stream we can cut, a report sink, and a package download.
 */
async function startControlPlaneStub(pkg: { hash: string; tgz: Buffer }) {
  const reports: AgentReport[] = [];
  const watchers = new Set<ServerResponse>();
  let desiredList: DesiredInstance[] = [];
  let revision = 1;
  let packageDownloads = 0;
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/v1/agent/watch' && url.searchParams.get('zone') === 'a') {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'desired', revision, instances: desiredList })}\n`);
      watchers.add(res);
      res.on('close', () => watchers.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/agent/report') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        reports.push(JSON.parse(body) as AgentReport);
        res.writeHead(204).end();
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === `/v1/agent/packages/${pkg.hash}`) {
      packageDownloads += 1;
      res.writeHead(200, { 'content-type': 'application/gzip' }).end(pkg.tgz);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    reports,
    watcherCount: () => watchers.size,
    downloads: () => packageDownloads,
    publish(list: DesiredInstance[]) {
      desiredList = list;
      revision += 1;
      for (const w of watchers) w.write(`${JSON.stringify({ type: 'desired', revision, instances: list })}\n`);
    },
    /** Cuts every watch stream, as a control-plane restart would. */
    cut() {
      for (const w of watchers) w.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test('parseWatchMessage rejects a desired list with an unsafe instance id, naming the field', () => {
  const bad = { ...desired('web-1', 'server.mjs'), id: '../etc' };
  assert.throws(() => parseWatchMessage(JSON.stringify({ type: 'desired', revision: 1, instances: [bad] })), /^InputError: instances\[0\]\.id: "\.\.\/etc" is not a valid instance id/);
  assert.deepEqual(parseWatchMessage('{"type":"ping","time":"t"}'), { type: 'ping', time: 't' });
});

test('the client follows the watch stream, downloads the package, reports, and rides out a cut stream', async () => {
  const apps = await writeTestApps();
  const tgz = await packDirectory(apps.dir);
  const hash = await hashDirectory(apps.dir);
  const cp = await startControlPlaneStub({ hash, tgz });
  const stateDir = path.join(apps.root, 'state');
  const sup = new Supervisor({
    zone: 'a',
    stateDir,
    logger: silentLogger,
    restartPolicy: FAST_POLICY,
    resolvePackage: createPackageResolver({ api: cp.url, token: TOKEN, stateDir, logger: silentLogger }),
  });
  const client = new ControlPlaneClient({ api: cp.url, token: TOKEN, zone: 'a', agentUrl: 'http://127.0.0.1:1', supervisor: sup, logger: silentLogger, reportIntervalMs: 200 });
  const pkgDir = path.join(stateDir, 'packages', hash);
  try {
    await sup.start();
    client.start();
    await waitFor('watch connected', () => cp.watcherCount() === 1);
    cp.publish([desired('web-1', 'server.mjs', { release: hash }), desired('web-2', 'server.mjs', { release: hash })]);
    await waitFor('reported two healthy instances', () => {
      const last = cp.reports.at(-1);
      return last !== undefined && last.instances.length === 2 && last.instances.every((i) => i.healthy) ? last : false;
    });
    assert.equal(cp.downloads(), 1, 'one download for two instances of the same release');
    assert.ok(existsSync(path.join(pkgDir, 'server.mjs')));
    assert.deepEqual(readdirSync(path.join(stateDir, 'packages')), [hash], 'no temporary directory left behind');
    const last = cp.reports.at(-1);
    assert.equal(last?.zone, 'a');
    assert.equal(last?.address, '127.0.0.1');
    assert.equal(last?.pid, process.pid);

    // The stream breaks (control plane restarting): instances keep running on the last list.
    const pids = sup.observed().map((o) => o.pid);
    cp.cut();
    await waitFor('watch reconnected', () => cp.watcherCount() === 1, { timeoutMs: 5000 });
    assert.deepEqual(sup.observed().map((o) => o.pid), pids);

    // A new list after the reconnect is applied: web-2 goes away.
    cp.publish([desired('web-1', 'server.mjs', { release: hash })]);
    await waitFor('web-2 removed', () => find(sup, 'web-2') === undefined);
    const heartbeats = cp.reports.length;
    await waitFor('heartbeat reports keep coming', () => cp.reports.length >= heartbeats + 2);
  } finally {
    await client.stop();
    await sup.shutdown({ stopInstances: true });
    await cp.close();
    killAllIn(pkgDir);
    await cleanupApps(apps);
  }
});
