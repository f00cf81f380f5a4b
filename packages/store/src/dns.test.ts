/**
 * DNS failover records (dns_records table), on embedded PGlite and, when Debian's binaries
 * are there, on a throwaway PostgreSQL cluster: create or replace by name, list, delete,
 * and every write told as a `dns` change.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { findPostgresBin, startPostgres, tempDir, type ThrowawayPostgres } from '@lanes/testkit';
import { openStore, type Change, type Store } from './index.js';

const check = { url: 'http://192.0.2.10/healthz', intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 };
const record = (name: string, ttl = 30) => ({
  name,
  ttl,
  primary: { address: '192.0.2.10', check },
  secondary: { address: '2001:db8::20', check: null },
});

function defineCases(get: () => Store): void {
  test('creates, replaces (keeping the creation time), lists and deletes failover records', async () => {
    const store = get();
    const changes: Change[] = [];
    const stop = store.onChange((c) => changes.push(c));
    try {
      const a = await store.putDnsRecord(record('www.dr.lanes.test'));
      assert.equal(a.created, true);
      assert.deepEqual(a.primary, { address: '192.0.2.10', check });
      assert.deepEqual(a.secondary, { address: '2001:db8::20', check: null });
      const b = await store.putDnsRecord({ ...record('www.dr.lanes.test', 5), secondary: { address: '198.51.100.20', check: { ...check, url: 'https://198.51.100.20/' } } });
      assert.equal(b.created, false);
      assert.equal(b.ttl, 5);
      assert.equal(b.createdAt, a.createdAt);
      assert.equal(b.secondary.check?.url, 'https://198.51.100.20/');
      await store.putDnsRecord(record('api.dr.lanes.test'));
      assert.deepEqual((await store.listDnsRecords()).map((r) => r.name), ['api.dr.lanes.test', 'www.dr.lanes.test']);
      await store.deleteDnsRecord('api.dr.lanes.test');
      await assert.rejects(store.deleteDnsRecord('api.dr.lanes.test'), { name: 'NotFoundError', message: /dns record "api\.dr\.lanes\.test" not found/ });
      assert.deepEqual((await store.listDnsRecords()).map((r) => r.name), ['www.dr.lanes.test']);
      await assert.rejects(store.putDnsRecord(record('x.lanes.test', 90_000)), { name: 'InputError' });
      assert.deepEqual(changes.map((c) => c.kind), ['dns', 'dns', 'dns', 'dns']);
    } finally {
      stop();
      for (const r of await store.listDnsRecords()) await store.deleteDnsRecord(r.name);
    }
  });
}

describe('dns records on PGlite', () => {
  let dir = '';
  let store: Store | undefined;
  before(async () => {
    dir = await tempDir('lanes-store-dns-');
    store = await openStore({ dataDir: `${dir}/db` });
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });
  defineCases(() => {
    assert.ok(store, 'store is open');
    return store;
  });
});

describe('dns records on PostgreSQL', () => {
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
    store = await openStore({ url: await cluster.createDatabase('dns') });
  });
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });
  defineCases(() => {
    assert.ok(store, 'store is open');
    return store;
  });
});
