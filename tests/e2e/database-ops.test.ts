/**
 * Operating managed databases through the CLI on real PostgreSQL: `lanes db create` on a
 * running single-lane environment (its services restarted with the new URL), a switchover
 * under writes, backups with point-in-time recovery into a new database, deletion, and bad
 * input answered with one line and nothing changed.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { findPostgresBin, isAlive, sleep, waitFor } from '@lanes/testkit';
import { TestPlatform, repoRoot } from '../support/platform.js';
import { Writer, dbSettled, dbStatus, dbUrl, query } from '../support/database.js';

const bin = findPostgresBin();
const appDir = path.join(repoRoot, 'tests', 'fixtures', 'db-app');

/** The fixture app with its lanes.yaml replaced. */
async function appWith(manifest: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lanes-db-app-'));
  await cp(appDir, dir, { recursive: true });
  await writeFile(path.join(dir, 'lanes.yaml'), manifest);
  return dir;
}

describe('managed PostgreSQL: operations', { skip: bin ? false : 'PostgreSQL binaries not found (install postgresql): skipping the managed-database platform tests' }, () => {
  let p: TestPlatform;
  let url = '';
  const base = 20_000 + Math.floor(Math.random() * 400) * 100;
  const writers: Writer[] = [];
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop();
  });

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b', 'c'], env: { LANES_DATABASE_PORTS: `${base}-${base + 99}` } });
    assert.equal((await p.cli(['tenant', 'create', 'shop'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'shop/prod', '--lane', 'double'])).code, 0);
    const r = await p.cli(['deploy', 'shop/prod', appDir], 180_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await dbSettled(p, 'shop/prod', 'main');
    url = await dbUrl(p, 'shop/prod', 'main');
    await query(url, 'create table writes (id bigint primary key)');
  });
  after(async () => {
    await p?.stop();
  });

  it('lanes db create on a running single-lane environment: one member, and the services restart with its URL', async () => {
    assert.equal((await p.cli(['env', 'create', 'shop/dev'])).code, 0);
    const dir = await appWith('name: notes\nservices:\n  web: { command: node server.js, http: true, health: { path: /healthz } }\n');
    assert.equal((await p.cli(['deploy', 'shop/dev', dir], 120_000)).code, 0);
    const first = await p.get(p.host('dev', 'shop'));
    assert.deepEqual(JSON.parse(first.text), {}, 'no database yet');
    const r = await p.cli(['db', 'create', 'shop/dev', 'cache']);
    assert.equal(r.code, 0, r.stderr);
    const s = await dbSettled(p, 'shop/dev', 'cache', { single: true });
    assert.equal(s.members.length, 1, 'a single lane has one member');
    await waitFor('the service restarted with the URL', async () => {
      const res = await p.get(p.host('dev', 'shop'));
      const vars = JSON.parse(res.text) as Record<string, { port: number }>;
      return vars['DATABASE_URL_CACHE']?.port === s.tcp?.port && vars['DATABASE_URL']?.port === s.tcp?.port;
    }, { timeoutMs: 60_000 });
    const printed = await p.cli(['db', 'url', 'shop/dev', 'cache']);
    assert.equal(printed.code, 0, printed.stderr);
    const devUrl = printed.stdout.trim();
    assert.equal(devUrl, await dbUrl(p, 'shop/dev', 'cache'));
    assert.match(devUrl, new RegExp(`^postgres://app:[^*@]+@127\\.0\\.0\\.1:${s.tcp?.port}/app$`));
    // The gateway picks the primary on its next check: a connection before that is refused.
    const rows = await waitFor('a query through the gateway', () => query<{ one: number }>(devUrl, 'select 1 as one').catch(() => false as const), { timeoutMs: 10_000 });
    assert.deepEqual(rows, [{ one: 1 }]);
  });

  it('lanes db delete stops the members and removes their data', async () => {
    const s = await dbStatus(p, 'shop/dev', 'cache');
    const pid = s.members[0]?.pid as number;
    assert.ok(pid > 0);
    const r = await p.cli(['db', 'delete', 'shop/dev', 'cache']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('database gone', async () => (await p.api('GET', '/v1/tenants/shop/environments/dev/databases/cache')).status === 404, { timeoutMs: 90_000 });
    await waitFor('its PostgreSQL stopped', () => !isAlive(pid), { timeoutMs: 30_000 });
    const envDirs = readdirSync(path.join(p.home, 'databases'));
    assert.ok(envDirs.length > 0);
    for (const d of envDirs) assert.equal(existsSync(path.join(p.home, 'databases', d, 'cache')), false, 'its data directory is removed');
  });

  it('switchover under writes: no acknowledged write lost, the old primary becomes the synchronous standby', async () => {
    const s0 = await dbSettled(p, 'shop/prod', 'main');
    const w = new Writer(url).start();
    writers.push(w);
    await w.resumed(100, 30_000);
    const r = await p.cli(['db', 'switchover', 'shop/prod', 'main'], 150_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /primary is now/);
    await w.resumed(100, 30_000);
    await w.stop();
    const s1 = await dbSettled(p, 'shop/prod', 'main', { not: s0.primary ?? undefined });
    assert.equal(s1.members.find((m) => m.name === s0.primary)?.role, 'standby');
    assert.deepEqual(await w.lost(), [], `every acknowledged write survives the switchover (${w.acked.length})`);
  });

  it('backup, more writes, restore to a time between them: exactly the rows committed before, in a new database', async () => {
    await dbSettled(p, 'shop/prod', 'main');
    const b = await p.cli(['db', 'backup', 'shop/prod', 'main', '--json'], 600_000);
    assert.equal(b.code, 0, b.stderr);
    await query(url, 'create table ledger (n int primary key)');
    for (let n = 1; n <= 20; n++) await query(url, 'insert into ledger values ($1)', [n]);
    await sleep(1200);
    const target = new Date().toISOString();
    await sleep(1200);
    for (let n = 21; n <= 40; n++) await query(url, 'insert into ledger values ($1)', [n]);
    // A second backup switches WAL, so the archive holds everything past the target.
    assert.equal((await p.cli(['db', 'backup', 'shop/prod', 'main'], 600_000)).code, 0);
    const list = await p.cli(['db', 'backups', 'shop/prod', 'main', '--json']);
    assert.ok((JSON.parse(list.stdout) as { items: unknown[] }).items.length >= 2);
    const r = await p.cli(['db', 'restore', 'shop/prod', 'main', '--to-time', target, '--as', 'main-pitr'], 600_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await dbSettled(p, 'shop/prod', 'main-pitr');
    const restored = await dbUrl(p, 'shop/prod', 'main-pitr');
    const rows = await query<{ n: number }>(restored, 'select n from ledger order by n');
    assert.deepEqual(rows.map((x) => x.n), Array.from({ length: 20 }, (_, i) => i + 1), 'exactly the rows committed before the target time');
    assert.equal((await query<{ c: string }>(url, 'select count(*) as c from ledger'))[0]?.c, '40', 'the live database is untouched');
    const st = await dbStatus(p, 'shop/prod', 'main');
    assert.ok(st.backup.last, 'status shows the last backup');
  });

  it('bad input: unknown engine, duplicate name, restore outside the retention window — one line each, nothing changed', async () => {
    const before = await p.api<{ items: { name: string }[] }>('GET', '/v1/tenants/shop/environments/prod/databases');
    const engine = await p.cli(['db', 'create', 'shop/prod', 'other', '--engine', 'mysql']);
    assert.notEqual(engine.code, 0);
    assert.match(engine.stderr, /engine: "mysql" is not a known engine; use postgres/);
    assert.equal(engine.stderr.trim().split('\n').length, 1);
    const dup = await p.cli(['db', 'create', 'shop/prod', 'main']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /database "main" already exists/);
    const old = await p.cli(['db', 'restore', 'shop/prod', 'main', '--to-time', '2020-01-01T00:00:00Z', '--as', 'too-old']);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /outside the retention window/);
    const declared = await p.cli(['db', 'delete', 'shop/prod', 'main']);
    assert.notEqual(declared.code, 0);
    assert.match(declared.stderr, /database main is declared in the running release of shop\/prod; remove it from lanes\.yaml/);
    const future = await p.cli(['db', 'restore', 'shop/prod', 'main', '--to-time', '2999-01-01T00:00:00Z', '--as', 'too-new']);
    assert.notEqual(future.code, 0);
    assert.match(future.stderr, /in the future/);
    const after = await p.api<{ items: { name: string }[] }>('GET', '/v1/tenants/shop/environments/prod/databases');
    assert.deepEqual(after.body.items.map((d) => d.name), before.body.items.map((d) => d.name), 'no database was created or removed');
    const dep = await p.cli(['deploy', 'shop/prod', await appWith('name: notes\nservices:\n  web: { command: node server.js, http: true }\ndatabases:\n  main: { engine: mysql }\n')]);
    assert.notEqual(dep.code, 0);
    assert.match(dep.stderr, /databases\.main\.engine: "mysql" is not a known engine/);
    const clash = await p.cli(['deploy', 'shop/prod', await appWith('name: notes\nservices:\n  db-main: { command: node server.js, http: true }\n')]);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, /services\.db-main: the name is taken by database main/);
  });
});
