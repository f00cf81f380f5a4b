import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseManifest } from './manifest.js';
import { decideEnvironment, type EnvironmentView, type InstanceView } from './reconcile.js';

const manifest = parseManifest('name: hello\nservices:\n  web:\n    command: node server.js\n    instances: 2\n    http: true\n  worker:\n    command: node worker.js\n');
const R1 = 'a'.repeat(64);
const R2 = 'b'.repeat(64);
const zones = ['a', 'b', 'c'];

function inst(id: string, service: string, zone: string, over: Partial<InstanceView> = {}): InstanceView {
  return { id, service, zone, release: R1, desired: 'running', state: 'running', healthy: true, createdAt: `2026-01-01T00:00:0${id.length % 10}Z`, ...over };
}

function view(over: Partial<EnvironmentView> = {}): EnvironmentView {
  return { lane: 'single', phase: 'active', release: { hash: R1, manifest }, scales: {}, zones, instances: [], ...over };
}

describe('decideEnvironment', () => {
  it('creates the asked instances spread over zones on the first deploy', () => {
    const plan = decideEnvironment(view(), new Set(zones));
    const creates = plan.actions.filter((a) => a.type === 'create');
    assert.deepEqual(creates.map((a) => (a.type === 'create' ? `${a.service}@${a.zone}` : '')), ['web@a', 'web@b', 'worker@a']);
    assert.equal(plan.rollout?.state, 'progressing');
  });

  it('does nothing once the world matches (idempotent)', () => {
    const v = view({ instances: [inst('w1', 'web', 'a'), inst('w2', 'web', 'b'), inst('k1', 'worker', 'c')] });
    const plan = decideEnvironment(v, new Set(zones));
    assert.deepEqual(plan.actions, []);
    assert.equal(plan.rollout?.state, 'complete');
  });

  it('gives a double lane at least one instance in each of two zones', () => {
    const plan = decideEnvironment(view({ lane: 'double' }), new Set(zones));
    const workers = plan.actions.filter((a) => a.type === 'create' && a.service === 'worker');
    assert.equal(workers.length, 2);
    assert.equal(new Set(workers.map((a) => (a.type === 'create' ? a.zone : ''))).size, 2);
  });

  it('places only in ready zones', () => {
    const plan = decideEnvironment(view({ zones: ['c'] }), new Set(['c']));
    assert.ok(plan.actions.every((a) => a.type !== 'create' || a.zone === 'c'));
  });

  it('keeps the old release serving until the new one is healthy, then retires it', () => {
    const old = [inst('w1', 'web', 'a'), inst('w2', 'web', 'b'), inst('k1', 'worker', 'c')];
    const starting = [
      inst('n1', 'web', 'a', { release: R2, healthy: false, state: 'starting' }),
      inst('n2', 'web', 'b', { release: R2, healthy: false, state: 'starting' }),
      inst('n3', 'worker', 'a', { release: R2 }),
    ];
    const v = view({ release: { hash: R2, manifest }, instances: [...old, ...starting] });
    const plan = decideEnvironment(v, new Set(zones));
    const retired = plan.actions.filter((a) => a.type === 'retire').map((a) => (a.type === 'retire' ? a.id : ''));
    assert.deepEqual(retired, ['k1'], 'only the worker, whose new instance is healthy, is replaced');
    assert.equal(plan.rollout?.state, 'progressing');
    const ready = view({ release: { hash: R2, manifest }, instances: [...old, ...starting.map((i) => ({ ...i, healthy: true, state: 'running' as const }))] });
    const plan2 = decideEnvironment(ready, new Set(zones));
    assert.deepEqual(plan2.actions.filter((a) => a.type === 'retire').map((a) => (a.type === 'retire' ? a.id : '')).sort(), ['k1', 'w1', 'w2']);
    assert.equal(plan2.rollout?.state, 'complete');
  });

  it('reports a crash-looping new release as failed and keeps the old one', () => {
    const v = view({
      release: { hash: R2, manifest },
      instances: [inst('w1', 'web', 'a'), inst('w2', 'web', 'b'), inst('n1', 'web', 'a', { release: R2, healthy: false, state: 'crashloop' })],
    });
    const plan = decideEnvironment(v, new Set(zones));
    assert.equal(plan.rollout?.state, 'failed');
    assert.match(plan.rollout?.message ?? '', /web is crash-looping/);
    assert.ok(!plan.actions.some((a) => a.type === 'retire' && (a.id === 'w1' || a.id === 'w2')));
  });

  it('scales in from the most crowded zone without dropping healthy below the asked count', () => {
    const v = view({ scales: { web: 1, worker: 0 }, instances: [inst('w1', 'web', 'a'), inst('w2', 'web', 'a'), inst('w3', 'web', 'b')] });
    const plan = decideEnvironment(v, new Set(zones));
    const retired = plan.actions.filter((a) => a.type === 'retire');
    assert.equal(retired.length, 2);
    assert.ok(!retired.some((a) => a.type === 'retire' && a.id === 'w3'), 'the lone instance in zone b stays');
  });

  it('forgets a stopped instance once its zone reports it gone, not while the zone is silent', () => {
    const v = view({ instances: [inst('w1', 'web', 'a', { desired: 'stopped', state: null, healthy: false })] });
    assert.ok(decideEnvironment(v, new Set(['a'])).actions.some((a) => a.type === 'forget' && a.id === 'w1'));
    assert.ok(!decideEnvironment(v, new Set(['b'])).actions.some((a) => a.type === 'forget'));
  });

  it('retires everything of a deleting environment and says when it is gone', () => {
    const v = view({ phase: 'deleting', instances: [inst('w1', 'web', 'a')] });
    const plan = decideEnvironment(v, new Set(zones));
    assert.deepEqual(plan.actions.map((a) => a.type), ['retire']);
    assert.equal(plan.gone, false);
    const empty = decideEnvironment(view({ phase: 'deleting', instances: [] }), new Set(zones));
    assert.equal(empty.gone, true);
  });

  it('reschedules the instances of a dark zone into the surviving zones, keeping two zones in a double lane', () => {
    const v = view({
      lane: 'double',
      zones: ['b', 'c'],
      scales: { worker: 0 },
      instances: [inst('w1', 'web', 'a'), inst('w2', 'web', 'b')],
    });
    const plan = decideEnvironment(v, new Set(['b', 'c']));
    const creates = plan.actions.filter((a) => a.type === 'create');
    assert.deepEqual(creates.map((a) => (a.type === 'create' ? `${a.service}@${a.zone}` : '')), ['web@c']);
    assert.match(creates[0]?.reason ?? '', /1 in dark zone a/);
    assert.ok(!plan.actions.some((a) => a.type === 'retire'), 'the dark copy is not touched while its zone is away');
  });

  it('rebalances when the zone returns: the newest surplus copy goes, one per zone stays', () => {
    const v = view({
      lane: 'double',
      scales: { worker: 0 },
      instances: [inst('w1', 'web', 'a', { createdAt: '2026-01-01T00:00:01Z' }), inst('w2', 'web', 'b', { createdAt: '2026-01-01T00:00:02Z' }), inst('w3', 'web', 'c', { createdAt: '2026-01-01T00:00:09Z' })],
    });
    const plan = decideEnvironment(v, new Set(zones));
    assert.deepEqual(plan.actions.map((a) => (a.type === 'retire' ? a.id : a.type)), ['w3']);
  });

  it('stops a service (retires all its instances) and leaves the others', () => {
    const v = view({ instances: [inst('w1', 'web', 'a'), inst('w2', 'web', 'b'), inst('k1', 'worker', 'c')], run: { environment: { stopped: false, restartedAt: null }, services: { web: { stopped: true, restartedAt: null } } } });
    const plan = decideEnvironment(v, new Set(zones));
    assert.deepEqual(plan.actions.map((a) => (a.type === 'retire' ? a.id : a.type)).sort(), ['w1', 'w2']);
  });

  it('restarts by replacing instances created before the restart, new ones first', () => {
    const run = { environment: { stopped: false, restartedAt: '2026-01-01T00:00:05Z' }, services: {} };
    const olds = [inst('w1', 'web', 'a', { createdAt: '2026-01-01T00:00:01Z' }), inst('w2', 'web', 'b', { createdAt: '2026-01-01T00:00:01Z' }), inst('k1', 'worker', 'c', { createdAt: '2026-01-01T00:00:01Z' })];
    const first = decideEnvironment(view({ run, instances: olds }), new Set(zones));
    assert.equal(first.actions.filter((a) => a.type === 'create').length, 3);
    assert.ok(!first.actions.some((a) => a.type === 'retire'), 'nothing stops before its replacement is healthy');
    const fresh = [inst('n1', 'web', 'a', { createdAt: '2026-01-01T00:00:06Z' }), inst('n2', 'web', 'b', { createdAt: '2026-01-01T00:00:06Z' }), inst('n3', 'worker', 'c', { createdAt: '2026-01-01T00:00:06Z' })];
    const second = decideEnvironment(view({ run, instances: [...olds, ...fresh] }), new Set(zones));
    assert.deepEqual(second.actions.map((a) => (a.type === 'retire' ? a.id : a.type)).sort(), ['k1', 'w1', 'w2']);
  });

  it('rolls in steps with max_surge 1 and max_unavailable 0: one new at a time, an old one goes when a new one is healthy', () => {
    const stepped = parseManifest('name: hello\nservices:\n  web:\n    command: node server.js\n    instances: 4\n    http: true\n    max_surge: 1\n');
    const olds = ['o1', 'o2', 'o3', 'o4'].map((id, k) => inst(id, 'web', zones[k % 3] as string));
    const v = (instances: InstanceView[]) => view({ release: { hash: R2, manifest: stepped }, instances });
    const step1 = decideEnvironment(v(olds), new Set(zones));
    assert.equal(step1.actions.filter((a) => a.type === 'create').length, 1, 'one surge instance');
    assert.ok(!step1.actions.some((a) => a.type === 'retire'));
    const n1 = inst('n1', 'web', 'a', { release: R2, healthy: false, state: 'starting' });
    assert.deepEqual(decideEnvironment(v([...olds, n1]), new Set(zones)).actions, [], 'waits for the new one to be healthy');
    const step2 = decideEnvironment(v([...olds, { ...n1, healthy: true, state: 'running' }]), new Set(zones));
    assert.deepEqual(step2.actions.map((a) => a.type), ['retire'], 'then retires exactly one old');
    const healthyAtLeast = (instances: InstanceView[]) => instances.filter((i) => i.healthy).length >= 4;
    assert.ok(healthyAtLeast([...olds.slice(1), { ...n1, healthy: true }]));
  });

  it('converges: applying plans repeatedly reaches the asked counts and then stops changing (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.constantFrom('single' as const, 'double' as const), fc.integer({ min: 1, max: 3 }), (web, worker, lane, nz) => {
        const zs = zones.slice(0, nz);
        let instances: InstanceView[] = [];
        let n = 0;
        for (let round = 0; round < 5; round++) {
          const plan = decideEnvironment(view({ lane, zones: zs, scales: { web, worker }, instances }), new Set(zs));
          for (const a of plan.actions) {
            if (a.type === 'create') instances.push(inst(`i${n++}`, a.service, a.zone));
            if (a.type === 'retire') instances = instances.filter((i) => i.id !== a.id);
          }
        }
        const count = (s: string) => instances.filter((i) => i.service === s).length;
        const want = (k: number) => (k <= 0 ? 0 : lane === 'double' ? Math.max(k, 2) : k);
        assert.equal(count('web'), want(web));
        assert.equal(count('worker'), want(worker));
        if (lane === 'double' && nz >= 2 && web > 0) assert.ok(new Set(instances.filter((i) => i.service === 'web').map((i) => i.zone)).size >= 2);
        const last = decideEnvironment(view({ lane, zones: zs, scales: { web, worker }, instances }), new Set(zs));
        assert.deepEqual(last.actions, []);
      }),
      { numRuns: 200 },
    );
  });
});
