/**
 * The keeper's and the arbiter's configuration: one zod schema each, parsed once at start
 * from flags and the environment (`LANES_PG_<FLAG>`; a zone supervisor's PORT, CHECK_PORT,
 * HOST and LANES_ZONE too), defaults in the schema, frozen, then passed down. Errors are one line
 * naming the flag, the value and what is allowed.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { InputError, parseDurationMs } from '@lanes/spec';
import { LOG_LEVELS, type LogLevel } from './logging.js';
import { checkCidr } from './pgconf.js';

export const MEMBER_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export interface PeerConfig {
  readonly name: string;
  /** Base URL of its keeper or arbiter (`http://10.88.2.5:7400`). */
  readonly url: string;
  /** Its PostgreSQL (members only; null for the arbiter). */
  readonly postgres: { readonly host: string; readonly port: number } | null;
}

/** `b=http://10.88.2.5:7400,10.88.2.5:5432` (a member) or `arbiter=http://10.88.3.5:7400`. */
export function parsePeer(text: string, field = 'peer'): PeerConfig {
  const m = /^([^=]+)=([^,]+)(?:,(.+))?$/.exec(text);
  const fail = (why: string): never => {
    throw new InputError(`--${field}: ${JSON.stringify(text)} ${why}; use NAME=URL[,PGHOST:PGPORT], e.g. b=http://10.88.2.5:7400,10.88.2.5:5432`, field);
  };
  if (!m) return fail('is not a peer');
  const name = m[1] ?? '';
  if (!MEMBER_NAME.test(name)) fail(`has a bad name ${JSON.stringify(name)} (lower-case letters, digits and '-')`);
  let url: URL;
  try {
    url = new URL(m[2] ?? '');
  } catch {
    return fail('has no valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('has a URL that is not http(s)');
  let postgres: PeerConfig['postgres'] = null;
  if (m[3] !== undefined) {
    const hp = /^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(m[3]);
    const port = Number(hp?.[3]);
    if (!hp || port < 1 || port > 65_535) return fail(`has a bad PostgreSQL address ${JSON.stringify(m[3])}`);
    postgres = { host: hp[1] ?? hp[2] ?? '', port };
  }
  return { name, url: url.href.replace(/\/+$/, ''), postgres };
}

const durationMs = (field: string, min: number, max: number) =>
  z.string().transform((v, ctx) => {
    let ms: number;
    try {
      ms = /^\d+$/.test(v) ? Number(v) : parseDurationMs(v, field);
    } catch {
      ms = Number.NaN;
    }
    if (!Number.isFinite(ms) || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration from ${min} ms to ${max} ms (e.g. 2s, 500ms, 24h)` });
      return z.NEVER;
    }
    return ms;
  });

const port = z.coerce.number().int().min(0).max(65_535);
const listenAddress = z.string().refine((v) => isIP(v) !== 0, 'is not an IP address to listen on, e.g. 127.0.0.1 or ::');

const keeperSchema = z.object({
  /** This member's name (unique in its cluster; its application_name on the primary). */
  name: z.string().regex(MEMBER_NAME, 'must be lower-case letters, digits and -'),
  /** The zone it runs in (shown in /status). @default 'default' */
  zone: z.string().min(1).max(63).default('default'),
  /** The keeper's directory: state file, sockets, logs; and the data directory by default. */
  stateDir: z.string().min(1),
  /** PGDATA. @default STATE_DIR/pgdata */
  dataDir: z.string().min(1).optional(),
  /** The cluster's passwords (superuser-password, replication-password, app-password; 0600). @default STATE_DIR/secrets */
  secretsDir: z.string().min(1).optional(),
  /** A file holding the bearer token of the cluster's keepers and arbiter (and of the control plane). */
  tokenFile: z.string().min(1),
  /** HTTP listen address. @default '127.0.0.1' */
  host: listenAddress.default('127.0.0.1'),
  /** HTTP port (/mirrorstatus, /status, the lease RPC). @default 7400 */
  port: port.default(7400),
  /** PostgreSQL's listen address. @default '127.0.0.1' */
  pgListen: listenAddress.default('127.0.0.1'),
  /** @default 5432 */
  pgPort: port.refine((p) => p > 0, 'must not be 0').default(5432),
  /** The other parties: members (with their PostgreSQL address) and the arbiter. */
  peers: z.array(z.string()).default([]),
  /** The member that creates the cluster. @default the first member name in order */
  initialPrimary: z.string().regex(MEMBER_NAME).optional(),
  /** Networks allowed to connect (pg_hba.conf). @default ['127.0.0.1/32', '::1/128'] */
  allow: z.array(z.string()).default(['127.0.0.1/32', '::1/128']),
  /** The user PostgreSQL's programs run as (a name or UID:GID). @default 'postgres' as root, else the keeper's own */
  runAs: z.string().optional(),
  /** @default the newest /usr/lib/postgresql/<version>/bin */
  pgBin: z.string().min(1).optional(),
  /** @default 2000 */
  leaseMs: durationMs('lease', 300, 600_000).default(2000),
  /**
   * How much earlier than the peers' promises the holder's lease ends: room for clock-rate
   * drift and for fencing itself (a busy event loop). It costs no failover time: the
   * standby's detection runs on its own promise. @default 300
   */
  leaseMarginMs: durationMs('lease-margin', 10, 60_000).default(300),
  /** How long a missing synchronous standby may hold up commits before the primary goes on without it. @default 2000 */
  syncGraceMs: durationMs('sync-grace', 0, 600_000).default(2000),
  /** How long the holder may try to bring PostgreSQL up as primary before it lets its lease run out. @default 5000 */
  startGraceMs: durationMs('start-grace', 500, 3_600_000).default(5000),
  /** @default 100 */
  tickMs: durationMs('tick', 10, 10_000).default(100),
  /** The application database and its owner, created with the cluster. @default 'app' */
  database: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be lower-case letters, digits and _').default('app'),
  /** @default 'app' */
  appUser: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be lower-case letters, digits and _').default('app'),
  /** @default 100 */
  maxConnections: z.coerce.number().int().min(10).max(10_000).default(100),
  /** @default '128MB' */
  sharedBuffers: z.string().regex(/^\d{1,7}(kB|MB|GB)$/, 'must be a size like 128MB').default('128MB'),
  /** @default '512MB' */
  walKeepSize: z.string().regex(/^\d{1,7}(kB|MB|GB)$/, 'must be a size like 512MB').default('512MB'),
  /** fsync off: only for tests and benchmarks that say so. @default false */
  unsafeNoFsync: z.boolean().default(false),
  /** Backups and WAL archive in this directory store; absent: no archiving. */
  backupDir: z.string().min(1).optional(),
  /** @default 24h */
  backupIntervalMs: durationMs('backup-interval', 1000, 365 * 86_400_000).default(86_400_000),
  /** @default 10 days */
  backupRetentionMs: z
    .string()
    .transform((v, ctx) => {
      const days = /^(\d{1,4})d$/.exec(v);
      const ms = days ? Number(days[1]) * 86_400_000 : /^\d+$/.test(v) ? Number(v) : (() => {
        try {
          return parseDurationMs(v, 'backup-retention');
        } catch {
          return Number.NaN;
        }
      })();
      if (!Number.isFinite(ms) || ms < 1000) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a retention; use e.g. 10d, 36h` });
        return z.NEVER;
      }
      return ms;
    })
    .default(10 * 86_400_000),
  /** Restore every new backup into a scratch directory and query it. @default true */
  verifyBackups: z.boolean().default(true),
  /** @default 'info' */
  logLevel: z.enum(LOG_LEVELS as [LogLevel, ...LogLevel[]]).default('info'),
});

