/** The store's row types: camelCase fields, timestamps as ISO-8601 strings. */
import type { DnsHealthCheck, Lane, Manifest, ObservedInstance } from '@lanes/spec';
import type { EdgeSettings } from '@lanes/spec';

export type { Lane };
export type Phase = 'active' | 'deleting';
export type ReleaseStatus = 'deploying' | 'active' | 'superseded' | 'failed';
export type Desired = 'running' | 'stopped';
export type TokenRole = 'admin' | 'node';

export interface Tenant {
  readonly name: string;
  readonly createdAt: string;
}

export interface Environment {
  /** Generated text id (`env_` + 16 hex digits); stable across renames and used as the key by releases and instances. */
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly lane: Lane;
  readonly phase: Phase;
  /** Hash of the release the environment should run, or null before the first deploy. */
  readonly currentRelease: string | null;
  readonly createdAt: string;
  /** The environment's private network index (its /24 in the platform CIDR); null without isolation. */
  readonly netIndex: number | null;
  /** Its sandbox number: its instances run as their own uid/gid (a base plus this), never shared. */
  readonly sandboxId: number;
  /** Egress allow-list; null: any destination outside the platform. */
  readonly egress: readonly EgressEntry[] | null;
  /** Access control and edge behaviour (`lanes edge set`); null (or absent): the defaults. */
  readonly edge?: EdgeSettings | null;
}

export interface EgressEntry {
  readonly cidr: string;
  readonly port: number | null;
}

export interface Release {
  readonly environmentId: string;
  readonly hash: string;
  /** 1 + the highest version in the environment when it was created. */
  readonly version: number;
  readonly manifest: Manifest;
  readonly status: ReleaseStatus;
  readonly sizeBytes: number;
  readonly createdAt: string;
}

export interface InstanceRow {
  readonly id: string;
  readonly environmentId: string;
  readonly tenant: string;
  readonly environment: string;
  readonly service: string;
  readonly release: string;
  readonly zone: string;
  readonly desired: Desired;
  /** What the zone supervisor last reported; null until it reports (or after it loses the instance). */
  readonly observed: ObservedInstance | null;
  /** When `observed` last changed. */
  readonly observedAt: string | null;
  readonly createdAt: string;
  /** The instance's address in its environment's private network; null without isolation. */
  readonly address: string | null;
}

/** A platform TCP port: the gateway listens on it for one tcp service of one environment. */
export interface TcpListener {
  readonly environmentId: string;
  readonly service: string;
  readonly port: number;
  readonly createdAt: string;
}

export type CertificateSource = 'platform' | 'custom';

/** An environment's TLS certificate as stored (PEMs; the key is a secret: never logged or shown). */
export interface StoredCertificate {
  readonly environmentId: string;
  /** The leaf first, then any intermediates. */
  readonly certPem: string;
  readonly keyPem: string;
  /** platform: issued by the platform CA, renewed automatically; custom: brought by the user. */
  readonly source: CertificateSource;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly createdAt: string;
}

/** A DNS failover record (`lanes dns set`), as stored. */
export interface DnsRecord {
  /** Fully qualified, lower case, inside the platform domain. */
  readonly name: string;
  /** Seconds. */
  readonly ttl: number;
  readonly primary: { readonly address: string; readonly check: DnsHealthCheck };
  /** A secondary without a check is always counted as healthy. */
  readonly secondary: { readonly address: string; readonly check: DnsHealthCheck | null };
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** One member of a managed database: a keeper with its data, or the arbiter (no data). */
export interface DatabaseMember {
  readonly name: string;
  readonly kind: 'member' | 'arbiter';
  /** Its zone, for its whole life (its data lives there). */
  readonly zone: string;
  /** The instance that runs it (`db-main-a-1f2e3d`). */
  readonly instance: string;
  /** PostgreSQL's port (arbiter: its HTTP port). */
  readonly port: number;
  /** The keeper's HTTP port (/mirrorstatus, /status); the arbiter's is `port`. */
  readonly checkPort: number;
  /** Its address in the environment's private network; null without isolation. */
  readonly address: string | null;
}

export interface StoredDatabase {
  readonly environmentId: string;
  readonly name: string;
  readonly engine: 'postgres';
  readonly source: 'manifest' | 'api' | 'restore';
  readonly settings: { readonly backupIntervalMs: number; readonly backupRetentionMs: number };
  readonly members: readonly DatabaseMember[];
  readonly restoredFrom: { readonly database: string; readonly toTime: string } | null;
  readonly phase: 'active' | 'deleting';
  readonly createdAt: string;
}

export interface Zone {
  readonly name: string;
  readonly agentUrl: string;
  readonly address: string;
  readonly pid: number;
  readonly lastSeenAt: string;
}

export interface Event {
  readonly id: number;
  readonly time: string;
  readonly tenant: string | null;
  readonly environment: string | null;
  /** A short CamelCase reason, e.g. `ReleaseCreated`, `InstanceCrashLooping`. */
  readonly reason: string;
  /** What the event is about, e.g. `instance/web-a-1`. */
  readonly object: string | null;
  readonly message: string;
}

export interface Token {
  readonly name: string;
  readonly role: TokenRole;
}

export type ChangeKind = 'tenant' | 'environment' | 'release' | 'service' | 'instance' | 'zone' | 'event' | 'dns' | 'database';

/** One committed write, as told to onChange listeners. */
export interface Change {
  readonly kind: ChangeKind;
  readonly tenant?: string;
  readonly environment?: string;
  readonly environmentId?: string;
}

/** Stop/restart state of the whole environment (`environment`) and of single services. */
export interface RunStates {
  readonly environment: RunState;
  readonly services: Readonly<Record<string, RunState>>;
}

export interface RunState {
  readonly stopped: boolean;
  /** Instances created before this are replaced (a rolling restart); null: never restarted. */
  readonly restartedAt: string | null;
}
