/**
 * Test support: a real cluster of keeper and arbiter processes (free ports, a temp dir,
 * removed afterwards, everything killed by pid if a test dies), TCP proxies on the links
 * between parties to cut them (a partition, honestly: the proxy swallows traffic both ways
 * without closing anything, so each side only notices through its own timeouts), and a
 * Jepsen-style writer that inserts one row per transaction into whichever member answers
 * /mirrorstatus 200 and records every acknowledged id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, sleep, tempDir, waitFor } from '@lanes/testkit';
import type { KeeperStatus } from './keeper.js';
import { generatePassword, SECRET_FILES } from './secrets.js';

const DIST = path.dirname(fileURLToPath(import.meta.url));
export const KEEPER_MAIN = path.join(DIST, 'keeper-main.js');
export const ARBITER_MAIN = path.join(DIST, 'arbiter-main.js');

// ---------------------------------------------------------------------------------------
// processes killed by pid when the test process ends, whatever happens

const started = new Set<number>();
const dataDirs = new Set<string>();
let hooked = false;

function killPostmasterOf(dataDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 1) process.kill(pid, 'SIGQUIT');
  } catch {
    /* none */
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const d of dataDirs) killPostmasterOf(d);
  });
}

// ---------------------------------------------------------------------------------------
// ports

/** The kernel's ephemeral range (outgoing connections and listen(0) take ports from it). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && lo > 0 && hi > lo) return [lo, hi];
  } catch {
    /* not Linux */
  }
  return [32768, 60999];
}