export type KeeperConfig = Readonly<Omit<z.infer<typeof keeperSchema>, 'peers' | 'dataDir' | 'secretsDir' | 'stateDir' | 'tokenFile' | 'backupDir' | 'allow'>> & {
  readonly allow: readonly string[];
  readonly stateDir: string;
  readonly dataDir: string;
  readonly secretsDir: string;
  readonly tokenFile: string;
  readonly backupDir: string | null;
  readonly peers: readonly PeerConfig[];
  /** Every member's name, self included, in order. */
  readonly members: readonly string[];
  readonly initialPrimary: string;
};

const KEEPER_FLAGS = {
  name: 'string',
  zone: 'string',
  'state-dir': 'string',
  'data-dir': 'string',
  'secrets-dir': 'string',
  'token-file': 'string',
  host: 'string',
  port: 'string',
  'pg-listen': 'string',
  'pg-port': 'string',
  peer: 'multiple',
  'initial-primary': 'string',
  allow: 'multiple',
  'run-as': 'string',
  'pg-bin': 'string',
  lease: 'string',
  'lease-margin': 'string',
  'sync-grace': 'string',
  'start-grace': 'string',
  tick: 'string',
  database: 'string',
  'app-user': 'string',
  'max-connections': 'string',
  'shared-buffers': 'string',
  'wal-keep-size': 'string',
  'unsafe-no-fsync': 'boolean',
  'backup-dir': 'string',
  'backup-interval': 'string',
  'backup-retention': 'string',
  'verify-backups': 'string',
  'log-level': 'string',
} as const;

