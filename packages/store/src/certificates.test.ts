/**
 * Environment certificates (certificates table), on embedded PGlite and, when Debian's
 * binaries are there, on a throwaway PostgreSQL cluster: one per environment, a renewal
 * never overwrites a custom certificate, gone with the environment.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { findPostgresBin, startPostgres, tempDir, type ThrowawayPostgres } from '@lanes/testkit';
import { openStore, type Change, type Store } from './index.js';

let seq = 0;

async function seedEnv(store: Store): Promise<string> {
  const tenant = `cert${++seq}`;
  await store.createTenant(tenant);
  return (await store.createEnvironment({ tenant, name: 'prod', lane: 'single' })).id;
}

const cert = (source: 'platform' | 'custom', n: number) => ({
  certPem: `-----BEGIN CERTIFICATE-----\n${source}${n}\n-----END CERTIFICATE-----\n`,
  keyPem: `key-${source}-${n}`,
  source,
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: `2026-04-0${n}T00:00:00.000Z`,
});

function defineCases(get: () => Store): void {
  test('an environment has at most one certificate; a platform renewal never replaces a custom one', async () => {
    const store = get();
    const env = await seedEnv(store);
    assert.equal(await store.getCertificate(env), null);
    const first = await store.putCertificate({ environmentId: env, ...cert('platform', 1) }, 'platform-only');
    assert.equal(first?.source, 'platform');
    assert.equal(first?.notAfter, '2026-04-01T00:00:00.000Z');
    const renewed = await store.putCertificate({ environmentId: env, ...cert('platform', 2) }, 'platform-only');
    assert.equal(renewed?.certPem, cert('platform', 2).certPem, 'a platform certificate is renewed in place');
    await store.putCertificate({ environmentId: env, ...cert('custom', 3) });
    assert.equal(await store.putCertificate({ environmentId: env, ...cert('platform', 4) }, 'platform-only'), null, 'the custom one stays');
    const now = await store.getCertificate(env);
    assert.equal(now?.source, 'custom');
    assert.equal(now?.keyPem, 'key-custom-3');
    assert.equal((await store.listCertificates()).filter((c) => c.environmentId === env).length, 1);
    assert.equal(await store.deleteCertificate(env), true);
    assert.equal(await store.deleteCertificate(env), false);
    assert.equal(await store.getCertificate(env), null);
    await store.deleteEnvironment(env);
  });

  test('a certificate goes with its environment, and writes are changes of the environment', async () => {
    const store = get();
    const env = await seedEnv(store);
    const changes: Change[] = [];
    const stop = store.onChange((c) => changes.push(c));
    try {
      await store.putCertificate({ environmentId: env, ...cert('platform', 1) });
      await store.deleteCertificate(env);
      await store.putCertificate({ environmentId: env, ...cert('custom', 2) });
      assert.deepEqual(changes.map((c) => [c.kind, c.environmentId]), [['environment', env], ['environment', env], ['environment', env]]);
    } finally {
      stop();
    }
    await store.deleteEnvironment(env);
    assert.equal(await store.getCertificate(env), null);
    await assert.rejects(store.putCertificate({ environmentId: env, ...cert('platform', 1) }), { name: 'NotFoundError' });
  });
}

describe('certificates on PGlite', () => {
  let dir = '';
  let store: Store | undefined;
  before(async () => {
    dir = await tempDir('lanes-store-cert-');
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

describe('certificates on PostgreSQL', () => {
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
    store = await openStore({ url: await cluster.createDatabase('certs') });
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
