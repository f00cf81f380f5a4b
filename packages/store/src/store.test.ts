/**
 * The store's behaviour, run twice: on embedded PGlite in a temp dir and on a throwaway
 * PostgreSQL cluster (skipped with a message when Debian's binaries are missing). One
 * store per backend; each test works in its own tenant so tests do not see each other.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Manifest, ObservedInstance } from '@lanes/spec';
import { parseEdgeSettings } from '@lanes/spec';
import { findPostgresBin, startPostgres, tempDir, type ThrowawayPostgres } from '@lanes/testkit';
import pg from 'pg';
import { migrationNames, openStore, type Change, type Store } from './index.js';

let seq = 0;
/** A fresh valid name per call, so tests sharing a database never collide. */
const uniq = (prefix: string): string => `${prefix}${++seq}`;

const manifest: Manifest = {
  name: 'shop',
  deadlineMs: 60_000,
  services: [
    {
      name: 'web',
      command: 'node server.js',
      argv: ['node', 'server.js'],
      instances: 2,
      http: true,
      path: null,
      port: null,
      health: { path: '/health', intervalMs: 1000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] },
      env: { MODE: 'prod' },
      stopGraceMs: 10_000,
      allowFrom: null,
      autoscale: null,
      maxSurge: null,
      maxUnavailable: null,
      balance: 'round_robin',
      sticky: null,
      timeoutMs: 30_000,
      outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 },
      tcp: false,
      primaryCheck: null,
    },
  ],
};