type FlagKind = 'string' | 'multiple' | 'boolean';

/** Reads flags, then `LANES_PG_<FLAG>` (multiple values separated by spaces), then `fallbacks`. */
function readFlags(argv: readonly string[], env: NodeJS.ProcessEnv, flags: Readonly<Record<string, FlagKind>>, fallbacks: Readonly<Record<string, string>>): Map<string, string | string[] | boolean> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const [flag, kind] of Object.entries(flags)) options[flag] = kind === 'multiple' ? { type: 'string', multiple: true } : { type: kind === 'boolean' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], strict: true, allowPositionals: false, options }));
  } catch (err) {
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
    throw new InputError(`flags: ${message}`, 'flags');
  }
  const out = new Map<string, string | string[] | boolean>();
  for (const [flag, kind] of Object.entries(flags)) {
    const v = values[flag];
    const envName = `LANES_PG_${flag.toUpperCase().replace(/-/g, '_')}`;
    const fromEnv = env[envName] !== undefined && env[envName] !== '' ? env[envName] : undefined;
    const fallback = fallbacks[flag] !== undefined && env[fallbacks[flag]] ? env[fallbacks[flag]] : undefined;
    if (kind === 'multiple') {
      const list = Array.isArray(v) ? v.map(String) : fromEnv !== undefined ? fromEnv.split(/\s+/).filter(Boolean) : undefined;
      if (list !== undefined) out.set(flag, list);
    } else if (kind === 'boolean') {
      if (v === true) out.set(flag, true);
      else if (fromEnv !== undefined) out.set(flag, fromEnv === '1' || fromEnv === 'true');
    } else {
      const s = typeof v === 'string' ? v : (fromEnv ?? fallback);
      if (s !== undefined) out.set(flag, s);
    }
  }
  return out;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** The schema's first issue as one InputError naming the flag. */
function schemaError(issue: z.core.$ZodIssue | undefined, rename: Readonly<Record<string, string>>): InputError {
  const key = String(issue?.path[0] ?? 'flags');
  const flag = rename[key] ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const message = issue?.code === 'invalid_type' && issue.input === undefined ? 'missing' : (issue?.message ?? 'invalid');
  return new InputError(`--${flag}: ${message}`, flag);
}

const KEEPER_RENAME: Readonly<Record<string, string>> = {
  peers: 'peer',
  leaseMs: 'lease',
  leaseMarginMs: 'lease-margin',
  syncGraceMs: 'sync-grace',
  startGraceMs: 'start-grace',
  tickMs: 'tick',
  backupIntervalMs: 'backup-interval',
  backupRetentionMs: 'backup-retention',
};

