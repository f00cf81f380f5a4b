import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isAlive, sleep, waitFor } from '@lanes/testkit';
import { readProcStat } from './procfs.js';
import { desired, find, cleanupApps, makeSupervisor, processesIn, writeTestApps } from './test-helpers.js';
import type { Supervisor } from './supervisor.js';

async function getJson(url: string): Promise<Record<string, string>> {
  const res = await fetch(url);
  const body: unknown = await res.json();
  assert.ok(typeof body === 'object' && body !== null);
  return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, String(v)]));
}

async function withApps(fn: (apps: Awaited<ReturnType<typeof writeTestApps>>, sups: Supervisor[]) => Promise<void>): Promise<void> {
  const apps = await writeTestApps();
  const sups: Supervisor[] = [];
  try {
    await fn(apps, sups);
  } finally {
    for (const s of sups) await s.shutdown({ stopInstances: false });
    await cleanupApps(apps);
  }
}

test('starts every desired instance with the platform environment and reports it healthy', () =>
  withApps(async (apps, sups) => {
    const sup = makeSupervisor(apps, path.join(apps.root, 'state'));
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('web-1', 'server.mjs'), desired('web-2', 'server.mjs'), desired('web-3', 'server.mjs')]);
    const observed = await waitFor('three healthy instances', () => {
      const o = sup.observed();
      return o.length === 3 && o.every((i) => i.healthy && i.state === 'running') ? o : false;
    });
    const ports = new Set(observed.map((o) => o.port));
    assert.equal(ports.size, 3, `ports should differ: ${JSON.stringify([...ports])}`);
    const web1 = find(sup, 'web-1');
    assert.ok(web1 !== undefined && web1.port !== null);
    assert.equal(web1.address, '127.0.0.1');
    assert.equal(web1.restarts, 0);
    const env = await getJson(`http://127.0.0.1:${web1.port}/env`);
    assert.equal(env['PORT'], String(web1.port));
    assert.equal(env['HOST'], '127.0.0.1');
    assert.equal(env['LANES_TENANT'], 'acme');
    assert.equal(env['LANES_ENV'], 'prod');
    assert.equal(env['LANES_SERVICE'], 'web');
    assert.equal(env['LANES_INSTANCE'], 'web-1');
    assert.equal(env['LANES_ZONE'], 'a');
    assert.equal(env['LANES_RELEASE'], 'r1');
    assert.equal(env['GREETING'], 'hello');
    // Nothing of the supervisor's own environment leaks in beyond the minimal base.
    const allowed = new Set(['PATH', 'HOME', 'LANG', 'TZ', 'PORT', 'HOST', 'GREETING', 'LANES_TENANT', 'LANES_ENV', 'LANES_SERVICE', 'LANES_INSTANCE', 'LANES_ZONE', 'LANES_RELEASE']);
    const extra = Object.keys(env).filter((k) => !allowed.has(k));
    assert.deepEqual(extra, []);
    assert.equal(processesIn(apps.dir).length, 3);
    const out = readFileSync(path.join(apps.root, 'state', 'instances', 'web-1', 'stdout.log'), 'utf8');
    assert.match(out, /listening pid=\d+/);
  }));

test('an instance killed with SIGKILL is restarted with a new pid on the same port and restarts=1', () =>
  withApps(async (apps, sups) => {
    const sup = makeSupervisor(apps, path.join(apps.root, 'state'));
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('web-1', 'server.mjs')]);
    const first = await waitFor('healthy instance', () => {
      const o = find(sup, 'web-1');
      return o?.healthy ? o : false;
    });
    assert.ok(first.pid !== null);
    process.kill(first.pid, 'SIGKILL');
    const second = await waitFor('restarted instance', () => {
      const o = find(sup, 'web-1');
      return o !== undefined && o.pid !== null && o.pid !== first.pid && o.healthy ? o : false;
    });
    assert.equal(second.restarts, 1);
    assert.equal(second.port, first.port);
    assert.equal(second.lastExitSignal, 'SIGKILL');
    assert.equal(second.lastExitCode, null);
    assert.equal(isAlive(first.pid), false);
  }));

test('a crash-looping instance reaches crashloop and keeps retrying at the backoff, not at full speed', () =>
  withApps(async (apps, sups) => {
    const sup = makeSupervisor(apps, path.join(apps.root, 'state'));
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('crash-1', 'crash.mjs')]);
    const looping = await waitFor('crashloop state', () => {
      const o = find(sup, 'crash-1');
      return o?.state === 'crashloop' && o.pid === null ? o : false;
    });
    assert.match(looping.message, /^crash-looping: exited \d+ times within 60s \(last exit code 1\)/);
    assert.equal(looping.lastExitCode, 1);
    assert.equal(looping.healthy, false);
    const before = looping.restarts;
    await sleep(2000);
    const after = find(sup, 'crash-1');
    assert.ok(after !== undefined);
    // With 800 ms max backoff (±20 %) at most ~3 restarts fit in 2 s; full speed would be dozens.
    const grew = after.restarts - before;
    assert.ok(grew >= 1 && grew <= 4, `restarts grew by ${grew} in 2 s`);
    const err = readFileSync(path.join(apps.root, 'state', 'instances', 'crash-1', 'stderr.log'), 'utf8');
    assert.match(err, /crashing on purpose/);
  }));

