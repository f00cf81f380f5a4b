/**
 * High availability of compute when a zone goes dark: a double lane loses no request and
 * gets its instances rescheduled into the surviving zones, then rebalanced without
 * duplicates when the zone returns; a single lane recovers by itself within a bounded window.
 */
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { LoadClient, TestPlatform, helloDir, type EnvStatus } from '../support/platform.js';

const runningWeb = (s: EnvStatus) => s.instances.filter((i) => i.service === 'web' && i.desired === 'running');

describe('zone loss: rescheduling, rebalancing, recovery', () => {
  let p: TestPlatform;

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b', 'c'] });
    assert.equal((await p.cli(['tenant', 'create', 'ha'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'ha/double', '--lane', 'double'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'ha/single', '--lane', 'single'])).code, 0);
    for (const env of ['double', 'single']) {
      const d = await p.cli(['deploy', `ha/${env}`, helloDir], 120_000);
      assert.equal(d.code, 0, d.stderr);
    }
    // The single lane runs one web instance: losing its zone loses the service for a while.
    assert.equal((await p.cli(['scale', 'ha/single', 'web', '1'])).code, 0);
    await waitFor('single lane at one web instance', async () => runningWeb(await p.status('ha/single')).length === 1, { timeoutMs: 30_000 });
  });
  after(async () => {
    await p?.stop();
  });

  it('double lane: zone down costs no request; instances move to the surviving zones and come back without duplicates', async () => {
    const before = runningWeb(await p.waitReady('ha/double'));
    assert.equal(before.length, 2);
    const lostZone = before[0]?.zone as string;
    const load = new LoadClient(p.httpPort, p.host('double', 'ha'), 4);
    await sleep(500);
    assert.equal((await p.cli(['zone', 'down', lostZone])).code, 0);
    const moved = await waitFor('a replacement healthy in a surviving zone', async () => {
      const s = await p.status('ha/double');
      const live = runningWeb(s).filter((i) => i.zone !== lostZone && i.healthy);
      return live.length >= 2 ? live : false;
    }, { timeoutMs: 30_000 });
    assert.equal(new Set(moved.map((i) => i.zone)).size, 2, 'still one per zone in two zones');
    assert.equal((await p.cli(['zone', 'up', lostZone])).code, 0);
    const settled = await waitFor('rebalanced to the asked count', async () => {
      const s = await p.status('ha/double');
      const web = runningWeb(s);
      return web.length === 2 && web.every((i) => i.healthy) && s.instances.filter((i) => i.service === 'web').length === 2 ? web : false;
    }, { timeoutMs: 45_000 });
    await load.stop();
    assert.equal(new Set(settled.map((i) => i.zone)).size, 2, 'spread over two zones');
    assert.equal(load.failed, 0, `failed requests during the outage: ${load.failed} of ${load.ok + load.failed}: ${load.failures.join('; ')}`);
    const events = await p.api<{ items: { reason: string; message: string }[] }>('GET', '/v1/events?tenant=ha&environment=double&limit=1000');
    assert.ok(events.body.items.some((e) => e.reason === 'InstanceScheduled' && /dark zone/.test(e.message)), 'the reschedule explains itself');
  });

  it('single lane: the lost instance is replaced without anyone acting; requests fail only for a bounded window', async () => {
    const [only] = runningWeb(await p.waitReady('ha/single'));
    assert.ok(only);
    const host = p.host('single', 'ha');
    let firstFail = 0;
    let lastFail = 0;
    let failed = 0;
    let ok = 0;
    let stop = false;
    const client = (async () => {
      while (!stop) {
        const t = Date.now();
        try {
          const r = await p.get(host);
          if (r.status === 200) ok++;
          else throw new Error(String(r.status));
        } catch {
          failed++;
          if (!firstFail) firstFail = t;
          lastFail = Date.now();
        }
        await sleep(20);
      }
    })();
    await sleep(300);
    assert.equal((await p.cli(['zone', 'down', only.zone])).code, 0);
    await waitFor('a replacement healthy elsewhere', async () => runningWeb(await p.status('ha/single')).some((i) => i.zone !== only.zone && i.healthy), { timeoutMs: 30_000 });
    await sleep(1500);
    stop = true;
    await client;
    const windowMs = failed ? lastFail - firstFail : 0;
    console.log(`single lane zone loss: ${failed} failed of ${ok + failed} requests over a window of ${windowMs} ms`);
    assert.ok(windowMs < 15_000, `the outage window is bounded (${windowMs} ms)`);
    const after = await p.get(host);
    assert.equal(after.status, 200, 'serving again');
    assert.equal((await p.cli(['zone', 'up', only.zone])).code, 0);
  });

  it('autoscales from min to more under load, and back to min after it stops', async () => {
    const app = await tempDir('lanes-auto-');
    await cp(helloDir, app, { recursive: true });
    await writeFile(
      path.join(app, 'lanes.yaml'),
      'name: hello\nservices:\n  web:\n    command: node server.js\n    http: true\n    health: { path: /healthz }\n    scale: { min: 1, max: 3, target: { rps_per_instance: 20 }, stabilization: 4s }\n',
    );
    assert.equal((await p.cli(['env', 'create', 'ha/auto'])).code, 0);
    const d = await p.cli(['deploy', 'ha/auto', app], 120_000);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(runningWeb(await p.waitReady('ha/auto')).length, 1, 'starts at min');
    const load = new LoadClient(p.httpPort, p.host('auto', 'ha'), 4);
    const scaled = await waitFor('scaled out to max and healthy', async () => {
      const s = await p.status('ha/auto');
      const web = runningWeb(s);
      return web.length === 3 && web.every((i) => i.healthy) ? s : false;
    }, { timeoutMs: 40_000 });
    await sleep(1000);
    const seenDuringLoad = load.seen.size;
    await load.stop();
    assert.equal(load.failed, 0, `failed: ${load.failures.join('; ')}`);
    assert.ok(seenDuringLoad >= 2, `new instances took traffic once healthy (${seenDuringLoad} instances answered)`);
    assert.equal(scaled.services.find((x) => x.name === 'web')?.instances, 3);
    await waitFor('back to min after the load stopped', async () => runningWeb(await p.status('ha/auto')).length === 1, { timeoutMs: 60_000 });
    const events = await p.api<{ items: { reason: string; message: string }[] }>('GET', '/v1/events?tenant=ha&environment=auto&limit=1000');
    const auto = events.body.items.filter((e) => e.reason === 'AutoScaled').map((e) => e.message);
    assert.ok(auto.some((m) => /out from 1 to/.test(m)) && auto.some((m) => /in from \d to 1/.test(m)), auto.join(' | '));
    const manual = await p.cli(['scale', 'ha/auto', 'web', '2']);
    assert.notEqual(manual.code, 0);
    assert.match(manual.stderr, /autoscaled between 1 and 3/);
  });

  it('autoscales on CPU: a busy service gets another instance, with the reason in the events', async () => {
    const app = await tempDir('lanes-cpu-');
    // Busy for 150 ms of every 200 ms: about 75 % of a core, against a target of 30 %.
    await writeFile(path.join(app, 'busy.js'), 'setInterval(() => { const end = Date.now() + 150; while (Date.now() < end); }, 200);\nprocess.on("SIGTERM", () => process.exit(0));\n');
    await writeFile(path.join(app, 'lanes.yaml'), 'name: busy\nservices:\n  cruncher:\n    command: node busy.js\n    scale: { min: 1, max: 2, target: { cpu_percent: 30 }, stabilization: 3s }\n');
    assert.equal((await p.cli(['env', 'create', 'ha/cpu'])).code, 0);
    const d = await p.cli(['deploy', 'ha/cpu', app], 120_000);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('scaled out on CPU', async () => (await p.status('ha/cpu')).instances.filter((i) => i.desired === 'running').length === 2, { timeoutMs: 40_000 });
    const events = await p.api<{ items: { reason: string; message: string }[] }>('GET', '/v1/events?tenant=ha&environment=cpu&limit=1000');
    assert.ok(events.body.items.some((e) => e.reason === 'AutoScaled' && /average CPU \d+% against a target of 30%/.test(e.message)), JSON.stringify(events.body.items.map((e) => e.message)));
    assert.equal((await p.cli(['env', 'delete', 'ha/cpu'], 60_000)).code, 0);
  });
});
