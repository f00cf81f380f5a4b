/**
 * Managed databases: each environment's PostgreSQL clusters (`databases:` in a manifest, or
 * `lanes db create`), run as ordinary supervised instances of the platform's own programs
 * (@lanes/postgres: one keeper per member, an arbiter), placed once and for all (a member's
 * data lives in its zone), reached by the environment's services through the gateway's
 * primary-only TCP route (DATABASE_URL), and operated through their keepers' HTTP API
 * (status, switchover, backups) with the cluster's token.
 *
 * Single lane: one member. Double lane: members in two zones and the arbiter in a third.
 * Failover is decided by the keepers themselves (ADR 005), never by the control plane, so
 * a control plane that is down or restarting changes nothing for them (static stability).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { request } from 'undici';
import {
  ConflictError,
  InputError,
  NotFoundError,
  UnavailableError,
  PLATFORM_RELEASE,
  databaseService,
  databaseVariable,
  formatDuration,
  parseDatabaseSpec,
  type DatabaseSpec,
  type DesiredInstance,
  type Endpoint,
  type Lane,
  type PrimaryCheckSpec,
} from '@lanes/spec';
import { allocateAddress, planEnvironment } from '@lanes/network';
import { DirectoryBackupStore } from '@lanes/postgres';
import type { DatabaseMember, InstanceRow, Store, StoredDatabase } from '@lanes/store';
import type { Config } from './config.js';
import type { ZoneRegistry } from './zones.js';

type Environment = Awaited<ReturnType<Store['getEnvironment']>>;

const KEEPER_MAIN = fileURLToPath(import.meta.resolve('@lanes/postgres/keeper-main'));
const ARBITER_MAIN = fileURLToPath(import.meta.resolve('@lanes/postgres/arbiter-main'));
const RESTORE_MAIN = path.join(path.dirname(KEEPER_MAIN), 'restore-main.js');

/** How the gateway follows the primary: InterSystems' mirror status contract on each keeper. */
export const DATABASE_PRIMARY_CHECK: PrimaryCheckSpec = { path: '/mirrorstatus', intervalMs: 250, timeoutMs: 200 };
/** A clean fast shutdown of PostgreSQL (and a switchover to the standby) takes up to this. */
const MEMBER_STOP_GRACE_MS = 60_000;
/** The application database and its owner (the keeper's defaults). */
const APP = 'app';

export interface DatabaseMemberStatus {
  name: string;
  role: 'primary' | 'standby' | 'arbiter' | 'candidate' | 'fenced' | 'stopped' | 'initializing' | 'unknown';
  zone: string;
  instance: string;
  pid: number | null;
  state: string;
  healthy: boolean;
  lagBytes: number | null;
  replayDelaySeconds: number | null;
  checkUrl: string | null;
  message: string;
}

export interface DatabaseStatus {
  name: string;
  engine: 'postgres';
  tenant: string;
  environment: string;
  lane: Lane;
  source: StoredDatabase['source'];
  phase: StoredDatabase['phase'];
  restoredFrom: StoredDatabase['restoredFrom'];
  url: string;
  variables: string[];
  tcp: { address: string; port: number } | null;
  primary: string | null;
  members: DatabaseMemberStatus[];
  backup: { interval: string; retention: string; last: BackupInfo | null };
  failovers: { at: string; term: number; primary: string; reason: string }[];
}

export interface BackupInfo {
  id: string;
  member: string;
  startedAt: string;
  finishedAt: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  sizeBytes: number;
  files: string[];
  verified: { at: string; ok: boolean; message: string } | null;
}

interface KeeperStatusLike {
  member: string;
  role: DatabaseMemberStatus['role'];
  term: number;
  holder: string | null;
  postgres?: { state?: string; pid?: number | null };
  replication?: { lagBytes?: number | null; replayDelaySeconds?: number | null; replicas?: { name: string; lagBytes: number | null }[] };
  history?: { at: string; term: number; primary: string; reason: string }[];
  lastDecision?: { reason: string } | null;
}

export interface DatabaseHost {
  readonly store: Store;
  readonly config: Config;
  readonly log: Logger;
  readonly zones: ZoneRegistry;
  event(e: { tenant?: string; environment?: string; reason: string; object?: string; message: string }): Promise<void>;
  tcpAddress(): string;
  manifestOf(environmentId: string, hash: string): Promise<{ databases?: readonly DatabaseSpec[]; services: readonly { name: string }[] }>;
}

export class Databases {
  readonly #h: DatabaseHost;
  readonly #ports: { first: number; last: number };
  /** App passwords by database directory, read once (they never change). */
  readonly #passwords = new Map<string, string>();
  /** Databases a manifest asks for that could not be created, so that is said once. */
  readonly #refused = new Set<string>();
  /** Serialises creations: member ports and addresses are chosen against what exists. */
  #creating: Promise<unknown> = Promise.resolve();

