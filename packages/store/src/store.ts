/**
 * The admin database: the one data-access layer over PostgreSQL. Embedded PGlite in a
 * directory by default, a real server when given a URL; the same SQL runs on both.
 * Migrations run at open under an advisory lock; every successful write is told to
 * in-process listeners after it commits (the change feed the control plane's watch
 * streams and reconcilers wake up on).
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { ConflictError, InputError, NotFoundError, PLATFORM_RELEASE, checkLane, checkName } from '@lanes/spec';
import type { DnsHealthCheck, Manifest, ObservedInstance } from '@lanes/spec';
import { isEdgeSettings, type EdgeSettings } from '@lanes/spec';
import { Kysely, Migrator, PostgresDialect, sql, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import { migrationProvider } from './migrations.js';
import type { DnsRecordsTable } from './schema.js';
import type { DatabasesTable } from './schema.js';
import type { DnsRecord, StoredDatabase } from './types.js';
import type { CertificatesTable, Database, EnvironmentsTable, EventsTable, ReleasesTable, TcpListenersTable, ZonesTable } from './schema.js';
import type {
  CertificateSource,
  Change,
  Desired,
  Environment,
  EgressEntry,
  Event,
  InstanceRow,
  Lane,
  Phase,
  Release,
  RunState,
  RunStates,
  ReleaseStatus,
  StoredCertificate,
  TcpListener,
  Tenant,
  Token,
  TokenRole,
  Zone,
} from './types.js';

/** The service_states key of environment-wide state: not a valid service name, so it never collides. */
const ENV_WIDE = '*';

export interface StoreLogger {
  info(obj: object, msg: string): void;
}

export interface OpenStoreOptions {
  /** A PostgreSQL URL; when set, the store uses a connection pool to that server. */
  readonly url?: string;
  /** Directory of the embedded PGlite database (created if missing); used when `url` is not set. */
  readonly dataDir?: string;
  readonly logger?: StoreLogger;
  /** @default 5 */
  readonly poolMax?: number;
}

export type CreatedRelease = Release & { readonly created: boolean };

export interface ListEventsOptions {
  readonly tenant?: string;
  readonly environment?: string;
  /** Only events with a larger id, oldest first (follow a stream with the last id seen). */
  readonly afterId?: number;
  /** @default 100, at most 1000 */
  readonly limit?: number;
}

const DEFAULT_POOL_MAX = 5;
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
const STATEMENT_TIMEOUT_MS = 30_000;
const DEFAULT_EVENT_LIMIT = 100;
const MAX_EVENT_LIMIT = 1000;
/** Key of the session advisory lock held while migrating, so two processes never migrate at once. */
const MIGRATION_LOCK_KEY = 'lanes.store.migrations';

const noopLogger: StoreLogger = { info: () => undefined };

/** The session the migration lock is taken on: a dedicated pool client, or PGlite's single session. */
interface LockSession {
  query(text: string, params: unknown[]): Promise<unknown>;
  release(): void;
}

/** Opens (and migrates) the admin database. */
export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const logger = opts.logger ?? noopLogger;
  let db: Kysely<Database>;
  let lockSession: () => Promise<LockSession>;
  let backend: 'postgres' | 'pglite';
  if (opts.url !== undefined) {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolMax ?? DEFAULT_POOL_MAX,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      application_name: 'lanes-store',
    });
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on('error', (err) => logger.info({ err: err.message }, 'idle database connection failed'));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    lockSession = async () => {
      const client = await pool.connect();
      return { query: (text, params) => client.query(text, params), release: () => client.release() };
    };
    backend = 'postgres';
  } else if (opts.dataDir !== undefined) {
    await mkdir(opts.dataDir, { recursive: true });
    const pglite = await PGlite.create({ dataDir: opts.dataDir });
    db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    // PGlite is one session, and advisory locks are re-entrant within a session, so the
    // migrator's own queries on that session do not wait on this lock.
    lockSession = () => Promise.resolve({ query: (text, params) => pglite.query(text, params), release: () => undefined });
    backend = 'pglite';
  } else {
    throw new InputError('store: give a database url or a dataDir', 'url');
  }
  try {
    await migrate(db, lockSession, logger);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  logger.info({ backend }, 'store opened');
  return new Store(db, logger);
}

