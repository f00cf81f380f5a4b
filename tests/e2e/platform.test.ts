/**
 * The platform core end to end: `lanes up`, a tenant and an environment, examples/hello
 * deployed and served through the gateway, and the failure paths (kill -9 of an instance,
 * of a zone supervisor, of the control plane; a crash-looping service; bad input).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isAlive, sleep, waitFor } from '@lanes/testkit';
import { LoadClient, TestPlatform, helloDir } from '../support/platform.js';

describe('platform core', () => {
  let p: TestPlatform;
  const ref = 'acme/prod';
  let host: string;

  before(async () => {
    p = await TestPlatform.start();
    host = p.host('prod', 'acme');
  });
  after(async () => {
    await p?.stop();
  });

  it('creates a tenant and an environment through the CLI', async () => {
    let r = await p.cli(['tenant', 'create', 'acme']);
    assert.equal(r.code, 0, r.stderr);
    r = await p.cli(['env', 'create', ref, '--lane', 'single']);
    assert.equal(r.code, 0, r.stderr);
    r = await p.cli(['env', 'list', 'acme']);
    assert.match(r.stdout, /prod/);
  });

  it('deploys examples/hello and serves both web instances through the gateway', async () => {
    const r = await p.cli(['deploy', ref, helloDir], 120_000);
    assert.equal(r.code, 0, `deploy failed: ${r.stderr}\n${p.componentLogs()}`);
    const s = await p.waitReady(ref);
    const web = s.instances.filter((i) => i.service === 'web' && i.desired === 'running');
    assert.equal(web.length, 2);
    assert.notEqual(web[0]?.zone, web[1]?.zone, 'the two web instances are spread over two zones');
    assert.equal(s.instances.filter((i) => i.service === 'worker').length, 1);
    const seen = new Set<string>();
    await waitFor('both instances answering through the gateway', async () => {
      const res = await p.get(host);
      assert.equal(res.status, 200, res.text);
      const body = JSON.parse(res.text) as { instance: string; zone: string };
      seen.add(body.instance);
      assert.ok(res.headers['x-request-id'], 'the gateway returns an X-Request-Id');
      return seen.size === 2;
    });
    assert.deepEqual([...seen].sort(), web.map((i) => i.id).sort());
  });

  it('shows the running release and instances in lanes status', async () => {
    const r = await p.cli(['status', ref, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { release: string; instances: { pid: number; zone: string; address: string }[] };
    assert.match(s.release, /^[0-9a-f]{64}$/);
    for (const i of s.instances) {
      assert.ok(i.pid > 0 && isAlive(i.pid), `instance pid ${i.pid} is alive`);
      assert.ok(i.address, 'each instance reports its address');
    }
    const text = await p.cli(['status', ref]);
    assert.match(text.stdout, /web-/);
  });

  it('restarts a kill -9ed instance while a client sees zero failed requests', async () => {
    const before = (await p.status(ref)).instances.find((i) => i.service === 'web' && i.desired === 'running');
    assert.ok(before?.pid);
    const load = new LoadClient(p.httpPort, host, 4);
    await sleep(500);
    process.kill(before.pid, 'SIGKILL');
    const restarted = await waitFor('the killed instance restarted and healthy', async () => {
      const i = (await p.status(ref)).instances.find((x) => x.id === before.id);
      return i && i.pid !== before.pid && i.healthy && i.restarts >= 1 ? i : false;
    });
    await sleep(1500);
    await load.stop();
    assert.equal(load.failed, 0, `failed requests: ${load.failed} of ${load.ok + load.failed}: ${load.failures.join('; ')}`);
    assert.ok(load.ok > 50, `the client kept sending (${load.ok} requests)`);
    assert.ok(restarted.pid && isAlive(restarted.pid));
    assert.ok(load.seen.get(before.id), 'the restarted instance serves again');
  });

  it('keeps instances serving when a zone supervisor is killed, and re-adopts them', async () => {
    const s = await p.status(ref);
    const inst = s.instances.find((i) => i.service === 'web' && i.desired === 'running');
    assert.ok(inst?.pid);
    const ctx = p.context();
    const agentPid = ctx.components?.agents?.[inst.zone];
    assert.ok(agentPid, `supervisor pid of zone ${inst.zone} in context.json`);
    const load = new LoadClient(p.httpPort, host, 2);
    process.kill(agentPid, 'SIGKILL');
    await sleep(300);
    assert.ok(isAlive(inst.pid), 'the instance survives its supervisor');
    // The launcher restarts the supervisor; it must adopt, not duplicate.
    await waitFor('supervisor restarted', () => {
      const pid = p.context().components?.agents?.[inst.zone];
      return pid !== undefined && pid !== agentPid && isAlive(pid);
    }, { timeoutMs: 30_000 });
    await sleep(3000);
    await load.stop();
    const after = await p.status(ref);
    const same = after.instances.find((i) => i.id === inst.id);
    assert.equal(same?.pid, inst.pid, 'the same process was adopted');
    assert.equal(same?.restarts, inst.restarts, 'it was not restarted');
    assert.equal(after.instances.filter((i) => i.desired === 'running').length, s.instances.filter((i) => i.desired === 'running').length, 'no duplicates');
    assert.equal(load.failed, 0, `failed: ${load.failures.join('; ')}`);
  });

  it('keeps serving through the gateway while the control plane is down, with state intact after', async () => {
    const before = await p.status(ref);
    const cpPid = p.context().components?.controlplane;
    assert.ok(cpPid);
    const load = new LoadClient(p.httpPort, host, 2);
    process.kill(cpPid, 'SIGKILL');
    // While the launcher waits to restart it, the API is gone but the gateway serves.
    await waitFor('API down', async () => {
      try {
        await p.api('GET', '/healthz', undefined, null);
        return false;
      } catch {
        return true;
      }
    }, { timeoutMs: 5000, intervalMs: 20 });
    const okWhileDown = load.ok;
    await sleep(500);
    const servedWhileDown = load.ok - okWhileDown;
    await waitFor('control plane back', async () => (await p.api('GET', '/healthz', undefined, null)).status === 200, { timeoutMs: 30_000 });
    await load.stop();
    assert.ok(servedWhileDown > 0, 'requests succeeded while the control plane was down');
    assert.equal(load.failed, 0, `failed: ${load.failures.join('; ')}`);
    const after = await p.waitReady(ref);
    assert.equal(after.release, before.release);
    assert.deepEqual(after.instances.map((i) => i.id).sort(), before.instances.map((i) => i.id).sort());
    const tenants = await p.api<{ items: { name: string }[] }>('GET', '/v1/tenants');
    assert.ok(tenants.body.items.some((t) => t.name === 'acme'));
  });

  it('prints instance logs and events', async () => {
    const logs = await p.cli(['logs', ref, 'worker', '--tail', '5']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /heartbeat/);
    const events = await p.cli(['events', 'acme/prod']);
    assert.equal(events.code, 0, events.stderr);
    assert.match(events.stdout, /RolloutComplete|is live/);
    assert.match(events.stdout, /InstanceRestarted|restarted/);
  });

  it('scales a service and spreads the new instances', async () => {
    const r = await p.cli(['scale', ref, 'web', '3']);
    assert.equal(r.code, 0, r.stderr);
    const s = await p.waitReady(ref);
    const web = s.instances.filter((i) => i.service === 'web' && i.desired === 'running');
    assert.equal(web.length, 3);
    assert.equal(new Set(web.map((i) => i.zone)).size, 3, 'one per zone');
    const down = await p.cli(['scale', ref, 'web', '2']);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('scaled back to 2', async () => (await p.status(ref)).instances.filter((i) => i.service === 'web').length === 2, { timeoutMs: 30_000 });
  });
});
