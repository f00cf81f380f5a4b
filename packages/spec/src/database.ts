/**
 * Managed databases of an environment: declared in the manifest (`databases: { main: {
 * engine: postgres } }`) or created with `lanes db create`. One parser for both, so the
 * same input gets the same answer (and the same one-line error naming the field).
 */
import { parseDurationMs } from './duration.js';
import { InputError } from './errors.js';

/** The `release` of instances that run the platform's own programs (database keepers, arbiters), not a package. */
export const PLATFORM_RELEASE = 'platform';

export const DATABASE_ENGINES = ['postgres'] as const;
export type DatabaseEngine = (typeof DATABASE_ENGINES)[number];

/** Database names are names (a-z, 0-9, '-') short enough that `db-NAME` still is one. */
const DATABASE_NAME_RE = /^[a-z]([a-z0-9-]{0,25}[a-z0-9])?$/;

export const DEFAULT_BACKUP_INTERVAL_MS = 24 * 3_600_000;
export const DEFAULT_BACKUP_RETENTION_MS = 10 * 86_400_000;
const MIN_BACKUP_INTERVAL_MS = 60_000;
const MAX_BACKUP_RETENTION_MS = 3650 * 86_400_000;

export interface DatabaseSpec {
  readonly name: string;
  readonly engine: DatabaseEngine;
  /** How often a base backup is taken (WAL is archived continuously). @default 24h */
  readonly backupIntervalMs: number;
  /** How long backups (and the WAL to replay them) are kept: the point-in-time window. @default 10d */
  readonly backupRetentionMs: number;
}

/** The instance-level service name of a database's members (`db-main`): never a manifest service's name. */
export function databaseService(name: string): string {
  return `db-${name}`;
}

/** The variable naming one database's URL for the environment's services: `DATABASE_URL_MAIN`. */
export function databaseVariable(name: string): string {
  return `DATABASE_URL_${name.toUpperCase().replaceAll('-', '_')}`;
}

export function checkDatabaseName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !DATABASE_NAME_RE.test(value)) {
    throw new InputError(`${field}: ${JSON.stringify(value)} is not a valid database name; use 1-27 characters a-z, 0-9 and '-', starting with a letter and not ending with '-'`, field);
  }
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function durationField(field: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' && typeof value !== 'number') throw new InputError(`${field}: expected a duration like 24h or 10d, got ${value === null ? 'null' : typeof value}`, field);
  const ms = parseDurationMs(value, field);
  if (ms < min || ms > max) throw new InputError(`${field}: ${JSON.stringify(value)} must be between ${min / 1000}s and ${max / 86_400_000}d`, field);
  return ms;
}

/**
 * `{ engine: postgres, backup: { interval: 24h, retention: 10d } }`. `base` prefixes the
 * fields named in errors (`databases.main.` in a manifest, empty in the API), `nameField`
 * is the field the name came from and `prefix` starts every message (`lanes.yaml: `).
 */
export function parseDatabaseSpec(opts: { base: string; nameField: string; prefix?: string }, name: unknown, value: unknown): DatabaseSpec {
  const { base, prefix = '' } = opts;
  const fail = (field: string, why: string): never => {
    throw new InputError(`${prefix}${field}: ${why}`, field);
  };
  if (typeof name !== 'string' || !DATABASE_NAME_RE.test(name)) {
    fail(opts.nameField, `${JSON.stringify(name)} is not a valid database name; use 1-27 characters a-z, 0-9 and '-', starting with a letter and not ending with '-'`);
  }
  const v = value ?? {};
  if (!isObject(v)) return fail(base.replace(/\.$/, '') || 'database', 'expected a mapping like { engine: postgres }');
  for (const k of Object.keys(v)) {
    if (!['engine', 'backup'].includes(k)) fail(`${base}${k}`, `unknown key ${JSON.stringify(k)}; a database has engine and backup`);
  }
  const engine = v['engine'] ?? 'postgres';
  if (typeof engine !== 'string' || !(DATABASE_ENGINES as readonly string[]).includes(engine)) {
    fail(`${base}engine`, `${JSON.stringify(engine)} is not a known engine; use ${DATABASE_ENGINES.join(', ')}`);
  }
  const backup = v['backup'] ?? {};
  if (!isObject(backup)) return fail(`${base}backup`, 'expected a mapping like { interval: 24h, retention: 10d }');
  for (const k of Object.keys(backup)) if (k !== 'interval' && k !== 'retention') fail(`${base}backup.${k}`, `unknown key ${JSON.stringify(k)}; use interval and retention`);
  const field = (f: string, v2: unknown, fallback: number, min: number): number => {
    try {
      return durationField(f, v2, fallback, min, MAX_BACKUP_RETENTION_MS);
    } catch (err) {
      return fail(f, err instanceof Error ? err.message.slice(f.length + 2) : String(err));
    }
  };
  const backupIntervalMs = field(`${base}backup.interval`, backup['interval'], DEFAULT_BACKUP_INTERVAL_MS, MIN_BACKUP_INTERVAL_MS);
  const backupRetentionMs = field(`${base}backup.retention`, backup['retention'], DEFAULT_BACKUP_RETENTION_MS, 3_600_000);
  if (backupRetentionMs < backupIntervalMs) fail(`${base}backup.retention`, `must be at least the backup interval (${formatDuration(backupIntervalMs)}), or nothing could be restored between backups`);
  return { name: name as string, engine: engine as DatabaseEngine, backupIntervalMs, backupRetentionMs };
}

/** A duration as the CLI and the keeper's flags write it: `10d`, `24h`, `90m`, `30s`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
