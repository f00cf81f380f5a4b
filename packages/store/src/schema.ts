/**
 * The admin database's tables as Kysely sees them (snake_case, as stored). Closed-set text
 * columns carry their union type: CHECK constraints in the migrations guarantee it. Rows are mapped
 * to the camelCase domain types in store.ts; nothing outside this package sees these.
 */
import type { ColumnType, Generated } from 'kysely';
import type { CertificateSource, Desired, Lane, Phase, ReleaseStatus, TokenRole } from './types.js';

/** timestamptz: drivers hand back a Date; written by the database's now(). */
type Timestamp = ColumnType<Date | string, Date | string | undefined, Date | string>;
/** int8: node-postgres returns a string, PGlite a number or bigint. */
type Int8 = ColumnType<string | number | bigint, number | bigint, number | bigint>;
/** jsonb: written as text cast to jsonb (see jsonb() in store.ts), read back parsed. */
type Jsonb = ColumnType<unknown, unknown, unknown>;

export interface TenantsTable {
  name: string;
  created_at: Timestamp;
}

export interface EnvironmentsTable {
  id: string;
  tenant: string;
  name: string;
  lane: Lane;
  phase: Phase;
  current_release: string | null;
  created_at: Timestamp;
  net_index: number | null;
  egress: Jsonb | null;
  edge: Jsonb | null;
  sandbox_id: Generated<number>;
}

export interface ReleasesTable {
  environment_id: string;
  hash: string;
  version: number;
  manifest: Jsonb;
  status: ReleaseStatus;
  size_bytes: Int8;
  created_at: Timestamp;
}

export interface ServicesTable {
  environment_id: string;
  service: string;
  instances: number;
  updated_at: Timestamp;
}

export interface ServiceStatesTable {
  environment_id: string;
  service: string;
  stopped: boolean;
  restarted_at: Timestamp | null;
}

export interface InstancesTable {
  id: string;
  environment_id: string;
  service: string;
  release: string;
  zone: string;
  desired: Desired;
  observed: Jsonb | null;
  observed_at: Timestamp | null;
  created_at: Timestamp;
  address: string | null;
}

export interface TcpListenersTable {
  environment_id: string;
  service: string;
  port: number;
  created_at: Timestamp;
}

export interface CertificatesTable {
  environment_id: string;
  cert_pem: string;
  key_pem: string;
  source: CertificateSource;
  not_before: Timestamp;
  not_after: Timestamp;
  created_at: Timestamp;
}

export interface DnsRecordsTable {
  name: string;
  ttl: number;
  primary_address: string;
  primary_check: Jsonb;
  secondary_address: string;
  secondary_check: Jsonb | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface DatabasesTable {
  environment_id: string;
  name: string;
  engine: string;
  source: string;
  settings: Jsonb;
  members: Jsonb;
  restored_from: Jsonb | null;
  phase: string;
  created_at: Timestamp;
}

export interface ZonesTable {
  name: string;
  agent_url: string;
  address: string;
  pid: number;
  last_seen_at: Timestamp;
}

export interface EventsTable {
  /** generated always as identity: never written. */
  id: ColumnType<string | number | bigint, never, never>;
  time: Timestamp;
  tenant: string | null;
  environment: string | null;
  reason: string;
  object: string | null;
  message: string;
}

export interface ApiTokensTable {
  name: string;
  role: TokenRole;
  hash: string;
  created_at: Timestamp;
}

export interface Database {
  tenants: TenantsTable;
  environments: EnvironmentsTable;
  releases: ReleasesTable;
  services: ServicesTable;
  service_states: ServiceStatesTable;
  instances: InstancesTable;
  tcp_listeners: TcpListenersTable;
  certificates: CertificatesTable;
  dns_records: DnsRecordsTable;
  databases: DatabasesTable;
  zones: ZonesTable;
  events: EventsTable;
  api_tokens: ApiTokensTable;
}
