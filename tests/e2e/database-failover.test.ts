/**
 * A managed PostgreSQL database of a double-lane environment, end to end on real clusters
 * (Debian's binaries): declared in the manifest, primary + synchronous standby + arbiter in
 * three zones, its URL handed to the services through the gateway's primary-only TCP route,
 * and each HA promise broken on purpose under a Jepsen-style writer (one row per
 * transaction, every acknowledged id checked afterwards): kill -9 of the primary's
 * processes and its zone's supervisor, a zone going dark under a client holding a direct
 * connection, the arbiter and the control plane killed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import pg from 'pg';
import { findPostgresBin, sleep, waitFor } from '@lanes/testkit';
import { TestPlatform, repoRoot } from '../support/platform.js';
import { Writer, dbSettled, dbStatus, dbUrl, mirrorStatus, query, type Member } from '../support/database.js';

const bin = findPostgresBin();
const appDir = path.join(repoRoot, 'tests', 'fixtures', 'db-app');
const REF = 'shop/prod';

describe('managed PostgreSQL: automatic failover', { skip: bin ? false : 'PostgreSQL binaries not found (install postgresql): skipping the managed-database platform tests' }, () => {
  let p: TestPlatform;
  let url = '';
  const base = 20_000 + Math.floor(Math.random() * 400) * 100;
  const settled = (opts: { not?: string } = {}) => dbSettled(p, REF, 'main', opts);
  const instancePid = async (id: string): Promise<number> => {
    const i = (await p.status(REF)).instances.find((x) => x.id === id);
    assert.ok(i?.pid, `instance ${id} has a pid`);
    return i.pid;
  };

  // Writers still running when a test fails would keep this file from ending.
  const writers: Writer[] = [];
  const writer = (table = 'writes', first = 1): Writer => {
    const w = new Writer(url, table, first).start();
    writers.push(w);
    return w;
  };
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop();
  });

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b', 'c'], env: { LANES_DATABASE_PORTS: `${base}-${base + 99}` } });
    assert.equal((await p.cli(['tenant', 'create', 'shop'])).code, 0);
    assert.equal((await p.cli(['env', 'create', REF, '--lane', 'double'])).code, 0);
    const r = await p.cli(['deploy', REF, appDir], 180_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await settled();
    url = await dbUrl(p, REF, 'main');
    await query(url, 'create table writes (id bigint primary key)');
  });
  after(async () => {
    await p?.stop();
  });

  it('places primary, synchronous standby and arbiter in three zones and hands DATABASE_URL to the services', async () => {
    const s = await dbStatus(p, REF, 'main');
    assert.equal(new Set(s.members.map((m) => m.zone)).size, 3, 'each party in its own zone');
    assert.deepEqual(s.members.map((m) => m.role).sort(), ['arbiter', 'primary', 'standby']);
    for (const m of s.members.filter((x) => x.role !== 'arbiter')) assert.ok(m.pid && m.pid > 0, `${m.name} reports its postmaster pid`);
    assert.ok(s.tcp, 'the database has a platform TCP port');
    assert.match(s.url, /^postgres:\/\/app:\*\*\*\*@/, 'the password is never shown in status');
    const res = await p.get(p.host('prod', 'shop'));
    assert.equal(res.status, 200);
    const vars = JSON.parse(res.text) as Record<string, { host: string; port: number; user: string; hasPassword: boolean }>;
    assert.deepEqual(Object.keys(vars).sort(), ['DATABASE_URL', 'DATABASE_URL_MAIN']);
    assert.equal(vars['DATABASE_URL']?.port, s.tcp.port, 'services reach the database through the gateway');
    assert.equal(vars['DATABASE_URL']?.hasPassword, true);
    const cli = await p.cli(['db', 'status', REF, 'main']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`primary\\s+${s.primary}`));
    const json = await p.cli(['db', 'status', REF, 'main', '--json']);
    const password = decodeURIComponent(new URL(url).password);
    assert.ok(!cli.stdout.includes(password) && !json.stdout.includes(password), 'no password in any status output');
  });

  it('answers 200 SUCCESS on the primary only', async () => {
    const s = await dbStatus(p, REF, 'main');
    for (const m of s.members.filter((x) => x.checkUrl)) {
      const r = await mirrorStatus(m.checkUrl as string);
      assert.deepEqual(r, m.role === 'primary' ? { status: 200, text: 'SUCCESS' } : { status: 503, text: 'FAILED' }, m.name);
    }
  });

  it('kill -9 of the primary postmaster, its keeper and its zone supervisor: no acknowledged write is lost and writes resume on the same URL', async () => {
    const s0 = await settled();
    const primary = s0.members.find((m) => m.role === 'primary') as Member;
    const w = writer('writes', 1_000_000);
    await w.resumed(200, 30_000);
    const pids = [p.context().components?.agents?.[primary.zone], await instancePid(primary.instance), primary.pid];
    for (const pid of pids) process.kill(pid as number, 'SIGKILL');
    // The launcher restarts the supervisor at once, which restarts the keeper: back within its
    // lease, the member may stay primary; either way nothing acknowledged may be missing.
    await w.resumed(200, 60_000);
    await w.stop();
    await settled();
    assert.deepEqual(await w.lost(), [], `every acknowledged write survives (${w.acked.length} acknowledged)`);
  });

  it('the primary dies while its zone supervisor hangs: the synchronous standby is promoted, then the old primary rejoins as standby', async () => {
    const s0 = await settled();
    const primary = s0.members.find((m) => m.role === 'primary') as Member;
    const standby = s0.members.find((m) => m.role === 'standby') as Member;
    const agent = p.context().components?.agents?.[primary.zone] as number;
    const w = writer('writes', 2_000_000);
    await w.resumed(200, 30_000);
    process.kill(agent, 'SIGSTOP'); // nothing restarts the member now
    process.kill(await instancePid(primary.instance), 'SIGKILL');
    process.kill(primary.pid as number, 'SIGKILL');
    const killedAt = Date.now();
    try {
      await w.resumed(200, 60_000);
      const tookMs = Date.now() - killedAt;
      const lastTerm = Math.max(...s0.failovers.map((x) => x.term));
      // The promotion is in the failover history, under a new term.
      let last: unknown = null;
      const s1 = await waitFor('the standby promoted', async () => {
        const s = await dbStatus(p, REF, 'main');
        last = s;
        return s.primary === standby.name && s.failovers.some((f) => f.primary === standby.name && f.term > lastTerm) ? s : false;
      }, { timeoutMs: 30_000 }).catch((err: Error) => {
        throw new Error(`${err.message}; killed ${primary.name}; last status ${JSON.stringify(last)}; acked by ${JSON.stringify([...new Set([...w.ackedBy.values()].map((x) => x.port))])}`);
      });
      console.log(`# failover: writes acknowledged again ${tookMs} ms after the kill`);
      await w.stop();
      assert.deepEqual(await w.lost(), [], `every acknowledged write survives (${w.acked.length} acknowledged, writes back after ${tookMs} ms)`);
      for (const m of s1.members.filter((x) => x.checkUrl && x.name === standby.name)) assert.equal((await mirrorStatus(m.checkUrl as string)).status, 200, 'the new primary answers 200');
    } finally {
      process.kill(agent, 'SIGKILL'); // the launcher starts a fresh supervisor, which restarts the keeper
      await w.stop();
    }
    const s2 = await settled({ not: primary.name });
    assert.equal(s2.members.find((m) => m.name === primary.name)?.role, 'standby', 'the old primary rejoined as the synchronous standby');
    assert.equal((await mirrorStatus(s2.members.find((m) => m.name === primary.name)?.checkUrl as string)).status, 503, 'the old primary answers 503');
    assert.deepEqual(await w.lost(), []);
  });

  it('a zone going dark under the primary: a client holding a connection to it gets no acknowledgment, the standby takes over, and the old primary rejoins', async () => {
    const s0 = await settled();
    const primary = s0.members.find((m) => m.role === 'primary') as Member;
    const inst = (await p.status(REF)).instances.find((i) => i.id === primary.instance);
    assert.ok(inst?.port);
    const direct = new URL(url);
    direct.port = String(inst.port);
    const held = new pg.Client({ connectionString: direct.href, query_timeout: 8000 });
    held.on('error', () => undefined);
    await held.connect();
    after(() => held.end().catch(() => undefined));
    await held.query('insert into writes (id) values (-1)');
    const w = writer('writes', 10_000_000);
    await w.resumed(100, 30_000);
    assert.equal((await p.cli(['zone', 'down', primary.zone])).code, 0);
    try {
      // The isolated primary acknowledges nothing: the write on the held connection never returns.
      const isolated = held.query('insert into writes (id) values (-2)').then(
        () => 'acknowledged',
        () => 'refused',
      );
      await w.resumed(100, 60_000);
      const s1 = await waitFor('a new primary', async () => {
        const s = await dbStatus(p, REF, 'main');
        return s.primary && s.primary !== primary.name ? s : false;
      }, { timeoutMs: 30_000 });
      assert.notEqual(s1.primary, primary.name);
      assert.equal(await isolated, 'refused', 'the isolated primary did not acknowledge the write');
    } finally {
      assert.equal((await p.cli(['zone', 'up', primary.zone])).code, 0);
    }
    await held.end().catch(() => undefined);
    await w.stop();
    const s2 = await settled({ not: primary.name });
    assert.equal(s2.members.find((m) => m.name === primary.name)?.role, 'standby', 'the isolated primary rejoined as standby');
    assert.deepEqual(await w.lost(), [], 'every acknowledged write survives the zone outage');
    const ghost = await query<{ id: string }>(url, 'select id from writes where id = -2');
    assert.deepEqual(ghost, [], 'the unacknowledged write on the isolated primary is not there either');
  });

  it('the arbiter killed, then the control plane killed: the primary keeps acknowledging writes and no failover happens', async () => {
    const s0 = await settled();
    const arbiter = s0.members.find((m) => m.role === 'arbiter') as Member;
    const w = writer('writes', 20_000_000);
    await w.resumed(100, 30_000);
    assert.ok(arbiter.pid);
    process.kill(arbiter.pid, 'SIGKILL');
    let before = w.acked.length;
    await sleep(4000);
    assert.ok(w.acked.length > before + 100, `writes go on without the arbiter (${w.acked.length - before} in 4 s)`);
    const cp = p.context().components?.controlplane as number;
    process.kill(cp, 'SIGKILL');
    before = w.acked.length;
    await sleep(4000);
    assert.ok(w.acked.length > before + 100, `writes go on without the control plane (${w.acked.length - before} in 4 s)`);
    await w.stop();
    assert.equal(w.errors, 0, `not one write failed (${w.lastError})`);
    await waitFor('control plane back', async () => (await p.api('GET', '/healthz', undefined, null).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 30_000 });
    const s1 = await settled();
    assert.equal(s1.primary, s0.primary, 'the primary stayed');
    assert.deepEqual(s1.failovers.map((f) => f.term), s0.failovers.map((f) => f.term), 'no new term');
    assert.deepEqual(await w.lost(), []);
  });
});
