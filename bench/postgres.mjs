#!/usr/bin/env node
// Managed PostgreSQL failover, in one run: kill -9 of the primary (its keeper or Patroni
// AND its postmaster) → the first write acknowledged by the new primary, over N trials, and
// the acknowledged writes lost (checked on the new primary after every trial); the same for
// Patroni (Debian's patroni + etcd-server: two nodes, synchronous_mode, etcd3) with its
// defaults and tuned (ttl 10, loop_wait 1, retry_timeout 4). A writer inserts one row per
// transaction into whichever node's health endpoint says primary (Lanes /mirrorstatus,
// Patroni /primary), reconnecting after any error, polling every 20 ms for both. Then
// pgbench write throughput with a synchronous standby vs. a lone primary. fsync on
// everywhere. Prints the table and ratios; results in bench/results/postgres-<time>.json.
//
//   node bench/postgres.mjs [--trials 10] [--only lanes|patroni] [--pgbench-seconds 20]
//                           [--soak SECONDS]   (no false failover with both cores busy)
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { freePort, root } from './lib.mjs';

const { values: opts } = parseArgs({
  options: { trials: { type: 'string', default: '10' }, only: { type: 'string' }, 'pgbench-seconds': { type: 'string', default: '20' }, soak: { type: 'string' } },
});
const TRIALS = Number(opts.trials);
const PGBENCH_S = Number(opts['pgbench-seconds']);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

async function waitFor(what, check, timeoutMs = 120_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

async function httpStatus(url, timeoutMs = 500) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: mid, min: s[0], max: s[s.length - 1], n: s.length };
}

// ---------------------------------------------------------------------------------------
// the writer: the same for both systems

// Ids go on across trials (and systems use separate tables), so no insert ever collides.
let nextId = 1;