async function migrate(db: Kysely<Database>, lockSession: () => Promise<LockSession>, logger: StoreLogger): Promise<void> {
  const session = await lockSession();
  try {
    await session.query('select pg_advisory_lock(hashtext($1))', [MIGRATION_LOCK_KEY]);
    try {
      const migrator = new Migrator({ db, provider: migrationProvider });
      const { error, results } = await migrator.migrateToLatest();
      for (const r of results ?? []) {
        if (r.status === 'Success') logger.info({ migration: r.migrationName }, 'migration applied');
      }
      if (error !== undefined) {
        const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'setup';
        throw new Error(`store: migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    } finally {
      await session.query('select pg_advisory_unlock(hashtext($1))', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    session.release();
  }
}

/** The PostgreSQL error code (SQLSTATE) of a driver error, if it has one. */
function pgCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
const UNIQUE_VIOLATION = '23505';

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}

function isoOrNull(v: Date | string | null): string | null {
  return v === null ? null : iso(v);
}

/** A JSON value written as text and cast, so both drivers store the same jsonb (PGlite would otherwise re-encode strings). */
function jsonb(value: unknown): RawBuilder<unknown> {
  return sql`cast(${JSON.stringify(value)}::text as jsonb)`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Narrows jsonb read back from the releases table (written only by createRelease). */
function isManifest(v: unknown): v is Manifest {
  return isRecord(v) && typeof v.name === 'string' && Array.isArray(v.services);
}

function isObserved(v: unknown): v is ObservedInstance {
  return isRecord(v) && typeof v.id === 'string' && typeof v.state === 'string';
}

function envId(): string {
  return `env_${randomBytes(8).toString('hex')}`;
}

/** Builds a Change, leaving out absent fields (exactOptionalPropertyTypes). */
function change(kind: Change['kind'], f: { tenant?: string | null | undefined; environment?: string | null | undefined; environmentId?: string | null | undefined } = {}): Change {
  return {
    kind,
    ...(f.tenant != null ? { tenant: f.tenant } : {}),
    ...(f.environment != null ? { environment: f.environment } : {}),
    ...(f.environmentId != null ? { environmentId: f.environmentId } : {}),
  };
}

function toEnvironment(r: Selectable<EnvironmentsTable>): Environment {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    lane: r.lane,
    phase: r.phase,
    currentRelease: r.current_release,
    createdAt: iso(r.created_at),
    netIndex: r.net_index,
    sandboxId: r.sandbox_id,
    egress: isEgress(r.egress) ? r.egress : null,
    edge: isEdgeSettings(r.edge) ? r.edge : null,
  };
}

function isEgress(v: unknown): v is EgressEntry[] {
  return Array.isArray(v) && v.every((e) => typeof e === 'object' && e !== null && typeof (e as { cidr?: unknown }).cidr === 'string');
}

function toRelease(r: Selectable<ReleasesTable>): Release {
  if (!isManifest(r.manifest)) throw new Error(`store: release ${r.hash} has a malformed manifest`);
  return {
    environmentId: r.environment_id,
    hash: r.hash,
    version: r.version,
    manifest: r.manifest,
    status: r.status,
    sizeBytes: Number(r.size_bytes),
    createdAt: iso(r.created_at),
  };
}

function toTcpListener(r: Selectable<TcpListenersTable>): TcpListener {
  return { environmentId: r.environment_id, service: r.service, port: r.port, createdAt: iso(r.created_at) };
}

function toDatabase(r: Selectable<DatabasesTable>): StoredDatabase {
  const parse = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);
  return {
    environmentId: r.environment_id,
    name: r.name,
    engine: r.engine as StoredDatabase['engine'],
    source: r.source as StoredDatabase['source'],
    settings: parse(r.settings) as StoredDatabase['settings'],
    members: parse(r.members) as StoredDatabase['members'],
    restoredFrom: r.restored_from === null ? null : (parse(r.restored_from) as StoredDatabase['restoredFrom']),
    phase: r.phase as StoredDatabase['phase'],
    createdAt: iso(r.created_at),
  };
}

/** How often assignTcpPort retries after another environment took the port it chose. */
const TCP_PORT_ATTEMPTS = 5;

function toCertificate(r: Selectable<CertificatesTable>): StoredCertificate {
  return {
    environmentId: r.environment_id,
    certPem: r.cert_pem,
    keyPem: r.key_pem,
    source: r.source,
    notBefore: iso(r.not_before),
    notAfter: iso(r.not_after),
    createdAt: iso(r.created_at),
  };
}

function isCheck(v: unknown): v is DnsHealthCheck {
  return isRecord(v) && typeof v.url === 'string' && typeof v.intervalMs === 'number' && typeof v.timeoutMs === 'number';
}

function toDnsRecord(r: Selectable<DnsRecordsTable>): DnsRecord {
  if (!isCheck(r.primary_check)) throw new Error(`store: dns record ${r.name} has a malformed primary check`);
  return {
    name: r.name,
    ttl: r.ttl,
    primary: { address: r.primary_address, check: r.primary_check },
    secondary: { address: r.secondary_address, check: isCheck(r.secondary_check) ? r.secondary_check : null },
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

function toZone(r: Selectable<ZonesTable>): Zone {
  return { name: r.name, agentUrl: r.agent_url, address: r.address, pid: r.pid, lastSeenAt: iso(r.last_seen_at) };
}

function toEvent(r: Selectable<EventsTable>): Event {
  return {
    id: Number(r.id),
    time: iso(r.time),
    tenant: r.tenant,
    environment: r.environment,
    reason: r.reason,
    object: r.object,
    message: r.message,
  };
}

type Db = Kysely<Database> | Transaction<Database>;

export class Store {
  readonly #db: Kysely<Database>;
  readonly #logger: StoreLogger;
  readonly #listeners = new Set<(c: Change) => void>();
  #closed = false;

  /** Use openStore(); the constructor takes an already migrated database. */
  constructor(db: Kysely<Database>, logger: StoreLogger) {
    this.#db = db;
    this.#logger = logger;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await this.#db.destroy();
  }

  /** Calls `fn` after every committed write; returns the unsubscribe function. */
  onChange(fn: (c: Change) => void): () => void {
    this.#listeners.add(fn);
    return () => {
      this.#listeners.delete(fn);
    };
  }

  #emit(changes: readonly Change[]): void {
    for (const c of changes) {
      for (const fn of this.#listeners) {
        try {
          fn(c);
        } catch (err) {
          // A faulty listener must not turn a committed write into a failed call.
          this.#logger.info({ kind: c.kind, err: err instanceof Error ? err.message : String(err) }, 'change listener failed');
        }
      }
    }
  }

  /** Runs `fn` in a transaction and emits the changes it collected once it has committed. */
  async #write<T>(fn: (trx: Transaction<Database>, changes: Change[]) => Promise<T>): Promise<T> {
    const changes: Change[] = [];
    const result = await this.#db.transaction().execute((trx) => fn(trx, changes));
    this.#emit(changes);
    return result;
  }

  // ---- tenants ----

  async createTenant(name: string): Promise<Tenant> {
    checkName('tenant', name);
    try {
      const r = await this.#db.insertInto('tenants').values({ name }).returningAll().executeTakeFirstOrThrow();
      this.#emit([change('tenant', { tenant: name })]);
      return { name: r.name, createdAt: iso(r.created_at) };
    } catch (err) {
      if (pgCode(err) === UNIQUE_VIOLATION) throw new ConflictError(`tenant "${name}" already exists`);
      throw err;
    }
  }

  async listTenants(): Promise<Tenant[]> {
    const rows = await this.#db.selectFrom('tenants').selectAll().orderBy('name').execute();
    return rows.map((r) => ({ name: r.name, createdAt: iso(r.created_at) }));
  }

  async getTenant(name: string): Promise<Tenant> {
    const r = await this.#db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
    if (!r) throw new NotFoundError(`tenant "${name}" not found; create it first or check the name`);
    return { name: r.name, createdAt: iso(r.created_at) };
  }

  async deleteTenant(name: string): Promise<void> {
    await this.#write(async (trx, changes) => {
      await this.#lockTenant(trx, name);
      const envs = await trx.selectFrom('environments').select('name').where('tenant', '=', name).orderBy('name').execute();
      if (envs.length > 0) {
        const names = envs.map((e) => e.name).join(', ');
        throw new ConflictError(`tenant "${name}" still has environments (${names}); delete its environments first`);
      }
      await trx.deleteFrom('tenants').where('name', '=', name).execute();
      changes.push(change('tenant', { tenant: name }));
    });
  }

  async #lockTenant(trx: Transaction<Database>, name: string): Promise<void> {
    const t = await trx.selectFrom('tenants').select('name').where('name', '=', name).forUpdate().executeTakeFirst();
    if (!t) throw new NotFoundError(`tenant "${name}" not found; create it first or check the name`);
  }

  // ---- environments ----

  /**
   * Creates an environment. With `netIndexMax`, it also gets the smallest free network
   * index in 1..netIndexMax (its private network), or a ConflictError when none is left.
   */
  async createEnvironment(input: { tenant: string; name: string; lane: Lane; netIndexMax?: number; egress?: readonly EgressEntry[] | null }): Promise<Environment> {
    checkName('tenant', input.tenant);
    checkName('environment', input.name);
    const lane = checkLane(input.lane);
    return this.#write(async (trx, changes) => {
      // Locking the tenant row keeps a concurrent deleteTenant from slipping in between.
      await this.#lockTenant(trx, input.tenant);
      const exists = await trx
        .selectFrom('environments')
        .select('id')
        .where('tenant', '=', input.tenant)
        .where('name', '=', input.name)
        .executeTakeFirst();
      if (exists) throw new ConflictError(`environment "${input.name}" of tenant "${input.tenant}" already exists`);
      let netIndex: number | null = null;
      if (input.netIndexMax !== undefined) {
        const used = new Set((await trx.selectFrom('environments').select('net_index').where('net_index', 'is not', null).execute()).map((x) => x.net_index));
        for (let i = 1; i <= input.netIndexMax && netIndex === null; i++) if (!used.has(i)) netIndex = i;
        if (netIndex === null) throw new ConflictError(`no private network is free: the platform network fits ${input.netIndexMax} environments; delete one or widen the platform CIDR`);
      }
      const r = await trx
        .insertInto('environments')
        .values({ id: envId(), tenant: input.tenant, name: input.name, lane, phase: 'active', current_release: null, net_index: netIndex, egress: input.egress == null ? null : JSON.stringify(input.egress) })
        .returningAll()
        .executeTakeFirstOrThrow();
      changes.push(change('environment', { tenant: r.tenant, environment: r.name, environmentId: r.id }));
      return toEnvironment(r);
    });
  }

  async listEnvironments(tenant?: string): Promise<Environment[]> {
    let q = this.#db.selectFrom('environments').selectAll();
    if (tenant !== undefined) q = q.where('tenant', '=', tenant);
    const rows = await q.orderBy('tenant').orderBy('name').execute();
    return rows.map(toEnvironment);
  }

  async getEnvironment(tenant: string, name: string): Promise<Environment> {
    const r = await this.#db.selectFrom('environments').selectAll().where('tenant', '=', tenant).where('name', '=', name).executeTakeFirst();
    if (!r) throw new NotFoundError(`environment "${name}" of tenant "${tenant}" not found; check the name with lanes env list`);
    return toEnvironment(r);
  }

  async getEnvironmentById(id: string): Promise<Environment> {
    return toEnvironment(await this.#envRow(this.#db, id));
  }

  async #envRow(db: Db, id: string, forUpdate = false): Promise<Selectable<EnvironmentsTable>> {
    let q = db.selectFrom('environments').selectAll().where('id', '=', id);
    if (forUpdate) q = q.forUpdate();
    const r = await q.executeTakeFirst();
    if (!r) throw new NotFoundError(`environment id "${id}" not found; it may have been deleted`);
    return r;
  }

  async setEnvironmentPhase(id: string, phase: Phase): Promise<Environment> {
    if (phase !== 'active' && phase !== 'deleting') throw new InputError(`phase: ${JSON.stringify(phase)} is not a phase; use active or deleting`, 'phase');
    return this.#updateEnvironment(id, { phase });
  }

  /** Points the environment at one of its releases. */
  async setCurrentRelease(id: string, hash: string): Promise<Environment> {
    return this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, id, true);
      const rel = await trx.selectFrom('releases').select('hash').where('environment_id', '=', id).where('hash', '=', hash).executeTakeFirst();
      if (!rel) throw new NotFoundError(`release "${hash}" not found in environment "${env.tenant}/${env.name}"; upload it first`);
      const r = await trx.updateTable('environments').set({ current_release: hash }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      changes.push(change('environment', { tenant: r.tenant, environment: r.name, environmentId: r.id }));
      return toEnvironment(r);
    });
  }

  /** Sets the environment's egress allow-list (null: anything outside the platform). */
  async setEgress(id: string, egress: readonly EgressEntry[] | null): Promise<Environment> {
    const r = await this.#db
      .updateTable('environments')
      .set({ egress: egress === null ? null : JSON.stringify(egress) })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`environment id "${id}" not found; it may have been deleted`);
    this.#emit([change('environment', { tenant: r.tenant, environment: r.name, environmentId: r.id })]);
    return toEnvironment(r);
  }

  /** Sets the environment's edge settings (null: the defaults). */
  async setEdge(id: string, edge: EdgeSettings | null): Promise<Environment> {
    const r = await this.#db
      .updateTable('environments')
      .set({ edge: edge === null ? null : jsonb(edge) })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`environment id "${id}" not found; it may have been deleted`);
    this.#emit([change('environment', { tenant: r.tenant, environment: r.name, environmentId: r.id })]);
    return toEnvironment(r);
  }

  async #updateEnvironment(id: string, set: { phase: Phase }): Promise<Environment> {
    const r = await this.#db.updateTable('environments').set(set).where('id', '=', id).returningAll().executeTakeFirst();
    if (!r) throw new NotFoundError(`environment id "${id}" not found; it may have been deleted`);
    this.#emit([change('environment', { tenant: r.tenant, environment: r.name, environmentId: r.id })]);
    return toEnvironment(r);
  }

  /** Removes the environment with its releases, scale overrides and instances. Events stay. */
  async deleteEnvironment(id: string): Promise<void> {
    await this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, id, true);
      const removed = await trx.deleteFrom('instances').where('environment_id', '=', id).returning('id').execute();
      await trx.deleteFrom('services').where('environment_id', '=', id).execute();
      await trx.deleteFrom('releases').where('environment_id', '=', id).execute();
      await trx.deleteFrom('environments').where('id', '=', id).execute();
      const scope = { tenant: env.tenant, environment: env.name, environmentId: env.id };
      if (removed.length > 0) changes.push(change('instance', scope));
      changes.push(change('environment', scope));
    });
  }

  // ---- releases ----

  /** Records a release; idempotent per (environment, hash): the existing row comes back with `created: false`. */
  async createRelease(input: { environmentId: string; hash: string; manifest: Manifest; sizeBytes: number }): Promise<CreatedRelease> {
    if (!Number.isSafeInteger(input.sizeBytes) || input.sizeBytes < 0) {
      throw new InputError(`sizeBytes: ${String(input.sizeBytes)} is not a byte count; use a non-negative integer`, 'sizeBytes');
    }
    return this.#write(async (trx, changes) => {
      // The row lock serialises concurrent uploads to one environment, so versions never collide.
      const env = await this.#envRow(trx, input.environmentId, true);
      const existing = await trx
        .selectFrom('releases')
        .selectAll()
        .where('environment_id', '=', input.environmentId)
        .where('hash', '=', input.hash)
        .executeTakeFirst();
      if (existing) return { ...toRelease(existing), created: false };
      const max = await trx
        .selectFrom('releases')
        .select((eb) => eb.fn.max('version').as('max'))
        .where('environment_id', '=', input.environmentId)
        .executeTakeFirst();
      const version = (max?.max ?? 0) + 1;
      const r = await trx
        .insertInto('releases')
        .values({
          environment_id: input.environmentId,
          hash: input.hash,
          version,
          manifest: jsonb(input.manifest),
          status: 'deploying',
          size_bytes: input.sizeBytes,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      changes.push(change('release', { tenant: env.tenant, environment: env.name, environmentId: env.id }));
      return { ...toRelease(r), created: true };
    });
  }

  /** Newest first. */
  async listReleases(environmentId: string): Promise<Release[]> {
    const rows = await this.#db.selectFrom('releases').selectAll().where('environment_id', '=', environmentId).orderBy('version', 'desc').execute();
    return rows.map(toRelease);
  }

  async getRelease(environmentId: string, hash: string): Promise<Release> {
    const r = await this.#db.selectFrom('releases').selectAll().where('environment_id', '=', environmentId).where('hash', '=', hash).executeTakeFirst();
    if (!r) throw new NotFoundError(`release "${hash}" not found in environment id "${environmentId}"; list releases to see what was uploaded`);
    return toRelease(r);
  }

  async setReleaseStatus(environmentId: string, hash: string, status: ReleaseStatus): Promise<Release> {
    if (!['deploying', 'active', 'superseded', 'failed'].includes(status)) {
      throw new InputError(`status: ${JSON.stringify(status)} is not a release status; use deploying, active, superseded or failed`, 'status');
    }
    return this.#write(async (trx, changes) => {
      const r = await trx
        .updateTable('releases')
        .set({ status })
        .where('environment_id', '=', environmentId)
        .where('hash', '=', hash)
        .returningAll()
        .executeTakeFirst();
      if (!r) throw new NotFoundError(`release "${hash}" not found in environment id "${environmentId}"; list releases to see what was uploaded`);
      const env = await this.#envRow(trx, environmentId);
      changes.push(change('release', { tenant: env.tenant, environment: env.name, environmentId }));
      return toRelease(r);
    });
  }

  // ---- services (scale overrides) ----

  /** Overrides the manifest's instance count for one service (`lanes scale`). */
  async setScale(environmentId: string, service: string, instances: number): Promise<void> {
    checkName('service', service);
    if (!Number.isInteger(instances) || instances < 0) {
      throw new InputError(`instances: ${String(instances)} is not an instance count; use an integer of 0 or more`, 'instances');
    }
    await this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, environmentId, true);
      await trx
        .insertInto('services')
        .values({ environment_id: environmentId, service, instances })
        .onConflict((oc) => oc.columns(['environment_id', 'service']).doUpdateSet({ instances, updated_at: sql`now()` }))
        .execute();
      changes.push(change('service', { tenant: env.tenant, environment: env.name, environmentId }));
    });
  }

  /**
   * Stops or starts the environment (service null) or one service, or marks it restarted
   * now (its instances created before are replaced).
   */
  async setRunState(environmentId: string, service: string | null, change_: { stopped?: boolean; restart?: boolean }): Promise<void> {
    if (service !== null) checkName('service', service);
    const key = service ?? ENV_WIDE;
    await this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, environmentId, true);
      const set: { stopped?: boolean; restarted_at?: RawBuilder<Date> } = {};
      if (change_.stopped !== undefined) set.stopped = change_.stopped;
      if (change_.restart) set.restarted_at = sql<Date>`now()`;
      await trx
        .insertInto('service_states')
        .values({ environment_id: environmentId, service: key, stopped: change_.stopped ?? false, restarted_at: change_.restart ? sql<Date>`now()` : null })
        .onConflict((oc) => oc.columns(['environment_id', 'service']).doUpdateSet(set))
        .execute();
      changes.push(change('service', { tenant: env.tenant, environment: env.name, environmentId }));
    });
  }

  async getRunStates(environmentId: string): Promise<RunStates> {
    const rows = await this.#db.selectFrom('service_states').selectAll().where('environment_id', '=', environmentId).execute();
    const state = (r: (typeof rows)[number] | undefined): RunState => ({ stopped: r?.stopped ?? false, restartedAt: r?.restarted_at ? iso(r.restarted_at) : null });
    const services: Record<string, RunState> = {};
    for (const r of rows) if (r.service !== ENV_WIDE) services[r.service] = state(r);
    return { environment: state(rows.find((r) => r.service === ENV_WIDE)), services };
  }

  async getScales(environmentId: string): Promise<Record<string, number>> {
    const rows = await this.#db.selectFrom('services').select(['service', 'instances']).where('environment_id', '=', environmentId).orderBy('service').execute();
    const out: Record<string, number> = {};
    for (const r of rows) out[r.service] = r.instances;
    return out;
  }

  // ---- instances ----

  async createInstance(input: { id: string; environmentId: string; service: string; release: string; zone: string; address?: string | null }): Promise<InstanceRow> {
    return this.#write(async (trx, changes) => {
      // The row lock keeps a concurrent deleteEnvironment from removing the environment under us.
      const env = await this.#envRow(trx, input.environmentId, true);
      const rel = input.release === PLATFORM_RELEASE || (await trx.selectFrom('releases').select('hash').where('environment_id', '=', env.id).where('hash', '=', input.release).executeTakeFirst());
      if (!rel) throw new NotFoundError(`release "${input.release}" not found in environment "${env.tenant}/${env.name}"; create the release first`);
      const dup = await trx.selectFrom('instances').select('id').where('id', '=', input.id).executeTakeFirst();
      if (dup) throw new ConflictError(`instance "${input.id}" already exists; pick another id`);
      const r = await trx
        .insertInto('instances')
        .values({ id: input.id, environment_id: env.id, service: input.service, release: input.release, zone: input.zone, desired: 'running', address: input.address ?? null })
        .returningAll()
        .executeTakeFirstOrThrow();
      changes.push(change('instance', { tenant: env.tenant, environment: env.name, environmentId: env.id }));
      return {
        id: r.id,
        environmentId: r.environment_id,
        tenant: env.tenant,
        environment: env.name,
        service: r.service,
        release: r.release,
        zone: r.zone,
        desired: r.desired,
        observed: null,
        observedAt: null,
        createdAt: iso(r.created_at),
        address: r.address,
      };
    });
  }

  /** Instances with their tenant and environment names, oldest first. */
  async listInstances(filter: { environmentId?: string; zone?: string } = {}): Promise<InstanceRow[]> {
    let q = this.#db
      .selectFrom('instances as i')
      .innerJoin('environments as e', 'e.id', 'i.environment_id')
      .select(['i.id', 'i.environment_id', 'e.tenant', 'e.name', 'i.service', 'i.release', 'i.zone', 'i.desired', 'i.observed', 'i.observed_at', 'i.created_at', 'i.address']);
    if (filter.environmentId !== undefined) q = q.where('i.environment_id', '=', filter.environmentId);
    if (filter.zone !== undefined) q = q.where('i.zone', '=', filter.zone);
    const rows = await q.orderBy('i.created_at').orderBy('i.id').execute();
    return rows.map((r) => ({
      id: r.id,
      environmentId: r.environment_id,
      tenant: r.tenant,
      environment: r.name,
      service: r.service,
      release: r.release,
      zone: r.zone,
      desired: r.desired,
      observed: isObserved(r.observed) ? r.observed : null,
      observedAt: isoOrNull(r.observed_at),
      createdAt: iso(r.created_at),
      address: r.address,
    }));
  }

  async setInstanceDesired(id: string, desired: Desired): Promise<void> {
    if (desired !== 'running' && desired !== 'stopped') throw new InputError(`desired: ${JSON.stringify(desired)} is not allowed; use running or stopped`, 'desired');
    const r = await this.#db.updateTable('instances').set({ desired }).where('id', '=', id).returning('environment_id').executeTakeFirst();
    if (!r) throw new NotFoundError(`instance "${id}" not found; it may have been deleted`);
    await this.#emitInstance(r.environment_id);
  }

  async deleteInstance(id: string): Promise<void> {
    const r = await this.#db.deleteFrom('instances').where('id', '=', id).returning('environment_id').executeTakeFirst();
    if (!r) throw new NotFoundError(`instance "${id}" not found; it may have been deleted`);
    await this.#emitInstance(r.environment_id);
  }

  /**
   * Records what a supervisor observed. Supervisors report every second, so this writes
   * (and emits a change) only when the value differs from the stored one, compared as
   * jsonb. Returns whether it changed; false too for an instance that no longer exists.
   */
  async updateObserved(id: string, observed: ObservedInstance | null): Promise<boolean> {
    const value = observed === null ? sql`null::jsonb` : jsonb(observed);
    const r = await this.#db
      .updateTable('instances')
      .set({ observed: value, observed_at: observed === null ? null : sql`now()` })
      .where('id', '=', id)
      .where(sql<boolean>`observed is distinct from ${value}`)
      .returning('environment_id')
      .executeTakeFirst();
    if (!r) return false;
    await this.#emitInstance(r.environment_id);
    return true;
  }

  /** Emits an instance change naming the environment (the write has already committed). */
  async #emitInstance(environmentId: string): Promise<void> {
    const env = await this.#db.selectFrom('environments').select(['tenant', 'name']).where('id', '=', environmentId).executeTakeFirst();
    this.#emit([change('instance', { tenant: env?.tenant, environment: env?.name, environmentId })]);
  }

  // ---- TCP listeners (platform TCP ports) ----

  /** The platform TCP ports in use (of one environment, or all), by port. */
  async listTcpListeners(environmentId?: string): Promise<TcpListener[]> {
    let q = this.#db.selectFrom('tcp_listeners').selectAll();
    if (environmentId !== undefined) q = q.where('environment_id', '=', environmentId);
    const rows = await q.orderBy('port').execute();
    return rows.map(toTcpListener);
  }

  /**
   * The platform TCP port of a service: the one it already has (ports are stable, clients
   * are configured with them), else the lowest free port in `first..last`. A ConflictError
   * when every port of the range is taken.
   */
  async assignTcpPort(environmentId: string, service: string, range: { readonly first: number; readonly last: number }): Promise<TcpListener> {
    checkName('service', service);
    const { first, last } = range;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65_535 || first > last) {
      throw new InputError(`tcp ports: ${first}-${last} is not a port range; use first-last within 1-65535`, 'tcpPorts');
    }
    for (let attempt = 0; attempt < TCP_PORT_ATTEMPTS; attempt++) {
      const got = await this.#write(async (trx, changes) => {
        // The environment's row lock serialises assignments within it; across environments the
        // unique port decides (a lost race retries with a fresh look).
        const env = await this.#envRow(trx, environmentId, true);
        const existing = await trx.selectFrom('tcp_listeners').selectAll().where('environment_id', '=', environmentId).where('service', '=', service).executeTakeFirst();
        if (existing) return toTcpListener(existing);
        const used = new Set((await trx.selectFrom('tcp_listeners').select('port').where('port', '>=', first).where('port', '<=', last).execute()).map((r) => r.port));
        let port: number | null = null;
        for (let p = first; p <= last && port === null; p++) if (!used.has(p)) port = p;
        if (port === null) {
          throw new ConflictError(`tcp ports: all ${last - first + 1} platform TCP ports (${first}-${last}) are in use; widen the range (--tcp-ports) or delete an environment with tcp services`);
        }
        const r = await trx
          .insertInto('tcp_listeners')
          .values({ environment_id: environmentId, service, port })
          .onConflict((oc) => oc.doNothing())
          .returningAll()
          .executeTakeFirst();
        if (!r) return null;
        changes.push(change('service', { tenant: env.tenant, environment: env.name, environmentId }));
        return toTcpListener(r);
      });
      if (got !== null) return got;
    }
    throw new ConflictError(`tcp ports: no port could be given to service ${service} after ${TCP_PORT_ATTEMPTS} attempts (other environments took them meanwhile); it is retried`);
  }

  /** Frees a service's platform TCP port (the service left the release). False when it had none. */
  async releaseTcpPort(environmentId: string, service: string): Promise<boolean> {
    const r = await this.#db.deleteFrom('tcp_listeners').where('environment_id', '=', environmentId).where('service', '=', service).returning('port').executeTakeFirst();
    if (!r) return false;
    const env = await this.#db.selectFrom('environments').select(['tenant', 'name']).where('id', '=', environmentId).executeTakeFirst();
    this.#emit([change('service', { tenant: env?.tenant, environment: env?.name, environmentId })]);
    return true;
  }

  // ---- certificates ----

  async getCertificate(environmentId: string): Promise<StoredCertificate | null> {
    const r = await this.#db.selectFrom('certificates').selectAll().where('environment_id', '=', environmentId).executeTakeFirst();
    return r ? toCertificate(r) : null;
  }

  async listCertificates(): Promise<StoredCertificate[]> {
    const rows = await this.#db.selectFrom('certificates').selectAll().orderBy('environment_id').execute();
    return rows.map(toCertificate);
  }

  /**
   * Stores the environment's certificate, replacing the one it had. With `replace:
   * 'platform-only'` (automatic issuance and renewal) a custom certificate is never
   * overwritten: the answer is null when one is there, so a `lanes cert set` racing with a
   * renewal wins.
   */
  async putCertificate(
    input: { environmentId: string; certPem: string; keyPem: string; source: CertificateSource; notBefore: string; notAfter: string },
    replace: 'any' | 'platform-only' = 'any',
  ): Promise<StoredCertificate | null> {
    if (input.source !== 'platform' && input.source !== 'custom') throw new InputError(`source: ${JSON.stringify(input.source)} is not a certificate source; use platform or custom`, 'source');
    return this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, input.environmentId, true);
      const values = {
        cert_pem: input.certPem,
        key_pem: input.keyPem,
        source: input.source,
        not_before: input.notBefore,
        not_after: input.notAfter,
        created_at: sql<string>`now()`,
      };
      const r = await trx
        .insertInto('certificates')
        .values({ environment_id: input.environmentId, ...values })
        .onConflict((oc) => {
          const update = oc.column('environment_id').doUpdateSet(values);
          return replace === 'platform-only' ? update.where('certificates.source', '=', 'platform') : update;
        })
        .returningAll()
        .executeTakeFirst();
      if (!r) return null;
      changes.push(change('environment', { tenant: env.tenant, environment: env.name, environmentId: env.id }));
      return toCertificate(r);
    });
  }

  /** Removes the environment's certificate; false when it had none. */
  async deleteCertificate(environmentId: string): Promise<boolean> {
    const r = await this.#db.deleteFrom('certificates').where('environment_id', '=', environmentId).returning('environment_id').executeTakeFirst();
    if (!r) return false;
    const env = await this.#db.selectFrom('environments').select(['tenant', 'name']).where('id', '=', environmentId).executeTakeFirst();
    this.#emit([change('environment', { tenant: env?.tenant, environment: env?.name, environmentId })]);
    return true;
  }

  // ---- DNS failover records ----

  /** Every failover record, by name. */
  async listDnsRecords(): Promise<DnsRecord[]> {
    const rows = await this.#db.selectFrom('dns_records').selectAll().orderBy('name').execute();
    return rows.map(toDnsRecord);
  }

  /**
   * Creates or replaces the record `input.name` (the caller has validated it); `created`
   * tells which. The creation time of a replaced record is kept.
   */
  async putDnsRecord(input: Omit<DnsRecord, 'createdAt' | 'updatedAt'>): Promise<DnsRecord & { readonly created: boolean }> {
    if (!Number.isInteger(input.ttl) || input.ttl < 0 || input.ttl > 86_400) throw new InputError(`ttl: ${String(input.ttl)} is not a TTL; use 0-86400 seconds`, 'ttl');
    return this.#write(async (trx, changes) => {
      const existed = await trx.selectFrom('dns_records').select('name').where('name', '=', input.name).forUpdate().executeTakeFirst();
      const values = {
        ttl: input.ttl,
        primary_address: input.primary.address,
        primary_check: jsonb(input.primary.check),
        secondary_address: input.secondary.address,
        secondary_check: input.secondary.check === null ? sql`null::jsonb` : jsonb(input.secondary.check),
      };
      const r = await trx
        .insertInto('dns_records')
        .values({ name: input.name, ...values })
        .onConflict((oc) => oc.column('name').doUpdateSet({ ...values, updated_at: sql`now()` }))
        .returningAll()
        .executeTakeFirstOrThrow();
      changes.push(change('dns'));
      return { ...toDnsRecord(r), created: existed === undefined };
    });
  }

  /** Deletes a record; a NotFoundError when there is none of that name. */
  async deleteDnsRecord(name: string): Promise<void> {
    const r = await this.#db.deleteFrom('dns_records').where('name', '=', name).returning('name').executeTakeFirst();
    if (!r) throw new NotFoundError(`dns record "${name}" not found; see lanes dns list`);
    this.#emit([change('dns')]);
  }

  // ---- databases ----

  /** The managed databases (of one environment, or all), by environment and name. */
  async listDatabases(environmentId?: string): Promise<StoredDatabase[]> {
    let q = this.#db.selectFrom('databases').selectAll();
    if (environmentId !== undefined) q = q.where('environment_id', '=', environmentId);
    return (await q.orderBy('environment_id').orderBy('name').execute()).map(toDatabase);
  }

  /** NotFoundError naming the database when the environment has none of that name. */
  async getDatabase(environmentId: string, name: string): Promise<StoredDatabase> {
    const r = await this.#db.selectFrom('databases').selectAll().where('environment_id', '=', environmentId).where('name', '=', name).executeTakeFirst();
    if (!r) {
      const env = await this.#db.selectFrom('environments').select(['tenant', 'name']).where('id', '=', environmentId).executeTakeFirst();
      throw new NotFoundError(`database ${JSON.stringify(name)} not found in ${env ? `${env.tenant}/${env.name}` : 'this environment'}; see lanes db list`);
    }
    return toDatabase(r);
  }

  /**
   * Records a new database with its members' placement; a ConflictError when the
   * environment already has one of that name (nothing is changed then).
   */
  async createDatabase(input: Omit<StoredDatabase, 'phase' | 'createdAt'>): Promise<StoredDatabase> {
    return this.#write(async (trx, changes) => {
      const env = await this.#envRow(trx, input.environmentId, true);
      if (env.phase !== 'active') throw new ConflictError(`environment ${env.tenant}/${env.name} is being deleted`);
      const r = await trx
        .insertInto('databases')
        .values({
          environment_id: input.environmentId,
          name: input.name,
          engine: input.engine,
          source: input.source,
          settings: jsonb(input.settings),
          members: jsonb(input.members),
          restored_from: input.restoredFrom === null ? sql`null::jsonb` : jsonb(input.restoredFrom),
          phase: 'active',
        })
        .onConflict((oc) => oc.doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!r) throw new ConflictError(`database ${JSON.stringify(input.name)} already exists in ${env.tenant}/${env.name}; see lanes db status ${env.tenant}/${env.name} ${input.name}`);
      changes.push(change('database', { tenant: env.tenant, environment: env.name, environmentId: input.environmentId }));
      return toDatabase(r);
    });
  }

  async setDatabasePhase(environmentId: string, name: string, phase: StoredDatabase['phase']): Promise<void> {
    await this.#write(async (trx, changes) => {
      const r = await trx.updateTable('databases').set({ phase }).where('environment_id', '=', environmentId).where('name', '=', name).returning('name').executeTakeFirst();
      if (!r) throw new NotFoundError(`database ${JSON.stringify(name)} not found`);
      changes.push(change('database', { environmentId }));
    });
  }

  /** Removes a database's record (its members are stopped and its data removed first). */
  async deleteDatabase(environmentId: string, name: string): Promise<void> {
    await this.#write(async (trx, changes) => {
      await trx.deleteFrom('databases').where('environment_id', '=', environmentId).where('name', '=', name).execute();
      changes.push(change('database', { environmentId }));
    });
  }

  // ---- zones ----

  /** Records a supervisor's heartbeat; emits a change only when its url, address or pid changed. */
  async upsertZone(input: { name: string; agentUrl: string; address: string; pid: number }): Promise<Zone> {
    return this.#write(async (trx, changes) => {
      const old = await trx.selectFrom('zones').selectAll().where('name', '=', input.name).forUpdate().executeTakeFirst();
      const values = { name: input.name, agent_url: input.agentUrl, address: input.address, pid: input.pid };
      const r = await trx
        .insertInto('zones')
        .values(values)
        .onConflict((oc) => oc.column('name').doUpdateSet({ agent_url: input.agentUrl, address: input.address, pid: input.pid, last_seen_at: sql`now()` }))
        .returningAll()
        .executeTakeFirstOrThrow();
      if (!old || old.agent_url !== input.agentUrl || old.address !== input.address || old.pid !== input.pid) changes.push(change('zone'));
      return toZone(r);
    });
  }

  async listZones(): Promise<Zone[]> {
    const rows = await this.#db.selectFrom('zones').selectAll().orderBy('name').execute();
    return rows.map(toZone);
  }

  // ---- events ----

  async addEvent(input: { tenant?: string; environment?: string; reason: string; object?: string; message: string }): Promise<Event> {
    const r = await this.#db
      .insertInto('events')
      .values({
        tenant: input.tenant ?? null,
        environment: input.environment ?? null,
        reason: input.reason,
        object: input.object ?? null,
        message: input.message,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    this.#emit([change('event', { tenant: r.tenant, environment: r.environment })]);
    return toEvent(r);
  }

  /**
   * Events oldest first. With `afterId`: the first `limit` events after it (follow a
   * stream). Without: the latest `limit` events, still oldest first (a tail).
   */
  async listEvents(opts: ListEventsOptions = {}): Promise<Event[]> {
    const limit = Math.min(Math.max(Math.trunc(opts.limit ?? DEFAULT_EVENT_LIMIT), 1), MAX_EVENT_LIMIT);
    let q = this.#db.selectFrom('events').selectAll();
    if (opts.tenant !== undefined) q = q.where('tenant', '=', opts.tenant);
    if (opts.environment !== undefined) q = q.where('environment', '=', opts.environment);
    if (opts.afterId !== undefined) {
      const rows = await q.where('id', '>', opts.afterId).orderBy('id', 'asc').limit(limit).execute();
      return rows.map(toEvent);
    }
    const rows = await q.orderBy('id', 'desc').limit(limit).execute();
    return rows.reverse().map(toEvent);
  }

  // ---- API tokens (only hashes are stored) ----

  async addToken(input: { name: string; role: TokenRole; hash: string }): Promise<void> {
    if (input.role !== 'admin' && input.role !== 'node') throw new InputError(`role: ${JSON.stringify(input.role)} is not a role; use admin or node`, 'role');
    try {
      await this.#db.insertInto('api_tokens').values({ name: input.name, role: input.role, hash: input.hash }).execute();
    } catch (err) {
      if (pgCode(err) === UNIQUE_VIOLATION) throw new ConflictError(`token "${input.name}" already exists (or its secret is already in use); pick another name`);
      throw err;
    }
  }

  async findTokenByHash(hash: string): Promise<Token | null> {
    const r = await this.#db.selectFrom('api_tokens').select(['name', 'role']).where('hash', '=', hash).executeTakeFirst();
    return r ? { name: r.name, role: r.role } : null;
  }

  async hasToken(role: TokenRole): Promise<boolean> {
    const r = await this.#db.selectFrom('api_tokens').select('name').where('role', '=', role).limit(1).executeTakeFirst();
    return r !== undefined;
  }
}
