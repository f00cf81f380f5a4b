/**
 * Versioned schema migrations, in code. Names sort in order ('0001_init', '0002_…'); a
 * migration once released is never edited — add a new one. Each statement runs on its
 * own because PGlite's extended protocol takes one statement per query.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

async function run(db: Kysely<unknown>, statements: readonly string[]): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

const init: Migration = {
  async up(db) {
    await run(db, [
      `create table tenants (
        name text primary key,
        created_at timestamptz not null default now()
      )`,
      `create table environments (
        id text primary key,
        tenant text not null references tenants (name) on delete restrict,
        name text not null,
        lane text not null check (lane in ('single', 'double')),
        phase text not null default 'active' check (phase in ('active', 'deleting')),
        current_release text,
        created_at timestamptz not null default now(),
        unique (tenant, name)
      )`,
      `create table releases (
        environment_id text not null references environments (id) on delete cascade,
        hash text not null,
        version integer not null check (version > 0),
        manifest jsonb not null,
        status text not null default 'deploying' check (status in ('deploying', 'active', 'superseded', 'failed')),
        size_bytes bigint not null check (size_bytes >= 0),
        created_at timestamptz not null default now(),
        primary key (environment_id, hash),
        unique (environment_id, version)
      )`,
      `create table services (
        environment_id text not null references environments (id) on delete cascade,
        service text not null,
        instances integer not null check (instances >= 0),
        updated_at timestamptz not null default now(),
        primary key (environment_id, service)
      )`,
      // Zones are not a foreign key: a zone's supervisor may report after instances were placed on it.
      `create table instances (
        id text primary key,
        environment_id text not null references environments (id) on delete cascade,
        service text not null,
        release text not null,
        zone text not null,
        desired text not null default 'running' check (desired in ('running', 'stopped')),
        observed jsonb,
        observed_at timestamptz,
        created_at timestamptz not null default now(),
        foreign key (environment_id, release) references releases (environment_id, hash) on delete cascade
      )`,
      `create index instances_environment_idx on instances (environment_id, service)`,
      `create index instances_zone_idx on instances (zone)`,
      `create table zones (
        name text primary key,
        agent_url text not null,
        address text not null,
        pid integer not null,
        last_seen_at timestamptz not null default now()
      )`,
      // Events name their tenant and environment as text, not foreign keys: the history outlives the objects.
      `create table events (
        id bigint generated always as identity primary key,
        time timestamptz not null default now(),
        tenant text,
        environment text,
        reason text not null,
        object text,
        message text not null
      )`,
      `create index events_scope_idx on events (tenant, environment, id)`,
      `create table api_tokens (
        name text primary key,
        role text not null check (role in ('admin', 'node')),
        hash text not null unique,
        created_at timestamptz not null default now()
      )`,
      `create index api_tokens_role_idx on api_tokens (role)`,
    ]);
  },
};

/** Private networks: an environment's network index and egress allow-list, an instance's address. */
const networks: Migration = {
  async up(db) {
    await run(db, [
      `alter table environments add column net_index integer unique check (net_index > 0)`,
      `alter table environments add column egress jsonb`,
      `alter table instances add column address text`,
      `create unique index instances_address_idx on instances (environment_id, address) where address is not null`,
    ]);
  },
};

/** Stop/start/restart per environment (service '*') or per service. */
const serviceStates: Migration = {
  async up(db) {
    await run(db, [
      `create table service_states (
        environment_id text not null references environments (id) on delete cascade,
        service text not null,
        stopped boolean not null default false,
        restarted_at timestamptz,
        primary key (environment_id, service)
      )`,
    ]);
  },
};

/**
 * Platform TCP ports: one per tcp service of an environment, kept across releases and
 * restarts (clients are configured with it), freed with the service or the environment.
 */
const tcpListeners: Migration = {
  async up(db) {
    await run(db, [
      `create table tcp_listeners (
        environment_id text not null references environments (id) on delete cascade,
        service text not null,
        port integer not null unique check (port between 1 and 65535),
        created_at timestamptz not null default now(),
        primary key (environment_id, service)
      )`,
    ]);
  },
};

/**
 * One TLS certificate per environment, served by the gateway for its host: issued by the
 * platform CA (renewed automatically) or brought by the user (`lanes cert set`). The key
 * is stored as it is served; the admin database is already the platform's secret store.
 */
const certificates: Migration = {
  async up(db) {
    await run(db, [
      `create table certificates (
        environment_id text primary key references environments (id) on delete cascade,
        cert_pem text not null,
        key_pem text not null,
        source text not null check (source in ('platform', 'custom')),
        not_before timestamptz not null,
        not_after timestamptz not null,
        created_at timestamptz not null default now()
      )`,
    ]);
  },
};

/**
 * DNS failover records (`lanes dns set`): a name inside the platform domain answered with
 * its primary address while the primary's health check passes, else with its secondary.
 * The checks are JSON (url, intervalMs, timeoutMs, thresholds) because the DNS server reads
 * them as one value; the secondary's check may be null (always healthy).
 */
const dnsRecords: Migration = {
  async up(db) {
    await run(db, [
      `create table dns_records (
        name text primary key,
        ttl integer not null check (ttl between 0 and 86400),
        primary_address text not null,
        primary_check jsonb not null,
        secondary_address text not null,
        secondary_check jsonb,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      )`,
    ]);
  },
};

/** Access control and edge behaviour per environment (`lanes edge set`); null: the defaults. */
const edge: Migration = {
  async up(db) {
    await run(db, [`alter table environments add column edge jsonb`]);
  },
};

/**
 * Managed databases per environment (`databases:` in a manifest, `lanes db create`): the
 * engine, backup settings and the members' fixed placement (zone, ports, address, the
 * instance that runs each), kept for the database's life because a member's data lives
 * in its zone. Their passwords are files under LANES_HOME, not rows here. A member runs as an
 * instance of the platform's own programs (release 'platform', not a package): instances no
 * longer reference a release row (createInstance checks the release instead).
 */
const databases: Migration = {
  async up(db) {
    await run(db, [
      `alter table instances drop constraint instances_environment_id_release_fkey`,
      `create table databases (
        environment_id text not null references environments (id) on delete cascade,
        name text not null,
        engine text not null check (engine in ('postgres')),
        source text not null check (source in ('manifest', 'api', 'restore')),
        settings jsonb not null,
        members jsonb not null,
        restored_from jsonb,
        phase text not null default 'active' check (phase in ('active', 'deleting')),
        created_at timestamptz not null default now(),
        primary key (environment_id, name)
      )`,
    ]);
  },
};

/**
 * Each environment's sandbox number: its instances run as uid/gid base + number, so no two
 * environments share a user. From a sequence, so concurrent creates never collide; rows that
 * exist get theirs when the column is added.
 */
const sandboxIds: Migration = {
  async up(db) {
    await run(db, [`create sequence environment_sandbox_ids start 1`, `alter table environments add column sandbox_id integer not null unique default nextval('environment_sandbox_ids')`]);
  },
};

const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_init': init,
  '0002_networks': networks,
  '0003_service_states': serviceStates,
  '0004_certificates': certificates,
  '0005_tcp_listeners': tcpListeners,
  '0006_edge': edge,
  '0007_dns_records': dnsRecords,
  '0008_databases': databases,
  '0009_sandbox_ids': sandboxIds,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...MIGRATIONS }),
};

/** Names of all migrations this build knows, in order. */
export const migrationNames: readonly string[] = Object.keys(MIGRATIONS).sort();
