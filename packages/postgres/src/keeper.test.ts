/**
 * The keeper and arbiter as processes with real PostgreSQL: a new cluster (initdb on one
 * member, pg_basebackup on the other, the standby made synchronous and recorded), the HTTP
 * surface (public probes, bearer token, problem+json errors, limits), SCRAM logins with the
 * generated passwords (never in a log line), a single-lane member and its network allow-list.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { findPostgresBin, tempDir, waitFor } from '@lanes/testkit';
import { Cluster, KEEPER_MAIN } from './test-helpers.js';

const HAVE_PG = findPostgresBin() !== null;
const SKIP = HAVE_PG ? false : 'PostgreSQL binaries not found (install postgresql): looked in /usr/lib/postgresql/<version>/bin';

function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KEEPER_MAIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('keeper process', () => {
  it('refuses bad flags with one line and exit code 2', async () => {
    const r = await runMain(['--name', 'a', '--state-dir', '/tmp/x', '--token-file', '/tmp/t', '--peer', 'b']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^keeper: --peer: "b" is not a peer/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('exits 1 naming the token file when it cannot read it', async () => {
    const dir = await tempDir('lanes-pgk-');
    const r = await runMain(['--name', 'a', '--state-dir', dir, '--token-file', path.join(dir, 'missing')]);
    assert.equal(r.code, 1);
    const line = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { level: number; msg: string; err: { message: string } };
    assert.equal(line.level, 60);
    assert.equal(line.msg, 'keeper could not start');
    assert.match(line.err.message, /^--token-file: cannot read .*missing \(ENOENT\)/);
  });
});

describe('a new cluster', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start();
    await c.waitHealthy('a', 'b');
  });
  after(async () => {
    await c?.close();
  });

  it('makes a the primary and b its synchronous standby, recorded by the arbiter', async () => {
    const a = await c.status('a');
    const b = await c.status('b');
    assert.equal(a.role, 'primary');
    assert.equal(a.term, 1);
    assert.equal(a.zone, 'zone-a');
    assert.equal(a.syncStandby, 'b');
    assert.ok(a.postgres.pid !== null && a.postgres.pid > 1);
    assert.equal(b.role, 'standby');
    assert.equal(b.holder, 'a');
    assert.equal(b.postgres.upstream, 'a');
    assert.ok(a.history.some((h) => h.primary === 'a' && /created the cluster/.test(h.reason)), JSON.stringify(a.history));
    const res = await fetch(`${c.arbiter?.url ?? ''}/status`, { headers: { authorization: `Bearer ${c.token}` } });
    const w = (await res.json()) as { term: number; holder: string; syncStandby: string };
    assert.deepEqual([w.term, w.holder, w.syncStandby], [1, 'a', 'b']);
  });

  it('answers /mirrorstatus 200 SUCCESS on the primary only, without a token', async () => {
    const ra = await fetch(`${c.member('a').url}/mirrorstatus`);
    assert.equal(ra.status, 200);
    assert.equal(await ra.text(), 'SUCCESS');
    const rb = await fetch(`${c.member('b').url}/mirrorstatus`);
    assert.equal(rb.status, 503);
    assert.equal(await rb.text(), 'FAILED');
  });

  it('wants the bearer token everywhere else and answers errors as problem+json', async () => {
    const url = c.member('a').url;
    const noToken = await fetch(`${url}/status`);
    assert.equal(noToken.status, 401);
    assert.equal(noToken.headers.get('content-type'), 'application/problem+json');
    assert.equal(((await noToken.json()) as { code: string }).code, 'LANES_ERR_UNAUTHENTICATED');
    const wrong = await fetch(`${url}/status`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } });
    assert.equal(wrong.status, 401);
    const bad = await c.post('a', '/lease', { kind: 'renew', term: 'x' });
    assert.equal(bad.status, 400);
    assert.match((bad.body as { detail: string }).detail, /^lease request: term: /);
    const big = await fetch(`${url}/lease`, { method: 'POST', headers: { authorization: `Bearer ${c.token}` }, body: 'x'.repeat(100_000) });
    assert.equal(big.status, 413);
    const missing = await fetch(`${url}/nope`, { headers: { authorization: `Bearer ${c.token}` } });
    assert.equal(missing.status, 404);
    const sw = await c.post('b', '/switchover', {});
    assert.equal(sw.status, 409);
    assert.match((sw.body as { detail: string }).detail, /^b is not the primary \(term 1 is held by a\)/);
  });

  it('refuses a lease request that would take the term from a healthy primary', async () => {
    const r = await c.post('b', '/lease', { kind: 'elect', term: 2, holder: 'arbiter', leaseMs: 2000, syncStandby: null });
    assert.equal(r.status, 200);
    assert.equal((r.body as { granted: boolean }).granted, false);
    assert.match((r.body as { reason: string }).reason, /promised term 1 to a for another \d+ ms/);
  });

  it('lets the application user in with its generated password (SCRAM), replicated synchronously', async () => {
    await c.sql('a', 'create table t (id bigint primary key, at timestamptz default now())');
    await c.sql('a', 'insert into t (id) values (1), (2)');
    const rows = await c.sql<{ n: string }>('b', 'select count(*) as n from t');
    assert.equal(rows[0]?.n, '2');
    const wrong = new pg.Client({ connectionString: `postgres://app:wrong@127.0.0.1:${c.member('a').pgPort}/app`, connectionTimeoutMillis: 3000 });
    await assert.rejects(wrong.connect(), /password authentication failed for user "app"/);
    const [setting] = await c.sql<{ s: string }>('a', "select current_setting('synchronous_commit') as s");
    assert.equal(setting?.s, 'on');
  });

  it('keeps the passwords in files of mode 0600 and never writes them to a log', async () => {
    const secrets = readdirSync(c.secretsDir).map((f) => path.join(c.secretsDir, f));
    assert.equal(secrets.length, 3);
    const values = secrets.map((f) => readFileSync(f, 'utf8').trim());
    for (const f of secrets) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    const logs = [path.join(c.dir, 'a.log'), path.join(c.dir, 'b.log'), path.join(c.dir, 'arbiter.log'), path.join(c.member('a').stateDir, 'postgres.log'), path.join(c.member('b').stateDir, 'postgres.log')];
    for (const log of logs) {
      const text = readFileSync(log, 'utf8');
      assert.ok(text.length > 0, log);
      for (const v of values) assert.ok(!text.includes(v), `${log} contains a password`);
      assert.ok(!text.includes(c.token), `${log} contains the token`);
    }
  });
});

describe('a single-lane member', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start({ members: ['solo'], arbiter: false, keeperArgs: ['--allow', '10.99.0.0/16'] });
  });
  after(async () => {
    await c?.close();
  });

  it('is primary on its own, and refuses clients from outside its allowed networks', async () => {
    await waitFor('the lone primary', async () => (await c.mirrorstatus('solo')) === 200, { timeoutMs: 60_000 });
    const s = await c.status('solo');
    assert.equal(s.role, 'primary');
    assert.equal(s.leaseValidForMs, null);
    assert.equal(s.syncStandby, null);
    const client = new pg.Client({ connectionString: await c.appUrl('solo'), connectionTimeoutMillis: 3000 });
    await assert.rejects(client.connect(), /no pg_hba.conf entry for host "127.0.0.1"/);
  });
});
