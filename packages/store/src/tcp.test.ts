/**
 * Platform TCP ports (tcp_listeners), on embedded PGlite and, when Debian's binaries are
 * there, on a throwaway PostgreSQL cluster: stable per service, unique across
 * environments, freed with the service or the environment.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { findPostgresBin, startPostgres, tempDir, type ThrowawayPostgres } from '@lanes/testkit';
import { openStore, type Change, type Store } from './index.js';

let seq = 0;
const uniq = (prefix: string): string => `${prefix}${++seq}`;

async function seedEnv(store: Store): Promise<string> {
  const tenant = uniq('tcp');
  await store.createTenant(tenant);
  return (await store.createEnvironment({ tenant, name: 'prod', lane: 'single' })).id;
}

function defineCases(get: () => Store, base: number): void {
  const range = { first: base, last: base + 2 };

  test('a tcp service gets the lowest free port of the range and keeps it', async () => {
    const store = get();
    const a = await seedEnv(store);
    const b = await seedEnv(store);
    const broker = await store.assignTcpPort(a, 'broker', range);
    assert.equal(broker.port, base);
    assert.equal((await store.assignTcpPort(a, 'broker', range)).port, base, 'asking again gives the same port');
    assert.equal((await store.assignTcpPort(b, 'broker', range)).port, base + 1, 'another environment gets another port');
    assert.equal((await store.assignTcpPort(a, 'db', range)).port, base + 2);
    await assert.rejects(store.assignTcpPort(b, 'db', range), (err: Error) => {
      assert.equal(err.name, 'ConflictError');
      assert.match(err.message, new RegExp(`all 3 platform TCP ports \\(${base}-${base + 2}\\) are in use`));
      return true;
    });
    assert.deepEqual(
      (await store.listTcpListeners(a)).map((l) => [l.service, l.port]),
      [['broker', base], ['db', base + 2]],
    );

    // Freed with its service: the port goes to the next service that needs one.
    assert.equal(await store.releaseTcpPort(a, 'broker'), true);
    assert.equal(await store.releaseTcpPort(a, 'broker'), false);
    assert.equal((await store.assignTcpPort(b, 'db', range)).port, base);

    // Freed with the environment.
    await store.deleteEnvironment(a);
    await store.deleteEnvironment(b);
    assert.deepEqual((await store.listTcpListeners()).filter((l) => l.port >= range.first && l.port <= range.last), []);
  });

  test('assigning a port is a change the reconciler hears of; asking again is not', async () => {
    const store = get();
    const env = await seedEnv(store);
    const changes: Change[] = [];
    const stop = store.onChange((c) => changes.push(c));
    try {
      await store.assignTcpPort(env, 'mq', { first: base + 10, last: base + 10 });
      await store.assignTcpPort(env, 'mq', { first: base + 10, last: base + 10 });
      assert.deepEqual(changes.map((c) => c.kind), ['service']);
    } finally {
      stop();
      await store.deleteEnvironment(env);
    }
  });

  test('a bad range or service name is refused with the field named', async () => {
    const store = get();
    const env = await seedEnv(store);
    await assert.rejects(store.assignTcpPort(env, 'mq', { first: 2000, last: 1000 }), { name: 'InputError', message: 'tcp ports: 2000-1000 is not a port range; use first-last within 1-65535' });
    await assert.rejects(store.assignTcpPort(env, 'Bad Name', range), { name: 'InputError' });
    await assert.rejects(store.assignTcpPort('env_missing', 'mq', range), { name: 'NotFoundError' });
    await store.deleteEnvironment(env);
  });
}

describe('platform TCP ports on PGlite', () => {
  let dir = '';
  let store: Store | undefined;
  before(async () => {
    dir = await tempDir('lanes-store-tcp-');
    store = await openStore({ dataDir: `${dir}/db` });
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });
  defineCases(() => {
    assert.ok(store, 'store is open');
    return store;
  }, 30_000);
});

describe('platform TCP ports on PostgreSQL', () => {
  if (findPostgresBin() === null) {
    test('PostgreSQL cases', (t) => {
      t.skip('PostgreSQL binaries not found (install postgresql): looked in /usr/lib/postgresql/<version>/bin');
    });
    return;
  }
  let cluster: ThrowawayPostgres | undefined;
  let store: Store | undefined;
  before(async () => {
    cluster = await startPostgres();
    store = await openStore({ url: await cluster.createDatabase('tcp') });
  });
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });
  defineCases(() => {
    assert.ok(store, 'store is open');
    return store;
  }, 30_000);

  test('environments racing for the last free ports each get a different one', async () => {
    assert.ok(store);
    const s = store;
    const envs = await Promise.all([1, 2, 3, 4].map(() => seedEnv(s)));
    const got = await Promise.all(envs.map((e) => s.assignTcpPort(e, 'mq', { first: 31_000, last: 31_003 })));
    assert.deepEqual(got.map((l) => l.port).sort(), [31_000, 31_001, 31_002, 31_003]);
  });
});