/** Parses the keeper's flags and environment. Throws an InputError with one line. */
export function parseKeeperConfig(argv: readonly string[], env: NodeJS.ProcessEnv): KeeperConfig {
  // A zone supervisor gives an instance PORT (PostgreSQL's, the TCP service) and CHECK_PORT
  // (the primary check: this keeper's HTTP port), and HOST, its own address.
  const flags = readFlags(argv, env, KEEPER_FLAGS, { 'pg-port': 'PORT', port: 'CHECK_PORT', host: 'HOST', 'pg-listen': 'HOST', zone: 'LANES_ZONE' });
  const raw: Record<string, unknown> = {};
  for (const [flag, value] of flags) {
    const key = flag === 'peer' ? 'peers' : flag === 'lease' ? 'leaseMs' : flag === 'lease-margin' ? 'leaseMarginMs' : flag === 'sync-grace' ? 'syncGraceMs' : flag === 'start-grace' ? 'startGraceMs' : flag === 'tick' ? 'tickMs' : flag === 'backup-interval' ? 'backupIntervalMs' : flag === 'backup-retention' ? 'backupRetentionMs' : camel(flag);
    raw[key] = flag === 'verify-backups' ? value === 'true' || value === '1' || value === 'on' : value;
  }
  const parsed = keeperSchema.safeParse(raw);
  if (!parsed.success) throw schemaError(parsed.error.issues[0], KEEPER_RENAME);
  const c = parsed.data;
  const peers = c.peers.map((p) => parsePeer(p));
  const names = new Set<string>([c.name]);
  for (const p of peers) {
    if (names.has(p.name)) throw new InputError(`--peer: the name ${JSON.stringify(p.name)} is used twice (this member is ${JSON.stringify(c.name)})`, 'peer');
    names.add(p.name);
  }
  const members = [c.name, ...peers.filter((p) => p.postgres !== null).map((p) => p.name)].sort();
  const initialPrimary = c.initialPrimary ?? members[0] ?? c.name;
  if (!members.includes(initialPrimary)) throw new InputError(`--initial-primary: ${JSON.stringify(initialPrimary)} is not a member (members: ${members.join(', ')})`, 'initial-primary');
  for (const cidr of c.allow) {
    try {
      checkCidr(cidr, 'allow');
    } catch (err) {
      throw new InputError(`--${err instanceof Error ? err.message : String(err)}`, 'allow');
    }
  }
  const stateDir = path.resolve(c.stateDir);
  return Object.freeze({
    ...c,
    stateDir,
    dataDir: path.resolve(c.dataDir ?? path.join(stateDir, 'pgdata')),
    secretsDir: path.resolve(c.secretsDir ?? path.join(stateDir, 'secrets')),
    tokenFile: path.resolve(c.tokenFile),
    backupDir: c.backupDir === undefined ? null : path.resolve(c.backupDir),
    peers: Object.freeze(peers),
    members: Object.freeze(members),
    initialPrimary,
    allow: Object.freeze([...c.allow]),
  });
}

const arbiterSchema = z.object({
  /** The arbiter's name among the parties. @default 'arbiter' */
  name: z.string().regex(MEMBER_NAME, 'must be lower-case letters, digits and -').default('arbiter'),
  /** @default 'default' */
  zone: z.string().min(1).max(63).default('default'),
  stateDir: z.string().min(1),
  tokenFile: z.string().min(1),
  /** @default '127.0.0.1' */
  host: listenAddress.default('127.0.0.1'),
  /** @default 7400 */
  port: port.default(7400),
  /** The longest lease the members ask for: after a restart the arbiter assumes it promised that long. @default 2000 */
  leaseMs: durationMs('lease', 300, 600_000).default(2000),
  /** @default 'info' */
  logLevel: z.enum(LOG_LEVELS as [LogLevel, ...LogLevel[]]).default('info'),
});

export type ArbiterConfig = Readonly<z.infer<typeof arbiterSchema>>;

const ARBITER_FLAGS = { name: 'string', zone: 'string', 'state-dir': 'string', 'token-file': 'string', host: 'string', port: 'string', lease: 'string', 'log-level': 'string' } as const;

export function parseArbiterConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ArbiterConfig {
  const flags = readFlags(argv, env, ARBITER_FLAGS, { port: 'PORT', host: 'HOST', zone: 'LANES_ZONE' });
  const raw: Record<string, unknown> = {};
  for (const [flag, value] of flags) raw[flag === 'lease' ? 'leaseMs' : camel(flag)] = value;
  const parsed = arbiterSchema.safeParse(raw);
  if (!parsed.success) throw schemaError(parsed.error.issues[0], { leaseMs: 'lease' });
  return Object.freeze({ ...parsed.data, stateDir: path.resolve(parsed.data.stateDir), tokenFile: path.resolve(parsed.data.tokenFile) });
}
