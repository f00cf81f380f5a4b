/**
 * The same platform on a real PostgreSQL server (LANES_DATABASE_URL) instead of the
 * embedded PGlite: deploy, serve, and survive a kill -9 of the control plane with all state
 * intact. Skips, visibly, only where Debian's PostgreSQL binaries are absent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, startPostgres, waitFor, type ThrowawayPostgres } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

const bin = findPostgresBin();

describe('platform on a real PostgreSQL admin database', { skip: bin ? false : 'PostgreSQL binaries not found (install postgresql): skipping the real-PostgreSQL platform test' }, () => {
  let pg: ThrowawayPostgres;
  let p: TestPlatform;

  before(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase('lanes_admin');
    p = await TestPlatform.start({ zones: ['a', 'b'], env: { LANES_DATABASE_URL: url } });
  });
  after(async () => {
    await p?.stop();
    await pg?.stop();
  });

  it('keeps its state in PostgreSQL, not in LANES_HOME', async () => {
    const { existsSync } = await import('node:fs');
    const path = await import('node:path');
    assert.equal(existsSync(path.join(p.home, 'data', 'admin-db')), false, 'no embedded database was created');
    assert.equal((await p.cli(['tenant', 'create', 'pgco'])).code, 0);
    const { default: pgLib } = await import('pg');
    const client = new pgLib.Client({ connectionString: await pg.createDatabase('probe').then(() => (p.env['LANES_DATABASE_URL'] as string)) });
    await client.connect();
    try {
      const r = await client.query<{ name: string }>('select name from tenants');
      assert.deepEqual(r.rows.map((x) => x.name), ['pgco']);
    } finally {
      await client.end();
    }
  });

  it('deploys, serves, and keeps all state across a kill -9 of the control plane', async () => {
    assert.equal((await p.cli(['env', 'create', 'pgco/prod'])).code, 0);
    const r = await p.cli(['deploy', 'pgco/prod', helloDir], 120_000);
    assert.equal(r.code, 0, r.stderr);
    const before = await p.waitReady('pgco/prod');
    const cp = p.context().components?.controlplane;
    assert.ok(cp);
    process.kill(cp, 'SIGKILL');
    await waitFor('control plane back', async () => {
      const c = p.context().components?.controlplane;
      return c !== cp && (await p.api('GET', '/healthz', undefined, null).catch(() => ({ status: 0 }))).status === 200;
    }, { timeoutMs: 30_000 });
    const after = await p.waitReady('pgco/prod');
    assert.equal(after.release, before.release);
    assert.deepEqual(after.instances.map((i) => `${i.id}:${i.pid}`).sort(), before.instances.map((i) => `${i.id}:${i.pid}`).sort());
    const res = await p.get(p.host('prod', 'pgco'));
    assert.equal(res.status, 200);
  });
});
