/**
 * Managed databases' records, on embedded PGlite and (when Debian's binaries are there) a
 * throwaway PostgreSQL cluster: created once per name and environment, listed, deleted,
 * gone with their environment; their members' instances run release 'platform'.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { findPostgresBin, startPostgres, tempDir, type ThrowawayPostgres } from '@lanes/testkit';
import { openStore, type StoredDatabase, type Store } from './index.js';

let seq = 0;
const members: StoredDatabase['members'] = [
  { name: 'a', kind: 'member', zone: 'a', instance: 'db-main-a-000001', port: 15000, checkPort: 15001, address: null },
  { name: 'b', kind: 'member', zone: 'b', instance: 'db-main-b-000002', port: 15002, checkPort: 15003, address: null },
  { name: 'arbiter', kind: 'arbiter', zone: 'c', instance: 'db-main-arb-000003', port: 15004, checkPort: 15004, address: null },
];

function defineCases(get: () => Store): void {
  const seed = async (): Promise<string> => {
    const tenant = `dbt${++seq}`;
    await get().createTenant(tenant);
    return (await get().createEnvironment({ tenant, name: 'prod', lane: 'double' })).id;
  };
  const input = (environmentId: string, name = 'main') => ({
    environmentId,
    name,
    engine: 'postgres' as const,
    source: 'manifest' as const,
    settings: { backupIntervalMs: 86_400_000, backupRetentionMs: 864_000_000 },
    members,
    restoredFrom: null,
  });

  test('a database is recorded with its members and listed per environment', async () => {
    const store = get();
    const env = await seed();
    const db = await store.createDatabase(input(env));
    assert.equal(db.phase, 'active');
    assert.deepEqual(db.members, members);
    assert.deepEqual((await store.getDatabase(env, 'main')).settings, { backupIntervalMs: 86_400_000, backupRetentionMs: 864_000_000 });
    await store.createDatabase({ ...input(env, 'audit'), source: 'restore', restoredFrom: { database: 'main', toTime: '2026-12-02T10:00:00.000Z' } });
    assert.deepEqual((await store.listDatabases(env)).map((d) => [d.name, d.source, d.restoredFrom?.database ?? null]), [['audit', 'restore', 'main'], ['main', 'manifest', null]]);
  });

  test('a second database of the same name is a conflict and changes nothing', async () => {
    const store = get();
    const env = await seed();
    await store.createDatabase(input(env));
    await assert.rejects(store.createDatabase({ ...input(env), engine: 'postgres', members: [] }), /ConflictError: database "main" already exists in dbt\d+\/prod/);
    assert.deepEqual((await store.getDatabase(env, 'main')).members, members);
    await assert.rejects(store.getDatabase(env, 'nope'), /NotFoundError: database "nope" not found in dbt\d+\/prod; see lanes db list/);
  });

  test('members run release "platform"; any other release must exist', async () => {
    const store = get();
    const env = await seed();
    await store.createDatabase(input(env));
    const row = await store.createInstance({ id: `db-main-a-${seq}`, environmentId: env, service: 'db-main', release: 'platform', zone: 'a' });
    assert.equal(row.release, 'platform');
    await assert.rejects(store.createInstance({ id: `web-${seq}`, environmentId: env, service: 'web', release: 'f'.repeat(64), zone: 'a' }), /release "f{64}" not found/);
  });

  test('deleting: phase first, then the record; the environment takes its databases with it', async () => {
    const store = get();
    const env = await seed();
    await store.createDatabase(input(env));
    await store.setDatabasePhase(env, 'main', 'deleting');
    assert.equal((await store.getDatabase(env, 'main')).phase, 'deleting');
    await store.deleteDatabase(env, 'main');
    assert.deepEqual(await store.listDatabases(env), []);
    await store.createDatabase(input(env));
    await store.deleteEnvironment(env);
    assert.deepEqual(await store.listDatabases(env), []);
  });
}

describe('databases on PGlite', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = await tempDir('lanes-store-db-');
    store = await openStore({ dataDir: `${dir}/db` });
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });
  defineCases(() => store);
});

describe('databases on PostgreSQL', { skip: findPostgresBin() ? false : 'PostgreSQL binaries not found (install postgresql)' }, () => {
  let pg: ThrowawayPostgres;
  let store: Store;
  before(async () => {
    pg = await startPostgres();
    store = await openStore({ url: await pg.createDatabase('lanes_db_test') });
  });
  after(async () => {
    await store?.close();
    await pg?.stop();
  });
  defineCases(() => store);
});
