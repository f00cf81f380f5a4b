import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { isAlive, killTree, sleep, tempDir, waitFor } from '@lanes/testkit';
import { echo, startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { READY_FILE, TABLE_FILE } from './persist.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const children: ChildProcess[] = [];
const closers: Array<() => Promise<void>> = [];
const agent = new Agent();

after(async () => {
  for (const c of children) if (c.pid !== undefined && isAlive(c.pid)) killTree(c.pid);
  for (const close of closers) await close();
  await agent.close();
});

function run(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = once(child, 'exit').then(([code]) => (typeof code === 'number' ? code : null));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function get(url: string, host: string, pathAndQuery = '/'): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const res = await agent.request({ origin: u.origin, path: pathAndQuery, method: 'GET', headers: { host } });
  return { status: res.statusCode, text: await res.body.text() };
}

describe('gateway process', () => {
  it('exits 2 with a one-line error for bad flags', async () => {
    const dir = await tempDir('lanes-gw-');
    const cases = [
      [['--state-dir', dir, '--http-port', 'abc'], /^gateway: --http-port: "abc" is not a port/],
      [['--http-port', '8080'], /^gateway: --state-dir: missing/],
      [['--state-dir', dir, '--api', 'http://127.0.0.1:1'], /^gateway: --token-file: missing/],
      [['--state-dir', dir, '--upstream-connect-timeout-ms', '5'], /^gateway: --upstream-connect-timeout-ms: 5 is out of range/],
      [['--state-dir', dir, '--bogus'], /^gateway: flags: Unknown option '--bogus'/],
    ] as const;
    const runs = cases.map(([args]) => run([...args]));
    for (const [i, [, re]] of cases.entries()) {
      const p = runs[i];
      assert.ok(p);
      assert.equal(await p.exited, 2, p.stderr());
      assert.match(p.stderr(), re);
      assert.equal(p.stderr().trim().split('\n').length, 1, p.stderr());
    }
  });

  it('serves its persisted table at once, follows the watch stream, and drains on SIGTERM', async () => {
    const dir = await tempDir('lanes-gw-');
    const up: TestUpstream = await startUpstream('w1', (req, res, self) => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('slow done'), 700);
        return;
      }
      echo(req, res, self);
    });
    closers.push(() => up.close());
    // Persisted by an earlier run; the control plane is not up yet.
    await writeFile(path.join(dir, TABLE_FILE), JSON.stringify(table(7, [vhost('old.acme.lanes.test', [{ endpoints: [up.endpoint] }])])));
    await writeFile(path.join(dir, 'node.token'), 'secret-node-token\n');

    let auth = '';
    const api = http.createServer((req, res) => {
      auth = req.headers.authorization ?? '';
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'table', table: table(8, [vhost('new.acme.lanes.test', [{ endpoints: [up.endpoint] }])]) })}\n`);
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    closers.push(async () => {
      api.closeAllConnections();
      api.close();
    });
    const apiAddr = api.address();
    assert.ok(apiAddr !== null && typeof apiAddr === 'object');

    const p = run(['--state-dir', dir, '--http-port', '0', '--api', `http://127.0.0.1:${apiAddr.port}`, '--token-file', path.join(dir, 'node.token')]);
    const ready = await waitFor('gateway.json', async () => JSON.parse(await readFile(path.join(dir, READY_FILE), 'utf8')) as { pid: number; url: string }, { timeoutMs: 10_000 });
    assert.equal(ready.pid, p.child.pid);
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    await waitFor('the watched table in force', async () => (await get(ready.url, 'new.acme.lanes.test')).status === 200, { timeoutMs: 10_000 });
    assert.equal(auth, 'Bearer secret-node-token');
    assert.equal((await get(ready.url, 'old.acme.lanes.test')).status, 404);

    const slow = get(ready.url, 'new.acme.lanes.test', '/slow');
    await sleep(150);
    p.child.kill('SIGTERM');
    const answer = await slow;
    assert.deepEqual(answer, { status: 200, text: 'slow done' });
    assert.equal(await p.exited, 0);
    await assert.rejects(readFile(path.join(dir, READY_FILE)), /ENOENT/);
    assert.equal(p.stdout().includes('secret-node-token'), false);
    const logs = p.stdout().trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    assert.ok(logs.some((l) => l.msg === 'persisted routing table loaded'));
    assert.ok(logs.some((l) => l.msg === 'gateway stopped'));
  });
});