function observed(id: string, over: Partial<ObservedInstance> = {}): ObservedInstance {
  return {
    id,
    state: 'running',
    pid: 4242,
    address: '127.0.0.1',
    port: 40001,
    healthy: true,
    restarts: 0,
    lastExitCode: null,
    lastExitSignal: null,
    message: 'running',
    startedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

function record(store: Store): { changes: Change[]; stop: () => void } {
  const changes: Change[] = [];
  const stop = store.onChange((c) => changes.push(c));
  return { changes, stop };
}

/** A tenant with one environment; returns their names and the environment id. */
async function seedEnv(store: Store, lane: 'single' | 'double' = 'single'): Promise<{ tenant: string; env: string; id: string }> {
  const tenant = uniq('t');
  await store.createTenant(tenant);
  const e = await store.createEnvironment({ tenant, name: 'prod', lane });
  return { tenant, env: 'prod', id: e.id };
}

const isoRe = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The behaviour every backend must show; `get` returns the suite's open store. */
function defineCases(get: () => Store): void {
  test('run states: stop, start and restart per environment and per service', async () => {
    const store = get();
    const { id } = await seedEnv(store);
    assert.deepEqual(await store.getRunStates(id), { environment: { stopped: false, restartedAt: null }, services: {} });
    await store.setRunState(id, 'web', { stopped: true });
    await store.setRunState(id, null, { restart: true });
    const s = await store.getRunStates(id);
    assert.equal(s.services['web']?.stopped, true);
    assert.equal(s.services['web']?.restartedAt, null);
    assert.equal(s.environment.stopped, false);
    assert.match(s.environment.restartedAt ?? '', isoRe);
    await store.setRunState(id, 'web', { stopped: false, restart: true });
    const t = await store.getRunStates(id);
    assert.equal(t.services['web']?.stopped, false);
    assert.match(t.services['web']?.restartedAt ?? '', isoRe);
    await assert.rejects(store.setRunState(id, 'Bad Name', { stopped: true }), { name: 'InputError' });
  });

  test('networks: the smallest free index per environment, egress lists, instance addresses', async () => {
    const store = get();
    const tenant = uniq('net');
    await store.createTenant(tenant);
    // Other suites' environments may hold low indexes: allocate relative to what is free.
    const a = await store.createEnvironment({ tenant, name: 'a', lane: 'single', netIndexMax: 250 });
    const b = await store.createEnvironment({ tenant, name: 'b', lane: 'single', netIndexMax: 250 });
    assert.ok(a.netIndex !== null && b.netIndex !== null && a.netIndex !== b.netIndex);
    const plain = await store.createEnvironment({ tenant, name: 'plain', lane: 'single' });
    assert.equal(plain.netIndex, null);
    await store.deleteEnvironment(a.id);
    const c = await store.createEnvironment({ tenant, name: 'c', lane: 'single', netIndexMax: 250 });
    assert.equal(c.netIndex, a.netIndex, 'a freed index is reused');
    const taken = (await store.listEnvironments()).filter((e) => e.netIndex !== null).length;
    await assert.rejects(store.createEnvironment({ tenant, name: 'full', lane: 'single', netIndexMax: taken }), { name: 'ConflictError', message: /no private network is free/ });
    assert.equal((await store.setEgress(b.id, [{ cidr: '10.0.0.0/8', port: 443 }])).egress?.[0]?.port, 443);
    assert.equal((await store.getEnvironmentById(b.id)).egress?.[0]?.cidr, '10.0.0.0/8');
    assert.equal((await store.setEgress(b.id, null)).egress, null);
    const withEgress = await store.createEnvironment({ tenant, name: 'eg', lane: 'single', egress: [{ cidr: '0.0.0.0/0', port: 443 }] });
    assert.deepEqual(withEgress.egress, [{ cidr: '0.0.0.0/0', port: 443 }], 'egress written with the environment');
    // Every environment has its own sandbox number (its instances' uid/gid).
    const numbers = (await store.listEnvironments()).map((e) => e.sandboxId);
    assert.equal(new Set(numbers).size, numbers.length);
    assert.ok(numbers.every((n) => Number.isInteger(n) && n > 0));
    await store.createRelease({ environmentId: b.id, hash: 'hnet', manifest, sizeBytes: 1 });
    const i = await store.createInstance({ id: uniq('web'), environmentId: b.id, service: 'web', release: 'hnet', zone: 'a', address: '10.88.9.2' });
    assert.equal(i.address, '10.88.9.2');
    assert.equal((await store.listInstances({ environmentId: b.id }))[0]?.address, '10.88.9.2');
    await assert.rejects(store.createInstance({ id: uniq('web'), environmentId: b.id, service: 'web', release: 'hnet', zone: 'a', address: '10.88.9.2' }));
  });

  test('edge settings: null by default, stored and read back as given, cleared with null', async () => {
    const store = get();
    const tenant = uniq('edge');
    await store.createTenant(tenant);
    const env = await store.createEnvironment({ tenant, name: 'prod', lane: 'single' });
    assert.equal(env.edge, null);
    const edge = parseEdgeSettings({ deny: ['127.0.0.1/32', '2001:db8::/32'], clientRate: '5/s,10', maxBodyBytes: '1mb' });
    const changes: Change[] = [];
    const off = store.onChange((c) => changes.push(c));
    assert.deepEqual((await store.setEdge(env.id, edge)).edge, edge);
    off();
    assert.ok(changes.some((c) => c.kind === 'environment' && c.environmentId === env.id), 'a change is announced');
    assert.deepEqual((await store.getEnvironment(tenant, 'prod')).edge, edge);
    assert.equal((await store.setEdge(env.id, null)).edge, null);
    await assert.rejects(store.setEdge('env_missing', edge), { name: 'NotFoundError' });
  });

  test('tenants: create, list, get, and one-line conflict and not-found messages', async () => {
    const store = get();
    const name = uniq('acme');
    const t = await store.createTenant(name);
    assert.equal(t.name, name);
    assert.match(t.createdAt, isoRe);
    assert.deepEqual(await store.getTenant(name), t);
    assert.ok((await store.listTenants()).some((x) => x.name === name));
    await assert.rejects(store.createTenant(name), { name: 'ConflictError', code: 'LANES_ERR_CONFLICT', message: `tenant "${name}" already exists` });
    await assert.rejects(store.getTenant('nope'), { name: 'NotFoundError', code: 'LANES_ERR_NOT_FOUND', message: /^tenant "nope" not found/ });
    await assert.rejects(store.createTenant('Bad Name'), { name: 'InputError' });
  });

  test('deleteTenant refuses while environments exist and says to delete them first', async () => {
    const store = get();
    const { tenant, id } = await seedEnv(store);
    await assert.rejects(store.deleteTenant(tenant), {
      name: 'ConflictError',
      message: `tenant "${tenant}" still has environments (prod); delete its environments first`,
    });
    await store.deleteEnvironment(id);
    await store.deleteTenant(tenant);
    await assert.rejects(store.getTenant(tenant), { name: 'NotFoundError' });
    await assert.rejects(store.deleteTenant(tenant), { name: 'NotFoundError' });
  });

  test('environments: create, get by name and id, list by tenant, phase and current release', async () => {
    const store = get();
    const tenant = uniq('t');
    await store.createTenant(tenant);
    const prod = await store.createEnvironment({ tenant, name: 'prod', lane: 'double' });
    assert.match(prod.id, /^env_[0-9a-f]{16}$/);
    assert.equal(prod.lane, 'double');
    assert.equal(prod.phase, 'active');
    assert.equal(prod.currentRelease, null);
    assert.match(prod.createdAt, isoRe);
    await store.createEnvironment({ tenant, name: 'acc', lane: 'single' });
    assert.deepEqual(await store.getEnvironment(tenant, 'prod'), prod);
    assert.deepEqual(await store.getEnvironmentById(prod.id), prod);
    assert.deepEqual((await store.listEnvironments(tenant)).map((e) => e.name), ['acc', 'prod']);
    assert.ok((await store.listEnvironments()).length >= 2);

    await assert.rejects(store.createEnvironment({ tenant, name: 'prod', lane: 'single' }), {
      name: 'ConflictError',
      message: `environment "prod" of tenant "${tenant}" already exists`,
    });
    await assert.rejects(store.createEnvironment({ tenant: 'ghost', name: 'prod', lane: 'single' }), {
      name: 'NotFoundError',
      message: /^tenant "ghost" not found/,
    });
    await assert.rejects(store.getEnvironment(tenant, 'test'), { name: 'NotFoundError', message: /^environment "test" of tenant "t\d+" not found/ });
    await assert.rejects(store.getEnvironmentById('env_0000'), { name: 'NotFoundError', message: /^environment id "env_0000" not found/ });

    assert.equal((await store.setEnvironmentPhase(prod.id, 'deleting')).phase, 'deleting');
    await assert.rejects(store.setCurrentRelease(prod.id, 'abc'), { name: 'NotFoundError', message: /^release "abc" not found in environment "t\d+\/prod"/ });
    await store.createRelease({ environmentId: prod.id, hash: 'abc', manifest, sizeBytes: 1 });
    assert.equal((await store.setCurrentRelease(prod.id, 'abc')).currentRelease, 'abc');
    assert.equal((await store.getEnvironmentById(prod.id)).currentRelease, 'abc');
  });

  test('releases: versions count up per environment, creation is idempotent per hash, newest first', async () => {
    const store = get();
    const a = await seedEnv(store);
    const b = await seedEnv(store);
    const r1 = await store.createRelease({ environmentId: a.id, hash: 'h1', manifest, sizeBytes: 1234 });
    assert.equal(r1.created, true);
    assert.equal(r1.version, 1);
    assert.equal(r1.status, 'deploying');
    assert.equal(r1.sizeBytes, 1234);
    assert.deepEqual(r1.manifest, manifest);
    const r2 = await store.createRelease({ environmentId: a.id, hash: 'h2', manifest, sizeBytes: 1 });
    assert.equal(r2.version, 2);
    const again = await store.createRelease({ environmentId: a.id, hash: 'h1', manifest, sizeBytes: 999 });
    assert.equal(again.created, false);
    assert.equal(again.version, 1);
    assert.equal(again.sizeBytes, 1234);
    // The same hash in another environment is its own release, version 1 there.
    const other = await store.createRelease({ environmentId: b.id, hash: 'h1', manifest, sizeBytes: 1 });
    assert.equal(other.created, true);
    assert.equal(other.version, 1);

    assert.deepEqual((await store.listReleases(a.id)).map((r) => [r.hash, r.version]), [['h2', 2], ['h1', 1]]);
    assert.equal((await store.setReleaseStatus(a.id, 'h1', 'superseded')).status, 'superseded');
    const got = await store.getRelease(a.id, 'h1');
    assert.equal(got.status, 'superseded');
    assert.deepEqual(got.manifest, manifest);
    await assert.rejects(store.getRelease(a.id, 'nope'), { name: 'NotFoundError', message: /^release "nope" not found/ });
    await assert.rejects(store.setReleaseStatus(a.id, 'nope', 'active'), { name: 'NotFoundError' });
    await assert.rejects(store.createRelease({ environmentId: 'env_gone', hash: 'h', manifest, sizeBytes: 1 }), { name: 'NotFoundError' });
  });

  test('concurrent uploads to one environment get distinct versions', async () => {
    const store = get();
    const { id } = await seedEnv(store);
    const hashes = ['c1', 'c2', 'c3', 'c4', 'c1'];
    const results = await Promise.all(hashes.map((hash) => store.createRelease({ environmentId: id, hash, manifest, sizeBytes: 1 })));
    assert.equal(results.filter((r) => r.created).length, 4);
    assert.deepEqual((await store.listReleases(id)).map((r) => r.version), [4, 3, 2, 1]);
  });

  test('scales: overrides are set, replaced and read back per environment', async () => {
    const store = get();
    const { id } = await seedEnv(store);
    const other = await seedEnv(store);
    assert.deepEqual(await store.getScales(id), {});
    await store.setScale(id, 'web', 3);
    await store.setScale(id, 'worker', 0);
    await store.setScale(id, 'web', 5);
    await store.setScale(other.id, 'web', 1);
    assert.deepEqual(await store.getScales(id), { web: 5, worker: 0 });
    await assert.rejects(store.setScale(id, 'web', -1), { name: 'InputError', message: /^instances: -1 is not an instance count/ });
    await assert.rejects(store.setScale('env_gone', 'web', 1), { name: 'NotFoundError' });
  });

  test('instances: create, list with joined names and filters, desired state, delete', async () => {
    const store = get();
    const { tenant, env, id } = await seedEnv(store);
    await store.createRelease({ environmentId: id, hash: 'r1', manifest, sizeBytes: 1 });
    const zoneA = uniq('za');
    const zoneB = uniq('zb');
    const i1 = uniq('web-');
    const i2 = uniq('web-');
    const created = await store.createInstance({ id: i1, environmentId: id, service: 'web', release: 'r1', zone: zoneA });
    assert.equal(created.desired, 'running');
    assert.equal(created.tenant, tenant);
    await store.createInstance({ id: i2, environmentId: id, service: 'web', release: 'r1', zone: zoneB });
    await assert.rejects(store.createInstance({ id: i1, environmentId: id, service: 'web', release: 'r1', zone: zoneA }), {
      name: 'ConflictError',
      message: `instance "${i1}" already exists; pick another id`,
    });
    await assert.rejects(store.createInstance({ id: uniq('x'), environmentId: id, service: 'web', release: 'nope', zone: zoneA }), {
      name: 'NotFoundError',
      message: /^release "nope" not found in environment/,
    });

    const all = await store.listInstances({ environmentId: id });
    assert.deepEqual(all.map((i) => i.id), [i1, i2]);
    const first = all[0];
    assert.ok(first);
    assert.deepEqual(
      { ...first, createdAt: 'x' },
      { id: i1, environmentId: id, tenant, environment: env, service: 'web', release: 'r1', zone: zoneA, desired: 'running', observed: null, observedAt: null, createdAt: 'x', address: null },
    );
    assert.deepEqual((await store.listInstances({ zone: zoneB })).map((i) => i.id), [i2]);
    assert.deepEqual((await store.listInstances({ environmentId: id, zone: zoneA })).map((i) => i.id), [i1]);
    assert.ok((await store.listInstances()).length >= 2);

    await store.setInstanceDesired(i1, 'stopped');
    assert.equal((await store.listInstances({ zone: zoneA }))[0]?.desired, 'stopped');
    await store.deleteInstance(i1);
    assert.deepEqual((await store.listInstances({ environmentId: id })).map((i) => i.id), [i2]);
    await assert.rejects(store.deleteInstance(i1), { name: 'NotFoundError', message: `instance "${i1}" not found; it may have been deleted` });
    await assert.rejects(store.setInstanceDesired(i1, 'running'), { name: 'NotFoundError' });
  });

  test('updateObserved writes and tells listeners only when the observed value changes', async () => {
    const store = get();
    const { tenant, env, id } = await seedEnv(store);
    await store.createRelease({ environmentId: id, hash: 'r1', manifest, sizeBytes: 1 });
    const iid = uniq('web-');
    await store.createInstance({ id: iid, environmentId: id, service: 'web', release: 'r1', zone: 'a' });
    const rec = record(store);
    try {
      assert.equal(await store.updateObserved(iid, observed(iid)), true);
      const stored = (await store.listInstances({ environmentId: id }))[0];
      assert.deepEqual(stored?.observed, observed(iid));
      assert.match(stored?.observedAt ?? '', isoRe);
      assert.equal(await store.updateObserved(iid, observed(iid)), false);
      // Same value with keys in another order: jsonb compares by value.
      const reordered: ObservedInstance = {
        startedAt: '2026-01-01T00:00:00.000Z',
        message: 'running',
        lastExitSignal: null,
        lastExitCode: null,
        restarts: 0,
        healthy: true,
        port: 40001,
        address: '127.0.0.1',
        pid: 4242,
        state: 'running',
        id: iid,
      };
      assert.equal(await store.updateObserved(iid, reordered), false);
      assert.equal(await store.updateObserved(iid, observed(iid, { healthy: false })), true);
      assert.equal(await store.updateObserved(iid, null), true);
      assert.equal(await store.updateObserved(iid, null), false);
      assert.equal((await store.listInstances({ environmentId: id }))[0]?.observed, null);
      assert.equal(await store.updateObserved('gone', observed('gone')), false);
      assert.deepEqual(rec.changes, [
        { kind: 'instance', tenant, environment: env, environmentId: id },
        { kind: 'instance', tenant, environment: env, environmentId: id },
        { kind: 'instance', tenant, environment: env, environmentId: id },
      ]);
    } finally {
      rec.stop();
    }
  });

  test('change feed: one change per committed write, none for a failed write, none after unsubscribe', async () => {
    const store = get();
    const rec = record(store);
    const tenant = uniq('t');
    await store.createTenant(tenant);
    await assert.rejects(store.createTenant(tenant), { name: 'ConflictError' });
    const e = await store.createEnvironment({ tenant, name: 'prod', lane: 'single' });
    await store.createRelease({ environmentId: e.id, hash: 'h', manifest, sizeBytes: 1 });
    await store.createRelease({ environmentId: e.id, hash: 'h', manifest, sizeBytes: 1 });
    await store.setScale(e.id, 'web', 2);
    await store.addEvent({ tenant, environment: 'prod', reason: 'Deployed', message: 'release h deployed' });
    // A listener that throws must not turn the write into a failure or starve other listeners.
    const unsubscribeThrower = store.onChange(() => {
      throw new Error('listener bug');
    });
    await store.setEnvironmentPhase(e.id, 'deleting');
    unsubscribeThrower();
    rec.stop();
    await store.setEnvironmentPhase(e.id, 'active');
    const scope = { tenant, environment: 'prod', environmentId: e.id };
    assert.deepEqual(rec.changes, [
      { kind: 'tenant', tenant },
      { kind: 'environment', ...scope },
      { kind: 'release', ...scope },
      { kind: 'service', ...scope },
      { kind: 'event', tenant, environment: 'prod' },
      { kind: 'environment', ...scope },
    ]);
  });

  test('zones: upsert refreshes lastSeenAt and emits a change only when agentUrl, address or pid change', async () => {
    const store = get();
    const name = uniq('z');
    const rec = record(store);
    try {
      const z1 = await store.upsertZone({ name, agentUrl: 'http://127.0.0.1:7001', address: '127.0.0.1', pid: 100 });
      await new Promise((r) => setTimeout(r, 5));
      const z2 = await store.upsertZone({ name, agentUrl: 'http://127.0.0.1:7001', address: '127.0.0.1', pid: 100 });
      assert.ok(z2.lastSeenAt > z1.lastSeenAt, `lastSeenAt ${z2.lastSeenAt} should be after ${z1.lastSeenAt}`);
      await store.upsertZone({ name, agentUrl: 'http://127.0.0.1:7001', address: '127.0.0.1', pid: 101 });
      const listed = (await store.listZones()).find((z) => z.name === name);
      assert.deepEqual({ ...listed, lastSeenAt: 'x' }, { name, agentUrl: 'http://127.0.0.1:7001', address: '127.0.0.1', pid: 101, lastSeenAt: 'x' });
      assert.deepEqual(rec.changes, [{ kind: 'zone' }, { kind: 'zone' }]);
    } finally {
      rec.stop();
    }
  });

  test('events: oldest first, filtered by tenant and environment, followed with afterId, limited', async () => {
    const store = get();
    const t1 = uniq('t');
    const t2 = uniq('t');
    const a = await store.addEvent({ tenant: t1, environment: 'prod', reason: 'A', object: 'release/h1', message: 'first' });
    const b = await store.addEvent({ tenant: t2, environment: 'prod', reason: 'B', message: 'other tenant' });
    const c = await store.addEvent({ tenant: t1, environment: 'acc', reason: 'C', message: 'other env' });
    const d = await store.addEvent({ tenant: t1, environment: 'prod', reason: 'D', message: 'second' });
    assert.ok(a.id < b.id && b.id < c.id && c.id < d.id);
    assert.equal(typeof a.id, 'number');
    assert.deepEqual({ ...a, time: 'x' }, { id: a.id, time: 'x', tenant: t1, environment: 'prod', reason: 'A', object: 'release/h1', message: 'first' });
    assert.equal(b.object, null);

    assert.deepEqual((await store.listEvents({ tenant: t1 })).map((e) => e.reason), ['A', 'C', 'D']);
    assert.deepEqual((await store.listEvents({ tenant: t1, environment: 'prod' })).map((e) => e.reason), ['A', 'D']);
    assert.deepEqual((await store.listEvents({ tenant: t1, afterId: a.id })).map((e) => e.reason), ['C', 'D']);
    assert.deepEqual((await store.listEvents({ tenant: t1, afterId: a.id, limit: 1 })).map((e) => e.reason), ['C']);
    // Without afterId a limit keeps the latest events, still oldest first.
    assert.deepEqual((await store.listEvents({ tenant: t1, limit: 2 })).map((e) => e.reason), ['C', 'D']);
    const ids = (await store.listEvents({ afterId: 0, limit: 5000 })).map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
    assert.ok(ids.length <= 1000);
  });

  test('deleteEnvironment removes its releases, scale overrides and instances but keeps events', async () => {
    const store = get();
    const { tenant, id } = await seedEnv(store);
    const keep = await seedEnv(store);
    for (const e of [id, keep.id]) {
      await store.createRelease({ environmentId: e, hash: 'r1', manifest, sizeBytes: 1 });
      await store.setScale(e, 'web', 2);
      await store.createInstance({ id: `${e}-web-1`, environmentId: e, service: 'web', release: 'r1', zone: 'a' });
    }
    await store.addEvent({ tenant, environment: 'prod', reason: 'Deployed', message: 'r1' });
    const rec = record(store);
    await store.deleteEnvironment(id);
    rec.stop();
    assert.deepEqual(rec.changes, [
      { kind: 'instance', tenant, environment: 'prod', environmentId: id },
      { kind: 'environment', tenant, environment: 'prod', environmentId: id },
    ]);
    await assert.rejects(store.getEnvironmentById(id), { name: 'NotFoundError' });
    assert.deepEqual(await store.listReleases(id), []);
    assert.deepEqual(await store.getScales(id), {});
    assert.deepEqual(await store.listInstances({ environmentId: id }), []);
    assert.equal((await store.listEvents({ tenant })).length, 1);
    // The neighbour is untouched.
    assert.equal((await store.listReleases(keep.id)).length, 1);
    assert.deepEqual(await store.getScales(keep.id), { web: 2 });
    assert.equal((await store.listInstances({ environmentId: keep.id })).length, 1);
    await assert.rejects(store.deleteEnvironment(id), { name: 'NotFoundError' });
  });

  test('tokens: stored by hash, found by hash, counted by role', async () => {
    const store = get();
    const name = uniq('ci');
    const hash = `sha256:${name}`;
    assert.equal(await store.findTokenByHash(hash), null);
    await store.addToken({ name, role: 'node', hash });
    assert.deepEqual(await store.findTokenByHash(hash), { name, role: 'node' });
    assert.equal(await store.hasToken('node'), true);
    await assert.rejects(store.addToken({ name, role: 'admin', hash: 'other' }), { name: 'ConflictError', message: /^token "ci\d+" already exists/ });
  });
}

describe('store on PGlite (embedded, file-backed)', () => {
  let dir = '';
  let store: Store | undefined;
  before(async () => {
    dir = await tempDir('lanes-store-');
    store = await openStore({ dataDir: `${dir}/db` });
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const get = (): Store => {
    assert.ok(store, 'store is open');
    return store;
  };

  test('a fresh PGlite store has no admin token yet', async () => {
    assert.equal(await get().hasToken('admin'), false);
  });

  defineCases(get);

  test('data survives close and reopen of the same directory, and migrations do not run again', async () => {
    const tenant = uniq('t');
    await get().createTenant(tenant);
    await get().close();
    const logged: string[] = [];
    store = await openStore({ dataDir: `${dir}/db`, logger: { info: (_o, msg) => logged.push(msg) } });
    assert.equal((await get().getTenant(tenant)).name, tenant);
    assert.ok(!logged.includes('migration applied'), `logged: ${logged.join(', ')}`);
  });
});

describe('store on PostgreSQL (throwaway cluster)', () => {
  const bin = findPostgresBin();
  if (bin === null) {
    test('PostgreSQL cases', (t) => {
      t.skip('PostgreSQL binaries not found (install postgresql): looked in /usr/lib/postgresql/<version>/bin');
    });
    return;
  }
  let cluster: ThrowawayPostgres | undefined;
  let store: Store | undefined;
  before(async () => {
    cluster = await startPostgres();
    store = await openStore({ url: await cluster.createDatabase('suite') });
  });
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });
  const get = (): Store => {
    assert.ok(store, 'store is open');
    return store;
  };

  defineCases(get);

  test('stores opening one database at once run each migration exactly once', async () => {
    assert.ok(cluster);
    const url = await cluster.createDatabase('concurrent');
    let applied = 0;
    const logger = { info: (_o: object, msg: string): void => void (msg === 'migration applied' && applied++) };
    const stores = await Promise.all([1, 2, 3].map(() => openStore({ url, logger })));
    try {
      assert.equal(applied, migrationNames.length);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const res = await client.query<{ name: string }>('select name from kysely_migration order by name');
        assert.deepEqual(res.rows.map((r) => r.name), [...migrationNames]);
      } finally {
        await client.end();
      }
      // Every store works on the shared schema and sees the others' writes.
      const [s1, s2] = stores;
      assert.ok(s1 && s2);
      await s1.createTenant('shared');
      assert.equal((await s2.getTenant('shared')).name, 'shared');
      await assert.rejects(s2.createTenant('shared'), { name: 'ConflictError' });
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test('data survives close and reopen on the same database', async () => {
    assert.ok(cluster);
    const url = await cluster.createDatabase('reopen');
    const first = await openStore({ url });
    await first.createTenant('kept');
    await first.close();
    const second = await openStore({ url });
    try {
      assert.equal((await second.getTenant('kept')).name, 'kept');
    } finally {
      await second.close();
    }
  });
});

test('openStore without a url or a dataDir says what to give', async () => {
  await assert.rejects(openStore({}), { name: 'InputError', message: 'store: give a database url or a dataDir' });
});