test('a graceful stop sends SIGTERM and SIGKILLs the process group after stopGraceMs', () =>
  withApps(async (apps, sups) => {
    const sup = makeSupervisor(apps, path.join(apps.root, 'state'));
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('stub-1', 'stubborn.mjs', { stopGraceMs: 700 }), desired('web-1', 'server.mjs')]);
    const [stub, web] = await waitFor('both running', () => {
      const s = find(sup, 'stub-1');
      const w = find(sup, 'web-1');
      return s?.state === 'running' && s.pid !== null && w?.healthy && w.pid !== null ? [s, w] : false;
    });
    assert.ok(stub.pid !== null && web.pid !== null);
    await sleep(200); // let the stubborn app install its SIGTERM handler
    const t0 = Date.now();
    sup.setDesired([]);
    assert.equal(find(sup, 'stub-1')?.state, 'stopping');
    await waitFor('web stopped', () => !isAlive(web.pid ?? 0) || readProcStat(web.pid ?? 0)?.state === 'Z');
    assert.ok(Date.now() - t0 < 1500, 'a cooperative instance stops well within its 2 s grace');
    await waitFor('stubborn instance removed', () => find(sup, 'stub-1') === undefined);
    const took = Date.now() - t0;
    assert.ok(took >= 700, `SIGKILL came after ${took} ms, before the 700 ms grace`);
    assert.ok(took < 3000, `SIGKILL came only after ${took} ms`);
    const out = readFileSync(path.join(apps.root, 'state', 'instances', 'stub-1', 'stdout.log'), 'utf8');
    assert.match(out, /got SIGTERM, ignoring it/);
    assert.match(readFileSync(path.join(apps.root, 'state', 'instances', 'web-1', 'stdout.log'), 'utf8'), /got SIGTERM/);
    assert.deepEqual(sup.observed(), []);
    assert.deepEqual(processesIn(apps.dir), []);
  }));

test('a new supervisor on the same stateDir re-adopts running instances and notices when they die', () =>
  withApps(async (apps, sups) => {
    const stateDir = path.join(apps.root, 'state');
    const first = makeSupervisor(apps, stateDir);
    sups.push(first);
    await first.start();
    first.setDesired([desired('web-1', 'server.mjs'), desired('web-2', 'server.mjs')]);
    const before = await waitFor('two healthy', () => {
      const o = first.observed();
      return o.length === 2 && o.every((i) => i.healthy) ? o : false;
    });
    // The supervisor "dies": it stops watching but leaves its instances alone.
    await first.shutdown({ stopInstances: false });
    sups.length = 0;

    const second = makeSupervisor(apps, stateDir);
    sups.push(second);
    await second.start();
    const adopted = second.observed();
    assert.deepEqual(adopted.map((o) => [o.id, o.pid, o.port, o.healthy]).sort(), before.map((o) => [o.id, o.pid, o.port, true]).sort());
    await sleep(500);
    assert.equal(processesIn(apps.dir).length, 2, 'no second copies were started');
    // The control plane repeats the same list: nothing restarts.
    second.setDesired([desired('web-1', 'server.mjs'), desired('web-2', 'server.mjs')]);
    await sleep(300);
    assert.deepEqual(second.observed().map((o) => o.pid).sort(), before.map((o) => o.pid).sort());

    const victim = find(second, 'web-1');
    assert.ok(victim?.pid != null);
    process.kill(victim.pid, 'SIGKILL');
    const back = await waitFor('adopted instance restarted', () => {
      const o = find(second, 'web-1');
      return o !== undefined && o.pid !== null && o.pid !== victim.pid && o.healthy ? o : false;
    });
    assert.equal(back.restarts, 1);
    assert.equal(back.port, victim.port);
    assert.match(back.message, /healthy/);
    assert.equal(processesIn(apps.dir).length, 2);
  }));

test('a state entry whose process is gone is restarted at start', () =>
  withApps(async (apps, sups) => {
    const stateDir = path.join(apps.root, 'state');
    // A pid that existed and is gone now.
    const done = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(done.stdout.trim());
    const { mkdirSync } = await import('node:fs');
    mkdirSync(stateDir, { recursive: true });
    const d = desired('web-1', 'server.mjs');
    writeFileSync(
      path.join(stateDir, 'state.json'),
      JSON.stringify({
        version: 1,
        desired: [d],
        instances: [{ id: 'web-1', pid: deadPid, startTime: '1', port: null, restarts: 0, startedAt: new Date().toISOString(), healthy: true, everHealthy: true, lastExitCode: null, lastExitSignal: null, message: '', history: { backoffMs: 100, exitTimesMs: [] } }],
      }),
    );
    const sup = makeSupervisor(apps, stateDir);
    sups.push(sup);
    await sup.start();
    // Started again at once, without a crash-loop backoff.
    const gone = find(sup, 'web-1');
    assert.equal(gone?.state, 'starting');
    const back = await waitFor('stale instance restarted', () => {
      const o = find(sup, 'web-1');
      return o?.healthy && o.pid !== null ? o : false;
    });
    assert.notEqual(back.pid, deadPid);
    assert.equal(back.restarts, 1);
    assert.equal(processesIn(apps.dir).length, 1);
  }));

test('state.json records pid, start time and port of each instance', () =>
  withApps(async (apps, sups) => {
    const stateDir = path.join(apps.root, 'state');
    const sup = makeSupervisor(apps, stateDir);
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('web-1', 'server.mjs')]);
    const o = await waitFor('healthy', () => {
      const i = find(sup, 'web-1');
      return i?.healthy ? i : false;
    });
    const state: unknown = JSON.parse(readFileSync(path.join(stateDir, 'state.json'), 'utf8'));
    assert.ok(typeof state === 'object' && state !== null && 'instances' in state && Array.isArray(state.instances));
    const rec: unknown = state.instances[0];
    assert.ok(typeof rec === 'object' && rec !== null && 'pid' in rec && 'startTime' in rec && 'port' in rec);
    assert.equal(rec.pid, o.pid);
    assert.equal(rec.port, o.port);
    assert.equal(rec.startTime, readProcStat(o.pid ?? 0)?.startTime);
  }));