  constructor(host: DatabaseHost) {
    this.#h = host;
    this.#ports = host.config.databasePortRange;
  }

  get #home(): string {
    return this.#h.config.home;
  }

  dirOf(environmentId: string, name: string): string {
    return path.join(this.#home, 'databases', environmentId, name);
  }

  backupDirOf(environmentId: string, name: string): string {
    return path.join(this.#home, 'backups', environmentId, name);
  }

  // ---- reconciling ----------------------------------------------------------------------

  /**
   * Creates the databases the current releases declare (a database is never dropped because
   * a release no longer names it: its data stays until `lanes db delete`), gives each member
   * its instance, and removes databases being deleted once their members have stopped.
   */
  async reconcile(envs: readonly Environment[]): Promise<void> {
    for (const env of envs) {
      const scope = { tenant: env.tenant, environment: env.name };
      if (env.phase === 'active' && env.currentRelease) {
        const manifest = await this.#h.manifestOf(env.id, env.currentRelease);
        const have = new Set((await this.#h.store.listDatabases(env.id)).map((d) => d.name));
        for (const spec of manifest.databases ?? []) {
          if (have.has(spec.name)) continue;
          const key = `${env.id}/${spec.name}`;
          try {
            await this.create(env, spec, 'manifest');
            this.#refused.delete(key);
          } catch (err) {
            if (!(err instanceof InputError || err instanceof ConflictError)) throw err;
            if (this.#refused.has(key)) continue;
            this.#refused.add(key);
            await this.#h.event({ ...scope, reason: 'DatabaseRefused', object: `database/${spec.name}`, message: `database ${spec.name} of the release is not created: ${err.message}` });
          }
        }
      }
      for (const db of await this.#h.store.listDatabases(env.id)) {
        if (db.phase === 'deleting') await this.#finishDelete(env, db);
        else if (env.phase === 'active') await this.#ensureInstances(env, db);
      }
    }
    // Leftovers of deleted environments (their records went with them): data directories.
    await this.#removeOrphans(new Set(envs.map((e) => e.id)));
  }

  /**
   * True once every database the release declares exists with its platform TCP port (or
   * was refused, which its event says): its services can start with their URLs.
   */
  async readyFor(env: Environment, manifest: { databases?: readonly DatabaseSpec[] }): Promise<boolean> {
    const wanted = manifest.databases ?? [];
    if (wanted.length === 0) return true;
    const have = await this.#h.store.listDatabases(env.id);
    const ports = new Set((await this.#h.store.listTcpListeners(env.id)).map((l) => l.service));
    return wanted.every((d) => this.#refused.has(`${env.id}/${d.name}`) || (have.some((x) => x.name === d.name) && ports.has(databaseService(d.name))));
  }

  /** A deploy's checks (before anything is stored): the databases it declares can be placed, no service takes a database's name. */
  async checkRelease(env: Environment, manifest: { databases?: readonly DatabaseSpec[]; services: readonly { name: string }[] }): Promise<void> {
    if ((manifest.databases ?? []).length > 0) this.#checkIsolation('lanes.yaml: databases');
    const zones = this.#h.zones.names;
    if ((manifest.databases ?? []).length > 0 && env.lane === 'double' && zones.length < 3) {
      throw new InputError(`lanes.yaml: databases: a database on a double lane needs 3 zones (two members and the arbiter, each in its own); this platform has ${zones.length} (${zones.join(', ')})`, 'databases');
    }
    for (const db of await this.#h.store.listDatabases(env.id)) {
      const clash = manifest.services.find((s) => s.name === databaseService(db.name));
      if (clash) throw new InputError(`lanes.yaml: services.${clash.name}: the name is taken by database ${db.name}'s members; rename the service`, `services.${clash.name}`);
    }
  }

  async #ensureInstances(env: Environment, db: StoredDatabase): Promise<void> {
    const rows = await this.#h.store.listInstances({ environmentId: env.id });
    for (const m of db.members) {
      const row = rows.find((r) => r.id === m.instance);
      if (row) {
        if (row.desired !== 'running') await this.#h.store.setInstanceDesired(row.id, 'running');
        continue;
      }
      await this.#h.store.createInstance({ id: m.instance, environmentId: env.id, service: databaseService(db.name), release: PLATFORM_RELEASE, zone: m.zone, address: m.address });
      await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'InstanceScheduled', object: `instance/${m.instance}`, message: `scheduled ${m.instance} in zone ${m.zone}: ${m.kind === 'arbiter' ? 'the arbiter' : `member ${m.name}`} of database ${db.name}` });
    }
  }

  async #finishDelete(env: Environment, db: StoredDatabase): Promise<void> {
    const rows = (await this.#h.store.listInstances({ environmentId: env.id })).filter((r) => db.members.some((m) => m.instance === r.id));
    let running = false;
    for (const r of rows) {
      if (r.desired === 'running') await this.#h.store.setInstanceDesired(r.id, 'stopped');
      // Gone once its supervisor says so; a zone that stays dark holds the deletion up.
      if (r.observed !== null) running = true;
    }
    if (running) return;
    for (const r of rows) await this.#h.store.deleteInstance(r.id);
    await rm(this.dirOf(env.id, db.name), { recursive: true, force: true });
    await this.#h.store.deleteDatabase(env.id, db.name);
    this.#passwords.delete(this.dirOf(env.id, db.name));
    await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseDeleted', object: `database/${db.name}`, message: `database ${db.name} deleted: its members stopped and their data removed; its backups are kept in ${this.backupDirOf(env.id, db.name)}` });
  }

  async #removeOrphans(live: ReadonlySet<string>): Promise<void> {
    const root = path.join(this.#home, 'databases');
    let entries: string[];
    try {
      entries = await readdir(root);
    } catch {
      return;
    }
    for (const id of entries) if (!live.has(id)) await rm(path.join(root, id), { recursive: true, force: true });
  }

  // ---- what the data plane gets -------------------------------------------------------

  /** True for the instance rows of database members (they are placed here, not by the scheduler). */
  static isMember(r: Pick<InstanceRow, 'release'>): boolean {
    return r.release === PLATFORM_RELEASE;
  }

  /** The desired instance of a member's row, or null when its database is gone. */
  desiredOf(r: InstanceRow, env: Environment, dbs: readonly StoredDatabase[]): DesiredInstance | null {
    const db = dbs.find((d) => d.members.some((m) => m.instance === r.id));
    const m = db?.members.find((x) => x.instance === r.id);
    if (!db || !m) return null;
    const dir = this.dirOf(env.id, db.name);
    const netns = m.address !== null && env.netIndex !== null;
    const host = (x: DatabaseMember): string => x.address ?? '127.0.0.1';
    const common = { LANES_PG_STATE_DIR: path.join(dir, 'members', m.name), LANES_PG_TOKEN_FILE: path.join(dir, 'token'), LANES_LOG_LEVEL: 'info' };
    let env_: Record<string, string>;
    if (m.kind === 'arbiter') {
      env_ = { ...common, LANES_PG_NAME: m.name };
    } else {
      const peers = db.members
        .filter((x) => x !== m)
        .map((x) => (x.kind === 'arbiter' ? `${x.name}=http://${host(x)}:${x.port}` : `${x.name}=http://${host(x)}:${x.checkPort},${host(x)}:${x.port}`));
      const subnet = netns ? planEnvironment(this.#h.config.networkCidr, env.netIndex as number, this.#h.zones.names).subnet : null;
      env_ = {
        ...common,
        LANES_PG_NAME: m.name,
        LANES_PG_SECRETS_DIR: path.join(dir, 'secrets'),
        LANES_PG_BACKUP_DIR: this.backupDirOf(env.id, db.name),
        LANES_PG_BACKUP_INTERVAL: formatDuration(db.settings.backupIntervalMs),
        LANES_PG_BACKUP_RETENTION: formatDuration(db.settings.backupRetentionMs),
        LANES_PG_VERIFY_BACKUPS: 'true',
        LANES_PG_INITIAL_PRIMARY: db.members.find((x) => x.kind === 'member')?.name ?? m.name,
        LANES_PG_ALLOW: subnet ?? '127.0.0.1/32 ::1/128',
        ...(peers.length > 0 ? { LANES_PG_PEER: peers.join(' ') } : {}),
      };
    }
    return {
      id: r.id,
      tenant: env.tenant,
      environment: env.name,
      service: databaseService(db.name),
      release: PLATFORM_RELEASE,
      argv: [process.execPath, m.kind === 'arbiter' ? ARBITER_MAIN : KEEPER_MAIN],
      env: env_,
      port: m.port,
      listens: true,
      health: null,
      stopGraceMs: MEMBER_STOP_GRACE_MS,
      network: netns ? { envIndex: env.netIndex as number, cidr: this.#h.config.networkCidr, zones: this.#h.zones.names, address: m.address as string } : null,
      ...(m.kind === 'member' ? { checkPort: m.checkPort } : {}),
    };
  }

  /**
   * The variables the environment's services get: DATABASE_URL_<NAME> per database and
   * DATABASE_URL (the database named main, or the only one). The host is the gateway's
   * platform TCP port, which routes to the primary alone and follows failovers.
   */
  async variablesOf(env: Environment, dbs: readonly StoredDatabase[], ports: ReadonlyMap<string, number>): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const active = dbs.filter((d) => d.environmentId === env.id && d.phase === 'active');
    for (const db of active) {
      const port = ports.get(`${env.id}/${databaseService(db.name)}`);
      if (port === undefined) continue;
      const url = `postgres://${APP}:${encodeURIComponent(await this.#password(env.id, db.name))}@${this.#h.tcpAddress()}:${port}/${APP}`;
      out[databaseVariable(db.name)] = url;
      if (db.name === 'main' || active.length === 1) out['DATABASE_URL'] = url;
    }
    return out;
  }

  /** The gateway's endpoints for a database's TCP route: its data members, each checked on its keeper's port. */
  static endpointsOf(db: StoredDatabase, rows: readonly InstanceRow[], routable: (zone: string) => boolean): Endpoint[] {
    return db.members.flatMap((m) => {
      if (m.kind !== 'member') return [];
      const r = rows.find((x) => x.id === m.instance);
      const o = r?.observed;
      if (!r || r.desired !== 'running' || !routable(r.zone) || !o || o.state !== 'running' || o.port === null) return [];
      // A standby is a healthy instance too; the primary check picks the primary among them.
      return [{ instance: r.id, zone: r.zone, address: o.address, port: o.port, checkPort: o.checkPort ?? m.checkPort }];
    });
  }

  async #password(environmentId: string, name: string): Promise<string> {
    const dir = this.dirOf(environmentId, name);
    let pw = this.#passwords.get(dir);
    if (pw === undefined) {
      pw = (await readFile(path.join(dir, 'secrets', 'app-password'), 'utf8')).trim();
      this.#passwords.set(dir, pw);
    }
    return pw;
  }

  // ---- API operations -------------------------------------------------------------------

  parseCreate(body: unknown): DatabaseSpec {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InputError('body: expected { "name": "main", "engine": "postgres" }', 'body');
    const { name, ...rest } = body as Record<string, unknown>;
    return parseDatabaseSpec({ base: '', nameField: 'name' }, name, rest);
  }

  /**
   * Records a database and its members' placement, and writes its token and passwords. On a
   * double lane it needs three zones (two members and the arbiter, each in its own). Bad
   * input or a duplicate name changes nothing.
   */
  async create(
    env: Environment,
    spec: DatabaseSpec,
    source: StoredDatabase['source'],
    restore: { from: NonNullable<StoredDatabase['restoredFrom']>; secretsDir: string; prepare: (members: readonly DatabaseMember[]) => Promise<void> } | null = null,
  ): Promise<StoredDatabase> {
    const run = this.#creating.then(() => this.#create(env, spec, source, restore));
    this.#creating = run.catch(() => undefined);
    return run;
  }

  /**
   * Members on environment networks (isolation netns) need their directories owned by the
   * unprivileged instance user and a DATABASE_URL reachable from inside the namespace: not
   * built yet, so such a platform says so instead of starting members that cannot work.
   */
  #checkIsolation(field: string): void {
    if (this.#h.config.isolation === 'netns') {
      throw new InputError(`${field}: managed databases run on platforms started with --isolation none in this version; this one isolates environments (netns)`, field.split(': ').at(-1));
    }
  }

  async #create(env: Environment, spec: DatabaseSpec, source: StoredDatabase['source'], restore: Parameters<Databases['create']>[3]): Promise<StoredDatabase> {
    this.#checkIsolation('engine');
    if (env.phase !== 'active') throw new ConflictError(`environment ${env.tenant}/${env.name} is being deleted`);
    const existing = await this.#h.store.listDatabases(env.id);
    if (existing.some((d) => d.name === spec.name)) throw new ConflictError(`database ${JSON.stringify(spec.name)} already exists in ${env.tenant}/${env.name}; see lanes db status ${env.tenant}/${env.name} ${spec.name}`);
    if (env.currentRelease) {
      const m = await this.#h.manifestOf(env.id, env.currentRelease);
      if (m.services.some((s) => s.name === databaseService(spec.name))) throw new ConflictError(`name: service ${databaseService(spec.name)} of ${env.tenant}/${env.name} already has the name database ${spec.name}'s members would get; choose another name`);
    }
    const zones = this.#h.zones.names;
    const needed = env.lane === 'double' ? 3 : 1;
    if (zones.length < needed) {
      throw new InputError(`lane: a database on a double lane needs 3 zones (two members and the arbiter, each in its own); this platform has ${zones.length} (${zones.join(', ')})`, 'lane');
    }
    // Spread databases over zones: the first member's zone turns with each database.
    const all = await this.#h.store.listDatabases();
    const offset = all.length % zones.length;
    const order = [...zones.slice(offset), ...zones.slice(0, offset)];
    const roles: { name: string; kind: DatabaseMember['kind'] }[] = env.lane === 'double' ? [{ name: 'a', kind: 'member' }, { name: 'b', kind: 'member' }, { name: 'arbiter', kind: 'arbiter' }] : [{ name: 'a', kind: 'member' }];
    const taken = new Set(all.flatMap((d) => d.members.flatMap((m) => [m.port, m.checkPort])));
    const usedAddresses = (await this.#h.store.listInstances({ environmentId: env.id })).flatMap((r) => (r.address ? [r.address] : []));
    const members: DatabaseMember[] = [];
    for (const [i, role] of roles.entries()) {
      const zone = order[i] as string;
      const instance = `${databaseService(spec.name)}-${role.name === 'arbiter' ? 'arb' : role.name}-${randomBytes(3).toString('hex')}`;
      if (env.netIndex !== null && this.#h.config.isolation === 'netns') {
        const address = allocateAddress(planEnvironment(this.#h.config.networkCidr, env.netIndex, zones), zone, usedAddresses);
        usedAddresses.push(address);
        // Each member has its own address: the usual ports.
        members.push({ name: role.name, kind: role.kind, zone, instance, port: role.kind === 'arbiter' ? 7400 : 5432, checkPort: role.kind === 'arbiter' ? 7400 : 5433, address });
      } else {
        const port = await this.#freePort(taken);
        taken.add(port);
        const checkPort = role.kind === 'arbiter' ? port : await this.#freePort(taken);
        taken.add(checkPort);
        members.push({ name: role.name, kind: role.kind, zone, instance, port, checkPort, address: null });
      }
    }
    const dir = this.dirOf(env.id, spec.name);
    let db: StoredDatabase;
    try {
      await this.#prepareFiles(dir, this.backupDirOf(env.id, spec.name), restore?.secretsDir);
      // Restored data is in place before the record exists: nothing starts a member on an empty directory.
      if (restore) await restore.prepare(members);
      db = await this.#h.store.createDatabase({
        environmentId: env.id,
        name: spec.name,
        engine: spec.engine,
        source,
        settings: { backupIntervalMs: spec.backupIntervalMs, backupRetentionMs: spec.backupRetentionMs },
        members,
        restoredFrom: restore?.from ?? null,
      });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const where = members.map((m) => `${m.kind === 'arbiter' ? 'arbiter' : `member ${m.name}`} in zone ${m.zone}`).join(', ');
    await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseCreated', object: `database/${spec.name}`, message: `database ${spec.name} (${spec.engine}, lane ${env.lane}) created: ${where}` });
    this.#h.log.info({ tenant: env.tenant, environment: env.name, database: spec.name, members: members.map((m) => `${m.name}@${m.zone}`) }, 'database created');
    return db;
  }

  /** The token (shared by the members, the arbiter and the control plane) and the three passwords, 0600. */
  async #prepareFiles(dir: string, backupDir: string, secretsFrom?: string): Promise<void> {
    await this.#traversable();
    // The keeper creates the backup directory itself (owned by PostgreSQL's user); its parent must be traversable.
    await mkdir(path.dirname(backupDir), { recursive: true, mode: 0o711 });
    await chmod(path.dirname(backupDir), 0o711);
    await mkdir(path.join(dir, 'members'), { recursive: true, mode: 0o711 });
    await chmod(dir, 0o711);
    await chmod(path.join(dir, 'members'), 0o711);
    await writeFile(path.join(dir, 'token'), `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    const secrets = path.join(dir, 'secrets');
    if (secretsFrom !== undefined) {
      await cp(secretsFrom, secrets, { recursive: true });
    } else {
      await mkdir(secrets, { recursive: true, mode: 0o700 });
      for (const f of ['superuser-password', 'replication-password', 'app-password']) {
        await writeFile(path.join(secrets, f), `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
      }
    }
  }

  /**
   * PostgreSQL runs as its own user (as root, the keeper drops to `postgres`): it must be
   * able to traverse LANES_HOME down to its directories (not to list or read them).
   */
  async #traversable(): Promise<void> {
    for (const d of [this.#home, path.join(this.#home, 'databases'), path.join(this.#home, 'backups')]) {
      await mkdir(d, { recursive: true, mode: 0o711 });
      const mode = (await stat(d)).mode & 0o777;
      if ((mode & 0o001) === 0) await chmod(d, mode | 0o001);
    }
  }

  async #freePort(taken: ReadonlySet<number>): Promise<number> {
    const { first, last } = this.#ports;
    const span = last - first + 1;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = first + ((start + i) % span);
      if (taken.has(port)) continue;
      if (await portFree(port)) return port;
    }
    throw new ConflictError(`database ports: all ${span} ports of ${first}-${last} are taken; widen LANES_DATABASE_PORTS`);
  }

  async environmentDatabase(env: Environment, name: string): Promise<StoredDatabase> {
    return this.#h.store.getDatabase(env.id, name);
  }

  async delete(env: Environment, name: string): Promise<StoredDatabase> {
    const db = await this.#h.store.getDatabase(env.id, name);
    // The running release would only create it again, empty: the manifest must let go first.
    if (env.currentRelease && env.phase === 'active' && db.phase === 'active') {
      const manifest = await this.#h.manifestOf(env.id, env.currentRelease);
      if ((manifest.databases ?? []).some((d) => d.name === name)) {
        throw new ConflictError(`database ${name} is declared in the running release of ${env.tenant}/${env.name}; remove it from lanes.yaml (databases:) and deploy, then delete it`);
      }
    }
    if (db.phase === 'active') {
      await this.#h.store.setDatabasePhase(env.id, name, 'deleting');
      await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseDeleting', object: `database/${name}`, message: `deleting database ${name}: stopping its members (its backups are kept)` });
    }
    return { ...db, phase: 'deleting' };
  }

  // ---- talking to the keepers ---------------------------------------------------------

  #memberUrl(m: DatabaseMember): string {
    return `http://${m.address ?? '127.0.0.1'}:${m.kind === 'arbiter' ? m.port : m.checkPort}`;
  }

  async #call<T>(env: Environment, db: StoredDatabase, m: DatabaseMember, method: 'GET' | 'POST', route: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: T }> {
    const token = (await readFile(path.join(this.dirOf(env.id, db.name), 'token'), 'utf8')).trim();
    const res = await request(`${this.#memberUrl(m)}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { detail: text.slice(0, 200) };
    }
    return { status: res.statusCode, json: json as T };
  }

  async #statuses(env: Environment, db: StoredDatabase): Promise<Map<string, KeeperStatusLike | null>> {
    const out = new Map<string, KeeperStatusLike | null>();
    await Promise.all(
      db.members.map(async (m) => {
        try {
          const r = await this.#call<KeeperStatusLike>(env, db, m, 'GET', '/status', undefined, 1500);
          out.set(m.name, r.status === 200 ? r.json : null);
        } catch {
          out.set(m.name, null);
        }
      }),
    );
    return out;
  }

  /** The member whose keeper says it is the primary (holding its lease), or null. */
  async #primary(env: Environment, db: StoredDatabase): Promise<{ member: DatabaseMember; statuses: Map<string, KeeperStatusLike | null> } | null> {
    const statuses = await this.#statuses(env, db);
    const m = db.members.find((x) => x.kind === 'member' && statuses.get(x.name)?.role === 'primary');
    return m ? { member: m, statuses } : null;
  }

  async status(env: Environment, name: string, ports: ReadonlyMap<string, number>): Promise<DatabaseStatus> {
    const db = await this.#h.store.getDatabase(env.id, name);
    const statuses = db.phase === 'active' ? await this.#statuses(env, db) : new Map<string, KeeperStatusLike | null>();
    const rows = await this.#h.store.listInstances({ environmentId: env.id });
    const members: DatabaseMemberStatus[] = db.members.map((m) => {
      const s = statuses.get(m.name) ?? null;
      const r = rows.find((x) => x.id === m.instance);
      const o = r?.observed ?? null;
      const role: DatabaseMemberStatus['role'] = m.kind === 'arbiter' ? (s ? 'arbiter' : 'unknown') : (s?.role ?? 'unknown');
      return {
        name: m.name,
        role,
        zone: m.zone,
        instance: m.instance,
        pid: m.kind === 'arbiter' ? (o?.pid ?? null) : (s?.postgres?.pid ?? null),
        state: o?.state ?? (r?.desired === 'running' ? 'pending' : 'stopped'),
        healthy: o?.healthy ?? false,
        lagBytes: s?.replication?.lagBytes ?? null,
        replayDelaySeconds: s?.replication?.replayDelaySeconds ?? null,
        checkUrl: m.kind === 'member' ? `${this.#memberUrl(m)}/mirrorstatus` : null,
        message: s ? (s.lastDecision?.reason ?? '') : m.kind === 'arbiter' ? 'not answering' : `keeper not answering${o?.message ? ` (${o.message})` : ''}`,
      };
    });
    const history = new Map<string, DatabaseStatus['failovers'][number]>();
    for (const s of statuses.values()) for (const h of s?.history ?? []) history.set(`${h.term}/${h.primary}`, { at: h.at, term: h.term, primary: h.primary, reason: h.reason });
    const failovers = [...history.values()].sort((a, b) => a.term - b.term || a.at.localeCompare(b.at));
    let last: BackupInfo | null = null;
    const primary = members.find((m) => m.role === 'primary')?.name ?? null;
    const ask = db.members.find((m) => m.name === primary) ?? db.members.find((m) => m.kind === 'member' && statuses.get(m.name));
    if (ask) {
      try {
        const r = await this.#call<{ backups?: BackupInfo[] }>(env, db, ask, 'GET', '/backups', undefined, 2000);
        last = r.status === 200 ? (r.json.backups?.at(-1) ?? null) : null;
      } catch {
        last = null;
      }
    }
    const port = ports.get(`${env.id}/${databaseService(db.name)}`);
    const variables = Object.keys(await this.variablesOf(env, await this.#h.store.listDatabases(env.id), ports)).filter((v) => v === databaseVariable(db.name) || v === 'DATABASE_URL');
    return {
      name: db.name,
      engine: db.engine,
      tenant: env.tenant,
      environment: env.name,
      lane: env.lane,
      source: db.source,
      phase: db.phase,
      restoredFrom: db.restoredFrom,
      url: port === undefined ? '' : `postgres://${APP}:****@${this.#h.tcpAddress()}:${port}/${APP}`,
      variables: db.phase === 'active' ? variables : [],
      tcp: port === undefined ? null : { address: this.#h.tcpAddress(), port },
      primary,
      members,
      backup: { interval: formatDuration(db.settings.backupIntervalMs), retention: formatDuration(db.settings.backupRetentionMs), last },
      failovers,
    };
  }

  /** `lanes db switchover`: the primary hands over to its synchronous standby, losing no acknowledged write. */
  async switchover(env: Environment, name: string, to: unknown): Promise<{ primary: string; term: number; reason: string }> {
    const db = await this.#h.store.getDatabase(env.id, name);
    if (to !== undefined && (typeof to !== 'string' || !db.members.some((m) => m.kind === 'member' && m.name === to))) {
      throw new InputError(`to: ${JSON.stringify(to)} is not a member of database ${name}; it has ${db.members.filter((m) => m.kind === 'member').map((m) => m.name).join(', ')}`, 'to');
    }
    if (db.members.filter((m) => m.kind === 'member').length < 2) throw new ConflictError(`database ${name} has a single member (lane single): there is nothing to switch over to`);
    const p = await this.#primary(env, db);
    if (!p) throw new UnavailableError(`database ${name} has no primary right now; see lanes db status ${env.tenant}/${env.name} ${name}`);
    if (to === p.member.name) throw new ConflictError(`member ${to} is already the primary of database ${name}`);
    const r = await this.#call<{ primary?: string; term?: number; reason?: string; detail?: string }>(env, db, p.member, 'POST', '/switchover', to === undefined ? {} : { to }, 90_000);
    if (r.status !== 200) {
      const detail = r.json.detail ?? `keeper answered ${r.status}`;
      throw r.status === 409 ? new ConflictError(`switchover of ${name}: ${detail}`) : new UnavailableError(`switchover of ${name}: ${detail}`);
    }
    const out = { primary: r.json.primary ?? '?', term: r.json.term ?? 0, reason: r.json.reason ?? '' };
    await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseSwitchover', object: `database/${name}`, message: `database ${name} switched over from ${p.member.name} to ${out.primary} (term ${out.term}) on request` });
    return out;
  }

  /** `lanes db backup`: a base backup now, on the primary. */
  async backup(env: Environment, name: string): Promise<BackupInfo> {
    const db = await this.#h.store.getDatabase(env.id, name);
    const p = await this.#primary(env, db);
    if (!p) throw new UnavailableError(`database ${name} has no primary right now: a backup is taken on the primary; see lanes db status ${env.tenant}/${env.name} ${name}`);
    const r = await this.#call<BackupInfo & { detail?: string }>(env, db, p.member, 'POST', '/backup', {}, 600_000);
    if (r.status !== 200 && r.status !== 201) throw new UnavailableError(`backup of ${name}: ${r.json.detail ?? `keeper answered ${r.status}`}`);
    await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseBackup', object: `database/${name}`, message: `base backup ${r.json.id} of database ${name} taken on ${p.member.name} (${r.json.sizeBytes} bytes) on request` });
    return r.json;
  }

  /** Every backup of a database, from its backup store (read directly: it needs no member up). */
  async backups(env: Environment, name: string): Promise<{ items: BackupInfo[]; retention: string; oldestRestorableTime: string | null }> {
    const db = await this.#h.store.getDatabase(env.id, name);
    const items = await readBackups(this.backupDirOf(env.id, db.name));
    // The window restore accepts: from the end of the oldest usable backup, but never before now - retention.
    const oldest = items.find((b) => b.verified?.ok !== false);
    const windowStart = Date.now() - db.settings.backupRetentionMs;
    const from = oldest ? new Date(Math.max(Date.parse(oldest.finishedAt), windowStart)).toISOString() : null;
    return { items, retention: formatDuration(db.settings.backupRetentionMs), oldestRestorableTime: from };
  }

  /**
   * `lanes db restore NAME --to-time T --as NEW`: point-in-time recovery into a new database
   * of the same environment (never over the live one). The target time must lie between the
   * end of a kept backup and now; anything else is an InputError and nothing is created.
   */
  async restore(env: Environment, name: string, body: unknown): Promise<StoredDatabase> {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const source = await this.#h.store.getDatabase(env.id, name);
    const spec = parseDatabaseSpec({ base: '', nameField: 'as' }, b['as'], { engine: source.engine, backup: { interval: formatDuration(source.settings.backupIntervalMs), retention: formatDuration(source.settings.backupRetentionMs) } });
    if (typeof b['toTime'] !== 'string' || Number.isNaN(Date.parse(b['toTime']))) {
      throw new InputError(`toTime: ${JSON.stringify(b['toTime'])} is not a time; use ISO 8601, e.g. 2026-12-02T11:30:00Z`, 'toTime');
    }
    const target = new Date(b['toTime']);
    const now = Date.now();
    const { items: backups } = await this.backups(env, name);
    const windowStart = now - source.settings.backupRetentionMs;
    const usable = backups.filter((x) => Date.parse(x.finishedAt) <= target.getTime() && x.verified?.ok !== false);
    if (target.getTime() > now) throw new InputError(`toTime: ${b['toTime']} is in the future; restore to a time up to now`, 'toTime');
    if (target.getTime() < windowStart) throw new InputError(`toTime: ${b['toTime']} is outside the retention window of ${formatDuration(source.settings.backupRetentionMs)} (from ${new Date(windowStart).toISOString()})`, 'toTime');
    if (usable.length === 0) {
      const first = backups[0];
      throw new InputError(`toTime: ${b['toTime']} is before the end of the oldest backup of ${name}${first ? ` (${first.finishedAt})` : ' (it has none yet: take one with lanes db backup)'}`, 'toTime');
    }
    const existing = await this.#h.store.listDatabases(env.id);
    if (existing.some((d) => d.name === spec.name)) throw new ConflictError(`as: database ${JSON.stringify(spec.name)} already exists in ${env.tenant}/${env.name}; restore under a new name`);
    const dir = this.dirOf(env.id, spec.name);
    const db = await this.create(env, spec, 'restore', {
      from: { database: name, toTime: target.toISOString() },
      secretsDir: path.join(this.dirOf(env.id, name), 'secrets'),
      prepare: async (members) => {
        const first = members.find((m) => m.kind === 'member') as DatabaseMember;
        const memberDir = path.join(dir, 'members', first.name);
        await mkdir(memberDir, { recursive: true, mode: 0o711 });
        await chmod(memberDir, 0o711);
        const retentionDays = Math.max(1, Math.ceil(source.settings.backupRetentionMs / 86_400_000));
        await runRestore(['--store', this.backupDirOf(env.id, name), '--data-dir', path.join(memberDir, 'pgdata'), '--to-time', target.toISOString(), '--retention', `${retentionDays}d`]);
      },
    });
    await this.#h.event({ tenant: env.tenant, environment: env.name, reason: 'DatabaseRestored', object: `database/${db.name}`, message: `database ${db.name} restored from ${name} as of ${target.toISOString()}` });
    return db;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function readBackups(dir: string): Promise<BackupInfo[]> {
  return (await new DirectoryBackupStore(dir).listBackups()) as BackupInfo[];
}

/** Runs restore-main.js; exit 2 is bad input (its one line), anything else unavailable. */
function runRestore(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RESTORE_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 8192) err += c.toString();
    });
    child.stdout.resume();
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = err.trim().split('\n').filter((l) => !l.startsWith('{')).at(-1)?.replace(/^restore: /, '') ?? `restore exited with ${code}`;
      if (code === 0) resolve();
      else if (code === 2) reject(new InputError(`toTime: ${line}`, 'toTime'));
      else reject(new UnavailableError(`restore failed: ${line || `exit ${code}`}`));
    });
  });
}