const taken = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free port for a member, below the ephemeral range: a port from listen(0) is released
 * and only bound again seconds later by PostgreSQL or a keeper, long enough for an outgoing
 * connection (or a proxy's listen(0)) to take it. Below the range nothing else picks it.
 */
export async function memberPort(): Promise<number> {
  const [lo] = ephemeralRange();
  const from = Math.max(10_000, lo - 20_000);
  for (let i = 0; i < 200; i++) {
    const port = from + Math.floor(Math.random() * (lo - from));
    if (taken.has(port) || !(await bindable(port))) continue;
    taken.add(port);
    return port;
  }
  return freePort();
}

// ---------------------------------------------------------------------------------------
// a link that can be cut

/** A TCP proxy to `target`; `cut()` swallows all traffic both ways (new and open connections). */
export class Link {
  readonly #server: net.Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket | null }>();
  #cut = false;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const addr = this.#server.address();
    this.port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    return this.port;
  }

  #accept(client: net.Socket): void {
    const pair: { client: net.Socket; upstream: net.Socket | null } = { client, upstream: null };
    this.#pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      pair.upstream?.destroy();
      this.#pairs.delete(pair);
    });
    if (this.#cut) return; // held open, never answered: a blackhole
    this.#connect(pair);
  }

  #connect(pair: { client: net.Socket; upstream: net.Socket | null }): void {
    const upstream = net.connect(this.#target.port, this.#target.host);
    pair.upstream = upstream;
    upstream.on('error', () => pair.client.destroy());
    upstream.on('close', () => pair.client.destroy());
    pair.client.on('data', (d) => {
      if (!this.#cut) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!this.#cut) pair.client.write(d);
    });
  }

  cut(): void {
    this.#cut = true;
  }

  /** Heals the link; connections opened or used during the cut are reset (their bytes were lost). */
  heal(): void {
    this.#cut = false;
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.heal();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------
// the cluster

export interface ClusterOptions {
  /** @default ['a', 'b'] */
  readonly members?: readonly string[];
  /** @default true */
  readonly arbiter?: boolean;
  /** Route every peer link through a `Link`. @default false */
  readonly links?: boolean;
  /** Extra keeper flags. */
  readonly keeperArgs?: readonly string[];
  readonly backupDir?: string;
  /** fsync as in production (the benchmark); tests switch it off for speed. @default false */
  readonly fsync?: boolean;
}

export interface Member {
  readonly name: string;
  readonly httpPort: number;
  readonly pgPort: number;
  readonly stateDir: string;
  readonly dataDir: string;
  readonly url: string;
  process: ChildProcess | null;
}

export class Cluster {
  readonly dir: string;
  readonly token: string;
  readonly secretsDir: string;
  readonly members = new Map<string, Member>();
  readonly arbiter: { port: number; stateDir: string; process: ChildProcess | null; url: string } | null;
  /** `links.get('a>b')`: a's traffic to b's keeper; `'a>b:pg'`: to b's PostgreSQL; `'a>arbiter'`. */
  readonly links = new Map<string, Link>();
  readonly #args = new Map<string, string[]>();
  readonly #opts: ClusterOptions;

  private constructor(dir: string, opts: ClusterOptions, arbiter: Cluster['arbiter']) {
    this.dir = dir;
    this.#opts = opts;
    this.token = randomBytes(24).toString('hex');
    this.secretsDir = path.join(dir, 'secrets');
    this.arbiter = arbiter;
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    hook();
    const dir = await tempDir('lanes-pgc-');
    // PostgreSQL's user (the keepers drop to it as root) must reach the members' directories.
    await chmod(dir, 0o755);
    const names = opts.members ?? ['a', 'b'];
    const withArbiter = opts.arbiter ?? true;
    const arbiter = withArbiter ? { port: await memberPort(), stateDir: path.join(dir, 'arbiter'), process: null, url: '' } : null;
    if (arbiter) arbiter.url = `http://127.0.0.1:${arbiter.port}`;
    const c = new Cluster(dir, opts, arbiter);
    await writeFile(path.join(dir, 'token'), `${c.token}\n`, { mode: 0o600 });
    // As the control plane will: the cluster's passwords exist before any member starts.
    await mkdir(c.secretsDir, { mode: 0o700 });
    for (const f of Object.values(SECRET_FILES)) await writeFile(path.join(c.secretsDir, f), `${generatePassword().reveal()}\n`, { mode: 0o600 });
    for (const name of names) {
      const httpPort = await memberPort();
      const pgPort = await memberPort();
      const stateDir = path.join(dir, name);
      c.members.set(name, { name, httpPort, pgPort, stateDir, dataDir: path.join(stateDir, 'pgdata'), url: `http://127.0.0.1:${httpPort}`, process: null });
      dataDirs.add(path.join(stateDir, 'pgdata'));
    }
    // Peer addresses, through links when asked.
    const via = async (key: string, port: number): Promise<number> => {
      if (opts.links !== true) return port;
      const link = new Link({ host: '127.0.0.1', port });
      c.links.set(key, link);
      return link.listen();
    };
    for (const m of c.members.values()) {
      const args = ['--name', m.name, '--zone', `zone-${m.name}`, '--state-dir', m.stateDir, '--secrets-dir', c.secretsDir, '--token-file', path.join(dir, 'token'), '--port', String(m.httpPort), '--pg-port', String(m.pgPort), ...(opts.fsync === true ? [] : ['--unsafe-no-fsync']), '--shared-buffers', '16MB', '--max-connections', '30', '--wal-keep-size', '64MB'];
      for (const p of c.members.values()) {
        if (p === m) continue;
        const kp = await via(`${m.name}>${p.name}`, p.httpPort);
        const pp = await via(`${m.name}>${p.name}:pg`, p.pgPort);
        args.push('--peer', `${p.name}=http://127.0.0.1:${kp},127.0.0.1:${pp}`);
      }
      if (arbiter) args.push('--peer', `arbiter=http://127.0.0.1:${await via(`${m.name}>arbiter`, arbiter.port)}`);
      if (opts.backupDir !== undefined) args.push('--backup-dir', opts.backupDir);
      args.push(...(opts.keeperArgs ?? []));
      c.#args.set(m.name, args);
    }
    if (arbiter) c.startArbiter();
    for (const name of names) c.startKeeper(name);
    return c;
  }

  member(name: string): Member {
    const m = this.members.get(name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  }

  #spawn(file: string, args: readonly string[], logName: string): ChildProcess {
    const fd = openSync(path.join(this.dir, `${logName}.log`), 'a');
    try {
      const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', fd, fd], detached: true });
      if (child.pid !== undefined) {
        const pid = child.pid;
        started.add(pid);
        child.once('exit', () => started.delete(pid));
      }
      return child;
    } finally {
      closeSync(fd);
    }
  }

  startKeeper(name: string): void {
    const m = this.member(name);
    m.process = this.#spawn(KEEPER_MAIN, this.#args.get(name) ?? [], name);
  }

  startArbiter(): void {
    if (!this.arbiter) return;
    this.arbiter.process = this.#spawn(ARBITER_MAIN, ['--state-dir', this.arbiter.stateDir, '--token-file', path.join(this.dir, 'token'), '--port', String(this.arbiter.port)], 'arbiter');
  }

  /** kill -9 of a member's keeper and its postmaster at once (a crashed zone). */
  async killMember(name: string): Promise<void> {
    const m = this.member(name);
    const pm = await this.postmasterPid(name);
    const keeper = m.process;
    const exited = keeper && keeper.exitCode === null ? new Promise((r) => keeper.once('exit', r)) : Promise.resolve();
    for (const pid of [keeper?.pid, pm]) {
      if (pid === undefined || pid === null) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await exited;
    m.process = null;
  }

  async killArbiter(): Promise<void> {
    const p = this.arbiter?.process;
    if (!p || p.pid === undefined) return;
    const exited = new Promise((r) => p.once('exit', r));
    process.kill(p.pid, 'SIGKILL');
    await exited;
    if (this.arbiter) this.arbiter.process = null;
  }

  async postmasterPid(name: string): Promise<number | null> {
    try {
      const pid = Number((await readFile(path.join(this.member(name).dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      return Number.isInteger(pid) && pid > 1 ? pid : null;
    } catch {
      return null;
    }
  }

  async status(name: string): Promise<KeeperStatus> {
    const res = await fetch(`${this.member(name).url}/status`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(2_000) });
    if (res.status !== 200) throw new Error(`status of ${name}: HTTP ${res.status}`);
    return (await res.json()) as KeeperStatus;
  }

  async mirrorstatus(name: string): Promise<number> {
    try {
      const res = await fetch(`${this.member(name).url}/mirrorstatus`, { signal: AbortSignal.timeout(1_000) });
      await res.text();
      return res.status;
    } catch {
      return 0;
    }
  }

  async post(name: string, route: string, body: unknown, timeoutMs = 30_000): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.member(name).url}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.json() };
  }

  async appPassword(): Promise<string> {
    return (await readFile(path.join(this.secretsDir, 'app-password'), 'utf8')).trim();
  }

  async appUrl(name: string): Promise<string> {
    return `postgres://app:${encodeURIComponent(await this.appPassword())}@127.0.0.1:${this.member(name).pgPort}/app`;
  }

  /** The last lines of the keepers', the arbiter's and the postmasters' logs (for a failure message). */
  async logTails(lines = 6): Promise<string> {
    const files = [...[...this.members.keys(), 'arbiter'].map((n) => path.join(this.dir, `${n}.log`)), ...[...this.members.values()].map((m) => path.join(m.stateDir, 'postgres.log'))];
    const out: string[] = [];
    for (const f of files) {
      const text = await readFile(f, 'utf8').catch(() => '');
      out.push(`--- ${path.relative(this.dir, f)}`, ...text.trim().split('\n').slice(-lines).map((l) => l.slice(0, 400)));
    }
    return out.join('\n');
  }

  /** Waits for `primary` to serve with `standby` recorded as its synchronous standby. */
  async waitHealthy(primary: string, standby: string | null, timeoutMs = 60_000): Promise<void> {
    await this.#waitHealthy(primary, standby, timeoutMs).catch(async (err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${await this.logTails()}`);
    });
  }

  async #waitHealthy(primary: string, standby: string | null, timeoutMs: number): Promise<void> {
    await waitFor(
      `${primary} primary${standby ? ` with ${standby} synchronous` : ''}`,
      async () => {
        const s = await this.status(primary);
        if (s.role !== 'primary') return false;
        if (standby === null) return true;
        if (s.syncStandby !== standby) return false;
        const t = await this.status(standby);
        return t.role === 'standby' && s.replication.replicas.some((r) => r.name === standby && r.syncState === 'sync');
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  async sql<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[] = [], opts: { superuser?: boolean } = {}): Promise<R[]> {
    const url =
      opts.superuser === true
        ? `postgres://postgres:${encodeURIComponent((await readFile(path.join(this.secretsDir, 'superuser-password'), 'utf8')).trim())}@127.0.0.1:${this.member(name).pgPort}/app`
        : await this.appUrl(name);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  async close(): Promise<void> {
    const procs = [...this.members.values()].map((m) => m.process).concat(this.arbiter?.process ?? null);
    await Promise.all(
      procs.map(async (p) => {
        if (!p || p.exitCode !== null || p.pid === undefined) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const m of this.members.values()) {
      killPostmasterOf(m.dataDir);
      dataDirs.delete(m.dataDir);
    }
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await sleep(100);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// the writer

export interface WriterEvent {
  readonly at: number;
  readonly member: string;
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
}

/**
 * Inserts ids 1, 2, 3… one per transaction into `t`, always into the member answering
 * /mirrorstatus 200 (like the gateway's primary check), reconnecting after any error.
 * Records every acknowledged id and when it was acknowledged (Date.now()).
 */
export class Writer {
  readonly acked = new Map<number, { member: string; at: number }>();
  readonly events: WriterEvent[] = [];
  readonly #cluster: Cluster;
  #stop = false;
  #loop: Promise<void> | null = null;
  #next = 1;
  /** Only through this member, never another (a client holding its connection). */
  readonly #pinned: string | null;

  constructor(cluster: Cluster, opts: { pinned?: string } = {}) {
    this.#cluster = cluster;
    this.#pinned = opts.pinned ?? null;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async #findPrimary(): Promise<string | null> {
    if (this.#pinned !== null) return this.#pinned;
    for (const name of this.#cluster.members.keys()) if ((await this.#cluster.mirrorstatus(name)) === 200) return name;
    return null;
  }

  async #run(): Promise<void> {
    while (!this.#stop) {
      const member = await this.#findPrimary();
      if (member === null) {
        await sleep(20);
        continue;
      }
      const client = new pg.Client({ connectionString: await this.#cluster.appUrl(member), connectionTimeoutMillis: 1_000, query_timeout: 15_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch {
        await sleep(20);
        continue;
      }
      try {
        while (!this.#stop) {
          const id = this.#next++;
          try {
            await client.query('insert into t (id) values ($1)', [id]);
            const at = Date.now();
            this.acked.set(id, { member, at });
            this.events.push({ at, member, id, ok: true });
          } catch (err) {
            this.events.push({ at: Date.now(), member, id, ok: false, error: err instanceof Error ? err.message : String(err) });
            break;
          }
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }

  lastAck(member?: string): { id: number; at: number } | null {
    let best: { id: number; at: number } | null = null;
    for (const [id, a] of this.acked) if ((member === undefined || a.member === member) && (best === null || a.at > best.at)) best = { id, at: a.at };
    return best;
  }

  firstAckAfter(at: number, member?: string): { id: number; at: number } | null {
    let best: { id: number; at: number } | null = null;
    for (const [id, a] of this.acked) if (a.at > at && (member === undefined || a.member === member) && (best === null || a.at < best.at)) best = { id, at: a.at };
    return best;
  }
}
