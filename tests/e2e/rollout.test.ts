/**
 * Deploys that go wrong: a release whose health check never passes is rolled back by the
 * platform's circuit breaker while the old release keeps serving every request, and
 * `lanes deploy` says so with a non-zero exit; `lanes rollback` goes back on request.
 */
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir, waitFor } from '@lanes/testkit';
import { LoadClient, TestPlatform, helloDir } from '../support/platform.js';

describe('rollouts: automatic and manual rollback', () => {
  let p: TestPlatform;
  let good: { id: string; version: number };

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b'] });
    assert.equal((await p.cli(['tenant', 'create', 'ro'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'ro/prod'])).code, 0);
    const d = await p.cli(['deploy', 'ro/prod', helloDir], 120_000);
    assert.equal(d.code, 0, d.stderr);
    const rel = await p.api<{ items: { id: string; version: number; status: string }[] }>('GET', '/v1/tenants/ro/environments/prod/releases');
    good = rel.body.items[0] as { id: string; version: number };
  });
  after(async () => {
    await p?.stop();
  });

  it('rolls back a release whose health check never passes; the old one serves throughout', async () => {
    const bad = await tempDir('lanes-bad-');
    await cp(helloDir, bad, { recursive: true });
    // The new release answers requests but its health check path does not exist.
    await writeFile(
      path.join(bad, 'lanes.yaml'),
      'name: hello\ndeadline: 6s\nservices:\n  web:\n    command: node server.js\n    instances: 2\n    http: true\n    health: { path: /never-ready, interval: 500ms, timeout: 200ms }\n  worker:\n    command: node worker.js\n',
    );
    const server = (await import('node:fs')).readFileSync(path.join(helloDir, 'server.js'), 'utf8');
    const broken = server.replace("  if (url.pathname === '/healthz') {", "  if (url.pathname === '/never-ready') {\n    res.writeHead(503);\n    res.end('not ready\\n');\n    return;\n  }\n  if (url.pathname === '/healthz') {");
    assert.notEqual(broken, server, 'the test app was changed');
    await writeFile(path.join(bad, 'server.js'), broken);
    const load = new LoadClient(p.httpPort, p.host('prod', 'ro'), 4);
    const r = await p.cli(['deploy', 'ro/prod', bad], 120_000);
    const s = await waitFor('back on the good release, fully healthy', async () => {
      const st = await p.status('ro/prod');
      return st.release === good.id && st.rollout?.state === 'complete' && st.instances.every((i) => i.release === good.id) ? st : false;
    }, { timeoutMs: 60_000 });
    await load.stop();
    assert.equal(r.code, 1, `deploy exits non-zero: ${r.stdout}`);
    assert.match(r.stderr, /rolled back to [0-9a-f]{12}: not healthy within its deadline of 6s/);
    assert.equal(load.failed, 0, `failed requests: ${load.failed} of ${load.ok + load.failed}: ${load.failures.join('; ')}`);
    assert.ok(load.ok > 50);
    const releases = await p.api<{ items: { id: string; status: string }[] }>('GET', '/v1/tenants/ro/environments/prod/releases');
    assert.equal(releases.body.items.find((x) => x.id !== good.id)?.status, 'failed');
    const events = await p.api<{ items: { reason: string }[] }>('GET', '/v1/events?tenant=ro&environment=prod&limit=1000');
    assert.ok(events.body.items.some((e) => e.reason === 'RolledBack'));
  });

  it('replaces instances on a new release without failing a request; in-flight requests on old instances finish', async () => {
    const v3 = await tempDir('lanes-v3-');
    await cp(helloDir, v3, { recursive: true });
    await writeFile(path.join(v3, 'VERSION'), '3\n');
    const before = await p.waitReady('ro/prod');
    const load = new LoadClient(p.httpPort, p.host('prod', 'ro'), 4);
    // A slow request that starts on an old instance before the deploy and ends after it.
    const slow = p.get(p.host('prod', 'ro'), '/slow?ms=4000');
    const r = await p.cli(['deploy', 'ro/prod', v3], 120_000);
    const slowRes = await slow;
    await load.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(slowRes.status, 200, `the slow request finished: ${slowRes.text}`);
    const servedBy = (JSON.parse(slowRes.text) as { release: string }).release;
    assert.equal(servedBy, before.release, 'it was served by the old release, drained rather than killed');
    assert.equal(load.failed, 0, `failed requests during the rollout: ${load.failures.join('; ')}`);
    await waitFor('only the new release runs once settled (old instances stopped and forgotten)', async () => {
      const st = await p.status('ro/prod');
      return st.rollout?.state === 'complete' && st.instances.every((i) => i.release === st.release);
    }, { timeoutMs: 30_000 });
  });

  it('restarts rolling without a failed request, and stops and starts a service', async () => {
    const before = await p.waitReady('ro/prod');
    const load = new LoadClient(p.httpPort, p.host('prod', 'ro'), 4);
    const r = await p.cli(['restart', 'ro/prod', 'web'], 120_000);
    await load.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(load.failed, 0, `failed requests during the restart: ${load.failures.join('; ')}`);
    const after = await waitFor('old web instances replaced', async () => {
      const st = await p.status('ro/prod');
      const web = st.instances.filter((i) => i.service === 'web');
      return web.length === 2 && web.every((i) => i.healthy && i.desired === 'running') ? st : false;
    }, { timeoutMs: 30_000 });
    const oldWeb = before.instances.filter((i) => i.service === 'web').map((i) => i.id);
    assert.ok(after.instances.filter((i) => i.service === 'web').every((i) => !oldWeb.includes(i.id)), 'every web instance is new');
    assert.equal(after.instances.find((i) => i.service === 'worker')?.id, before.instances.find((i) => i.service === 'worker')?.id, 'the worker was left alone');

    const stop = await p.cli(['stop', 'ro/prod', 'web'], 60_000);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await p.status('ro/prod')).instances.filter((i) => i.service === 'web').length, 0);
    await waitFor('the gateway has no web instance left', async () => (await p.get(p.host('prod', 'ro'))).status === 503);
    const start = await p.cli(['start', 'ro/prod', 'web'], 120_000);
    assert.equal(start.code, 0, start.stderr);
    assert.equal((await p.get(p.host('prod', 'ro'))).status, 200);
  });

  it('rolls in steps with max_surge 1: never more than count + 1 instances, no failed request', async () => {
    const stepped = await tempDir('lanes-stepped-');
    await cp(helloDir, stepped, { recursive: true });
    await writeFile(path.join(stepped, 'lanes.yaml'), 'name: hello\nservices:\n  web:\n    command: node server.js\n    instances: 3\n    max_surge: 1\n    http: true\n    health: { path: /healthz }\n  worker:\n    command: node worker.js\n');
    assert.equal((await p.cli(['deploy', 'ro/prod', stepped], 120_000)).code, 0);
    await writeFile(path.join(stepped, 'VERSION'), 'step 2\n');
    const load = new LoadClient(p.httpPort, p.host('prod', 'ro'), 4);
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const st = await p.status('ro/prod');
        most = Math.max(most, st.instances.filter((i) => i.service === 'web' && i.desired === 'running').length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const r = await p.cli(['deploy', 'ro/prod', stepped], 120_000);
    sampling = false;
    await sampler;
    await load.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(most <= 4, `at most 3 + 1 web instances ran at once (saw ${most})`);
    assert.equal(load.failed, 0, `failed requests: ${load.failures.join('; ')}`);
  });

  it('goes back to an earlier release on request with lanes rollback', async () => {
    const v2 = await tempDir('lanes-v2-');
    await cp(helloDir, v2, { recursive: true });
    await writeFile(path.join(v2, 'VERSION'), '2\n');
    assert.equal((await p.cli(['deploy', 'ro/prod', v2], 120_000)).code, 0);
    const now = await p.status('ro/prod');
    assert.notEqual(now.release, good.id);
    const r = await p.cli(['rollback', 'ro/prod', String(good.version)], 120_000);
    assert.equal(r.code, 0, r.stderr);
    const s = await p.waitReady('ro/prod');
    assert.equal(s.release, good.id);
    const list = await p.cli(['releases', 'ro/prod']);
    assert.match(list.stdout, /superseded/);
    const bad = await p.cli(['rollback', 'ro/prod', 'zzz']);
    assert.equal(bad.code === 0, false);
    assert.match(bad.stderr, /^lanes: .+\n$/);
  });
});