class Writer {
  /** nodes: [{ name, health: URL answering 200 on the primary, conn: pg client config }] */
  constructor(nodes) {
    this.nodes = nodes;
    this.acked = new Map();
    this.stopped = false;
    this.failed = 0;
  }
  start() {
    this.loop = this.run();
  }
  async primary() {
    const answers = await Promise.all(this.nodes.map(async (n) => ((await httpStatus(n.health)) === 200 ? n : null)));
    return answers.find(Boolean) ?? null;
  }
  async run() {
    while (!this.stopped) {
      const node = await this.primary();
      if (!node) {
        await sleep(20);
        continue;
      }
      const client = new pg.Client({ ...node.conn, connectionTimeoutMillis: 1000, query_timeout: 20_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch {
        await sleep(20);
        continue;
      }
      try {
        while (!this.stopped) {
          const id = nextId++;
          try {
            await client.query('insert into t (id) values ($1)', [id]);
            this.acked.set(id, { node: node.name, at: Date.now() });
          } catch {
            this.failed += 1;
            break;
          }
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  }
  async stop() {
    this.stopped = true;
    await this.loop;
  }
  firstAckAfter(at, node) {
    let best = null;
    for (const [, a] of this.acked) if (a.at > at && a.node === node && (best === null || a.at < best)) best = a.at;
    return best;
  }
}

async function lostOn(conn, acked) {
  const client = new pg.Client({ ...conn, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const rows = new Set((await client.query('select id from t')).rows.map((r) => Number(r.id)));
    return [...acked.keys()].filter((id) => !rows.has(id)).length;
  } finally {
    await client.end();
  }
}

/** One trial: writes flowing, kill the primary, time to the first write on the other node, writes lost. */
async function trial(nodes, primaryName, kill) {
  const w = new Writer(nodes);
  w.start();
  const t0 = Date.now();
  await waitFor('writes on the primary', () => [...w.acked.values()].filter((a) => a.node === primaryName).length >= 200, 60_000, 20);
  if (Date.now() - t0 > 5_000) log(`(200 writes took ${Date.now() - t0} ms)`);
  const other = nodes.find((n) => n.name !== primaryName);
  const killedAt = Date.now();
  await kill();
  const first = await waitFor(`a write acknowledged by ${other.name}`, () => w.firstAckAfter(killedAt, other.name), 180_000, 20);
  await sleep(500);
  await w.stop();
  const lost = await lostOn(other.conn, w.acked);
  return { failoverMs: first - killedAt, acked: w.acked.size, lost, newPrimary: other.name };
}

function killPids(pids) {
  for (const pid of pids) {
    if (!pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function postmasterPid(dataDir) {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Lanes

async function lanes() {
  const { Cluster } = await import(path.join(root, 'packages/postgres/dist/test-helpers.js'));
  const c = await Cluster.start({ fsync: true });
  try {
    await c.waitHealthy('a', 'b', 120_000);
    await c.sql('a', 'create table t (id bigint primary key)');
    const pw = await c.appPassword();
    const nodes = ['a', 'b'].map((name) => ({ name, health: `${c.member(name).url}/mirrorstatus`, conn: { host: '127.0.0.1', port: c.member(name).pgPort, user: 'app', password: pw, database: 'app' } }));
    const results = [];
    let primary = 'a';
    for (let i = 1; i <= TRIALS; i++) {
      const standby = primary === 'a' ? 'b' : 'a';
      const r = await trial(nodes, primary, () => c.killMember(primary));
      log(`lanes trial ${i}: ${r.failoverMs} ms, ${r.acked} acknowledged, ${r.lost} lost`);
      const t0 = Date.now();
      c.startKeeper(primary);
      await c.waitHealthy(standby, primary, 120_000);
      r.rejoinMs = Date.now() - t0;
      log(`lanes: ${primary} rejoined as the synchronous standby in ${r.rejoinMs} ms`);
      results.push(r);
      primary = standby;
    }
    const pgbench = await lanesPgbench(c, primary, primary === 'a' ? 'b' : 'a', pw);
    let soak = null;
    if (opts.soak) soak = await lanesSoak(c, nodes, Number(opts.soak));
    return { trials: results, pgbench, soak };
  } finally {
    await c.close();
  }
}

function pgbench(args, env) {
  const out = execFileSync(path.join(PG_BIN, 'pgbench'), args, { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  return m ? Number(m[1]) : NaN;
}

async function lanesPgbench(c, primary, standby, pw) {
  const port = String(c.member(primary).pgPort);
  const env = { PGPASSWORD: pw };
  const base = ['-h', '127.0.0.1', '-p', port, '-U', 'app'];
  log('pgbench: initialising (scale 5)');
  pgbench([...base, '-i', '-q', '-s', '5', 'app'], env);
  const run = () => pgbench([...base, '-c', '8', '-j', '2', '-T', String(PGBENCH_S), '-n', 'app'], env);
  const withSync = run();
  log(`pgbench with a synchronous standby: ${withSync} tps`);
  // Stop the standby's keeper: the primary goes on alone once it recorded that (sync grace).
  const p = c.member(standby).process;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
  await waitFor('the primary alone', async () => {
    const s = await c.status(primary);
    return s.syncStandby === null && s.lastDecision?.reason.includes('acknowledged by');
  }, 60_000);
  const alone = run();
  log(`pgbench with a lone primary: ${alone} tps`);
  c.startKeeper(standby);
  await c.waitHealthy(primary, standby, 120_000);
  return { clients: 8, seconds: PGBENCH_S, scale: 5, syncStandbyTps: withSync, lonePrimaryTps: alone };
}

/** Both cores busy with other work: no failover, no failed write, for `seconds`. */
async function lanesSoak(c, nodes, seconds) {
  log(`soak: ${seconds} s with both cores saturated by busy loops`);
  const burners = [0, 1].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const before = await c.status('a').catch(() => c.status('b'));
  const w = new Writer(nodes);
  w.start();
  await sleep(seconds * 1000);
  await w.stop();
  for (const b of burners) b.kill('SIGKILL');
  const after = await c.status('a').catch(() => c.status('b'));
  return { seconds, termBefore: before.term, termAfter: after.term, failovers: after.term - before.term, acked: w.acked.size };
}

// ---------------------------------------------------------------------------------------
// Patroni

function pgIds() {
  return { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
}

async function patroni(label, dcsTiming) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-patroni-'));
  chmodSync(dir, 0o755);
  const { uid, gid } = pgIds();
  const started = new Map();
  const spawnLogged = (name, file, args) => {
    const fd = openSync(path.join(dir, `${name}.log`), 'a');
    const child = spawn(file, args, { stdio: ['ignore', fd, fd], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', HOME: dir } });
    closeSync(fd);
    started.set(name, child);
    return child;
  };
  const etcdPort = await freePort();
  const etcdPeer = await freePort();
  spawnLogged('etcd', 'etcd', [
    '--name', 'bench', '--data-dir', path.join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster', `bench=http://127.0.0.1:${etcdPeer}`,
  ]);
  await waitFor('etcd', async () => (await httpStatus(`http://127.0.0.1:${etcdPort}/health`)) === 200, 30_000);

  const superPw = randomBytes(12).toString('hex');
  const nodes = [];
  for (const name of ['p1', 'p2']) {
    const home = path.join(dir, name);
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, uid, gid);
    const rest = await freePort();
    const port = await freePort();
    const config = {
      scope: `bench-${label}`,
      name,
      log: { level: 'INFO' },
      restapi: { listen: `127.0.0.1:${rest}`, connect_address: `127.0.0.1:${rest}` },
      etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
      bootstrap: {
        dcs: {
          ...dcsTiming,
          synchronous_mode: true,
          postgresql: {
            use_pg_rewind: true,
            remove_data_directory_on_rewind_failure: true,
            remove_data_directory_on_diverged_timelines: true,
            parameters: { wal_log_hints: 'on', max_connections: 30, shared_buffers: '16MB', wal_keep_size: '64MB', max_wal_senders: 10, max_replication_slots: 10, hot_standby: 'on', synchronous_commit: 'on' },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, 'data-checksums'],
        pg_hba: ['local all all trust', 'host replication replicator 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256'],
      },
      postgresql: {
        listen: `127.0.0.1:${port}`,
        connect_address: `127.0.0.1:${port}`,
        data_dir: path.join(home, 'data'),
        bin_dir: PG_BIN,
        pgpass: path.join(home, 'pgpass'),
        authentication: { superuser: { username: 'postgres', password: superPw }, replication: { username: 'replicator', password: superPw } },
        parameters: { unix_socket_directories: home },
      },
    };
    const cfg = path.join(home, 'patroni.yml');
    writeFileSync(cfg, JSON.stringify(config, null, 2)); // JSON is YAML
    chownSync(cfg, uid, gid);
    nodes.push({ name, rest, port, home, cfg, dataDir: path.join(home, 'data'), health: `http://127.0.0.1:${rest}/primary`, conn: { host: '127.0.0.1', port, user: 'postgres', password: superPw, database: 'postgres' } });
  }
  const start = (n) => spawnLogged(n.name, 'setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', 'patroni', n.cfg]);
  const healthy = async () => {
    const r = await fetch(`http://127.0.0.1:${nodes[0].rest}/cluster`, { signal: AbortSignal.timeout(1000) }).catch(() => null)
      ?? await fetch(`http://127.0.0.1:${nodes[1].rest}/cluster`, { signal: AbortSignal.timeout(1000) }).catch(() => null);
    if (!r || r.status !== 200) return false;
    const { members } = await r.json();
    const leader = members.find((m) => m.role === 'leader' && m.state === 'running');
    const sync = members.find((m) => m.role === 'sync_standby' && (m.state === 'running' || m.state === 'streaming'));
    return leader && sync ? leader.name : false;
  };
  try {
    start(nodes[0]);
    await waitFor('patroni p1 leader', async () => (await httpStatus(nodes[0].health)) === 200, 120_000);
    start(nodes[1]);
    let leader = await waitFor('patroni leader with a sync standby', healthy, 300_000, 250);
    const setup = new pg.Client({ ...nodes.find((n) => n.name === leader).conn });
    await setup.connect();
    await setup.query('create table t (id bigint primary key)');
    await setup.end();
    const results = [];
    for (let i = 1; i <= TRIALS; i++) {
      const victim = nodes.find((n) => n.name === leader);
      const r = await trial(nodes, leader, async () => {
        killPids([started.get(victim.name)?.pid, postmasterPid(victim.dataDir)]);
      });
      log(`patroni ${label} trial ${i}: ${r.failoverMs} ms, ${r.acked} acknowledged, ${r.lost} lost`);
      const t0 = Date.now();
      start(victim);
      leader = await waitFor('patroni healthy again', healthy, 600_000, 250);
      r.rejoinMs = Date.now() - t0;
      log(`patroni ${label}: ${victim.name} rejoined as the synchronous standby in ${r.rejoinMs} ms`);
      results.push(r);
    }
    return { trials: results, dcs: dcsTiming };
  } finally {
    for (const n of nodes) killPids([started.get(n.name)?.pid, postmasterPid(n.dataDir)]);
    killPids([started.get('etcd')?.pid]);
    await sleep(500);
    for (const n of nodes) killPids([postmasterPid(n.dataDir)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

function hasPatroni() {
  try {
    execFileSync('patroni', ['--version'], { stdio: 'ignore' });
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------

const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
const out = { at: new Date().toISOString(), trials: TRIALS, loadavg: os.loadavg(), cpus: os.cpus().length, runs: {} };
if (opts.only !== 'patroni') out.runs.lanes = await lanes();
if (opts.only !== 'lanes') {
  if (!hasPatroni()) {
    log('patroni or etcd not installed (apt-get install -y patroni etcd-server): Patroni skipped');
  } else {
    out.runs.patroniDefaults = await patroni('defaults', {});
    out.runs.patroniTuned = await patroni('tuned', { ttl: 10, loop_wait: 1, retry_timeout: 4 });
  }
}
out.loadavgAfter = os.loadavg();

const rows = [];
for (const [name, label] of [['lanes', 'Lanes (lease 2 s)'], ['patroniDefaults', 'Patroni defaults (ttl 30, loop_wait 10, retry_timeout 10)'], ['patroniTuned', 'Patroni tuned (ttl 10, loop_wait 1, retry_timeout 4)']]) {
  const run = out.runs[name];
  if (!run) continue;
  const s = stats(run.trials.map((t) => t.failoverMs));
  run.stats = s;
  rows.push({ label, ...s, lost: run.trials.reduce((n, t) => n + t.lost, 0), acked: run.trials.reduce((n, t) => n + t.acked, 0) });
}
console.log(`\nkill -9 of the primary → first write acknowledged by the new primary (${TRIALS} trials each, fsync on, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)})\n`);
console.log(`${'system'.padEnd(58)} ${'median'.padStart(8)} ${'min'.padStart(8)} ${'max'.padStart(8)}  writes acknowledged / lost`);
for (const r of rows) console.log(`${r.label.padEnd(58)} ${fmt(r.median).padStart(8)} ${fmt(r.min).padStart(8)} ${fmt(r.max).padStart(8)}  ${r.acked} / ${r.lost}`);
const lanesRun = out.runs.lanes;
if (lanesRun) {
  const l = lanesRun.stats.median;
  console.log('');
  console.log(`target: Lanes median ≤ 3 s: ${fmt(l)} ${l <= 3000 ? 'PASS' : 'FAIL'}; 0 writes lost: ${rows[0].lost === 0 ? 'PASS' : 'FAIL'}`);
  for (const [key, label] of [['patroniDefaults', 'Patroni defaults'], ['patroniTuned', 'Patroni tuned']]) {
    const p = out.runs[key];
    if (!p) continue;
    const ratio = p.stats.median / l;
    console.log(`${label} / Lanes: ${ratio.toFixed(1)}×${key === 'patroniTuned' ? ` (target ≥ 3×: ${ratio >= 3 ? 'PASS' : 'FAIL'})` : ''}`);
  }
  const b = lanesRun.pgbench;
  console.log(`\npgbench tpcb-like, ${b.clients} clients, ${b.seconds} s, scale ${b.scale}, fsync on: synchronous standby ${b.syncStandbyTps.toFixed(0)} tps, lone primary ${b.lonePrimaryTps.toFixed(0)} tps (${(b.syncStandbyTps / b.lonePrimaryTps).toFixed(2)}×)`);
  if (lanesRun.soak) console.log(`soak: ${lanesRun.soak.seconds} s with both cores busy: ${lanesRun.soak.failovers} failovers, ${lanesRun.soak.acked} writes acknowledged`);
}
mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
const file = path.join(root, 'bench', 'results', `postgres-${out.at.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nresults: ${path.relative(root, file)}`);
if (!existsSync(file)) process.exit(1);
