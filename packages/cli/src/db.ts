/**
 * `lanes db list|create|status|switchover|backup|backups|restore|delete`: an environment's
 * managed databases (docs/api.md, "Databases"): a PostgreSQL primary, a standby in another
 * zone and an arbiter (lane double), continuous WAL archiving, base backups and
 * point-in-time restore into a new database. Flags are checked here and named in errors
 * before the control plane, which knows the engines and the limits, is asked.
 */
import { checkDatabaseName, parseDurationMs, parseEnvRef } from '@lanes/spec';
import { connect } from './api.js';
import { expectPositionals, parseCommandArgs } from './args.js';
import type { CommandContext } from './commands.js';
import { CliError, UsageError } from './errors.js';
import { table } from './format.js';
import { printUsage, usageOf } from './help.js';
import { envPath } from './rollout.js';

/**
 * A switchover waits for the standby to replay everything before it is promoted: up to
 * ~60 s, and the control plane gives its keeper 90 s; the answer must not be given up first.
 */
const SWITCHOVER_TIMEOUT_MS = 120_000;
/** A base backup is written before the answer (the control plane gives its keeper 10 min). */
const BACKUP_TIMEOUT_MS = 15 * 60_000;
/** A restore copies a base backup and replays the WAL up to the time before the answer. */
const RESTORE_TIMEOUT_MS = 30 * 60_000;

export interface BackupInfo {
  readonly id: string;
  readonly member: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly timeline: number;
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly sizeBytes: number;
  readonly files: readonly string[];
  readonly verified: { readonly at: string; readonly ok: boolean; readonly message: string } | null;
}

export interface DatabaseMember {
  readonly name: string;
  readonly role: string;
  readonly zone: string;
  readonly instance: string;
  readonly pid: number | null;
  readonly state: string;
  readonly healthy: boolean;
  readonly lagBytes: number | null;
  readonly replayDelaySeconds: number | null;
  readonly checkUrl: string | null;
  readonly message: string;
}

export interface DatabaseStatus {
  readonly name: string;
  readonly engine: string;
  readonly tenant: string;
  readonly environment: string;
  readonly lane: string;
  readonly source: string;
  readonly restoredFrom: { readonly database: string; readonly toTime: string } | null;
  readonly url: string;
  readonly variables: readonly string[];
  readonly tcp: { readonly address: string; readonly port: number } | null;
  readonly primary: string | null;
  readonly members: readonly DatabaseMember[];
  readonly backup: { readonly interval: string; readonly retention: string; readonly last: BackupInfo | null };
  readonly failovers: readonly { readonly at: string; readonly term: number; readonly primary: string; readonly reason: string }[];
}

export interface BackupList {
  readonly backups: readonly BackupInfo[];
  readonly retention: string;
  readonly oldestRestorableTime: string | null;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const str = (o: Obj, k: string): string => (typeof o[k] === 'string' ? o[k] : '');
const optStr = (o: Obj, k: string): string | null => (typeof o[k] === 'string' ? o[k] : null);
const optNum = (o: Obj, k: string): number | null => (typeof o[k] === 'number' && Number.isFinite(o[k]) ? o[k] : null);
const arr = (o: Obj, k: string): unknown[] => (Array.isArray(o[k]) ? o[k] : []);

/** A BackupInfo from the API; only the id is required, the rest defaults. */
export function decodeBackup(v: unknown, where = 'backup'): BackupInfo {
  if (!isObj(v) || typeof v['id'] !== 'string') throw new CliError(`the control plane sent a malformed ${where}`);
  const verified = isObj(v['verified']) ? v['verified'] : null;
  return {
    id: v['id'],
    member: str(v, 'member'),
    startedAt: str(v, 'startedAt'),
    finishedAt: str(v, 'finishedAt'),
    timeline: optNum(v, 'timeline') ?? 0,
    startLsn: str(v, 'startLsn'),
    stopLsn: str(v, 'stopLsn'),
    sizeBytes: optNum(v, 'sizeBytes') ?? 0,
    files: arr(v, 'files').filter((f): f is string => typeof f === 'string'),
    verified: verified === null ? null : { at: str(verified, 'at'), ok: verified['ok'] === true, message: str(verified, 'message') },
  };
}

function decodeMember(v: unknown): DatabaseMember | null {
  if (!isObj(v) || typeof v['name'] !== 'string') return null;
  return {
    name: v['name'],
    role: str(v, 'role') || 'unknown',
    zone: str(v, 'zone'),
    instance: str(v, 'instance'),
    pid: optNum(v, 'pid'),
    state: str(v, 'state'),
    healthy: v['healthy'] === true,
    lagBytes: optNum(v, 'lagBytes'),
    replayDelaySeconds: optNum(v, 'replayDelaySeconds'),
    checkUrl: optStr(v, 'checkUrl'),
    message: str(v, 'message'),
  };
}

/** A DatabaseStatus from the API; only the name is required, the rest defaults. */
export function decodeDatabase(v: unknown, where = 'database'): DatabaseStatus {
  if (!isObj(v) || typeof v['name'] !== 'string') throw new CliError(`the control plane sent a malformed ${where}`);
  const restored = isObj(v['restoredFrom']) ? v['restoredFrom'] : null;
  const tcp = isObj(v['tcp']) && typeof v['tcp']['address'] === 'string' && typeof v['tcp']['port'] === 'number' ? { address: v['tcp']['address'], port: v['tcp']['port'] } : null;
  const backup = isObj(v['backup']) ? v['backup'] : {};
  let last: BackupInfo | null = null;
  if (isObj(backup['last'])) {
    try {
      last = decodeBackup(backup['last'], `${where}.backup.last`);
    } catch {
      last = null;
    }
  }
  return {
    name: v['name'],
    engine: str(v, 'engine'),
    tenant: str(v, 'tenant'),
    environment: str(v, 'environment'),
    lane: str(v, 'lane'),
    source: str(v, 'source'),
    restoredFrom: restored === null ? null : { database: str(restored, 'database'), toTime: str(restored, 'toTime') },
    url: str(v, 'url'),
    variables: arr(v, 'variables').filter((x): x is string => typeof x === 'string'),
    tcp,
    primary: optStr(v, 'primary'),
    members: arr(v, 'members').map(decodeMember).filter((m): m is DatabaseMember => m !== null),
    backup: { interval: str(backup, 'interval'), retention: str(backup, 'retention'), last },
    failovers: arr(v, 'failovers')
      .filter(isObj)
      .map((f) => ({ at: str(f, 'at'), term: optNum(f, 'term') ?? 0, primary: str(f, 'primary'), reason: str(f, 'reason') })),
  };
}

/** `{ "items": [...] }`, as every list of the API. */
export function decodeDatabaseList(v: unknown): DatabaseStatus[] {
  const items = isObj(v) ? (Array.isArray(v['items']) ? v['items'] : null) : null;
  if (items === null) throw new CliError('the control plane sent a malformed list of databases');
  return items.map((d, i) => decodeDatabase(d, `databases[${i}]`));
}

export function decodeBackupList(v: unknown): BackupList {
  const items = isObj(v) ? (Array.isArray(v['items']) ? v['items'] : null) : null;
  if (!isObj(v) || items === null) throw new CliError('the control plane sent a malformed list of backups');
  return { backups: items.map((b, i) => decodeBackup(b, `backups[${i}]`)), retention: str(v, 'retention'), oldestRestorableTime: optStr(v, 'oldestRestorableTime') };
}

/** `512 B`, `16.0 KiB`, `25.3 MiB` (powers of 1024). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${Number.isFinite(bytes) ? Math.max(0, Math.round(bytes)) : 0} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function verifiedText(b: BackupInfo): string {
  if (b.verified === null) return 'pending';
  return b.verified.ok ? 'yes' : `no${b.verified.message ? ` (${b.verified.message})` : ''}`;
}

/** `a (zone a), b (zone b), arbiter (zone c)` */
export function describeMembers(db: DatabaseStatus): string {
  if (db.members.length === 0) return 'no members yet';
  return db.members.map((m) => (m.zone ? `${m.name} (zone ${m.zone})` : m.name)).join(', ');
}

export function renderDatabases(dbs: readonly DatabaseStatus[]): string[] {
  if (dbs.length === 0) return ['no databases'];
  return table(
    ['NAME', 'ENGINE', 'LANE', 'PRIMARY', 'URL'],
    dbs.map((d) => [d.name, d.engine || '-', d.lane || '-', d.primary ?? '-', d.url || '-']),
  );
}

/** `lanes db status`: the header block, the members table, the failovers. */
export function renderDatabaseStatus(db: DatabaseStatus): string[] {
  const where = db.tenant && db.environment ? ` (${db.tenant}/${db.environment})` : '';
  const last = db.backup.last;
  const head: [string, string][] = [
    ['database', `${db.name}${where}`],
    ['engine', db.engine || '-'],
    ['lane', db.lane || '-'],
    ['url', db.url || '-'],
  ];
  if (db.variables.length > 0) head.push(['variables', db.variables.join(', ')]);
  const sources: Readonly<Record<string, string>> = { manifest: 'manifest (lanes.yaml)', api: 'api (lanes db create)', restore: 'restore (lanes db restore)' };
  if (db.source) head.push(['source', sources[db.source] ?? db.source]);
  if (db.restoredFrom !== null) head.push(['restored from', `${db.restoredFrom.database} at ${db.restoredFrom.toTime}`]);
  head.push(['primary', db.primary ?? 'none']);
  head.push(['backups', `every ${db.backup.interval || '?'}, kept ${db.backup.retention || '?'}`]);
  head.push(['last backup', last === null ? 'none yet' : `${last.id} at ${last.finishedAt || last.startedAt || '?'}, verified ${verifiedText(last)}`]);
  const keyWidth = Math.max(...head.map(([k]) => k.length));
  const lines = head.map(([k, v]) => `${k.padEnd(keyWidth)}  ${v}`);

  lines.push('');
  if (db.members.length === 0) lines.push('no members yet');
  else {
    const withMessage = db.members.some((m) => m.message !== '');
    const headers = ['MEMBER', 'ROLE', 'ZONE', 'PID', 'STATE', 'LAG', 'HEALTHY'];
    if (withMessage) headers.push('MESSAGE');
    lines.push(
      ...table(
        headers,
        db.members.map((m) => {
          const row = [m.name, m.role, m.zone || '-', m.pid === null ? '-' : String(m.pid), m.state || '-', m.lagBytes === null ? '-' : formatBytes(m.lagBytes), m.healthy ? 'yes' : 'no'];
          if (withMessage) row.push(m.message);
          return row;
        }),
      ),
    );
  }

  lines.push('');
  if (db.failovers.length === 0) lines.push('failovers: none');
  else {
    lines.push('failovers:');
    const rows = table(
      ['', '', '', ''],
      db.failovers.map((f) => [f.at, `term ${f.term}`, `primary ${f.primary || '?'}`, f.reason]),
    ).slice(1);
    lines.push(...rows.map((r) => `  ${r}`));
  }
  return lines;
}

export function renderBackups(list: BackupList): string[] {
  const lines =
    list.backups.length === 0
      ? ['no backups']
      : table(
          ['ID', 'STARTED', 'SIZE', 'TIMELINE', 'VERIFIED'],
          list.backups.map((b) => [b.id, b.startedAt || '-', formatBytes(b.sizeBytes), String(b.timeline), verifiedText(b)]),
        );
  const retention = list.retention ? `retention ${list.retention}` : 'retention unknown';
  lines.push(list.oldestRestorableTime === null ? `${retention}; nothing to restore yet` : `${retention}; restorable from ${list.oldestRestorableTime}`);
  return lines;
}

/** `--backup-interval 24h`, `--backup-retention 10d`: checked here, sent as given. */
export function durationFlag(flag: string, value: string): string {
  const trimmed = value.trim();
  let ms: number;
  try {
    ms = parseDurationMs(trimmed, flag);
  } catch {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a duration; use e.g. 24h, 36h or 10d`);
  return trimmed;
}

/** `--to-time`: anything Date.parse reads (ISO 8601 with a zone is what the API documents); sent as given. */
export function timeFlag(flag: string, value: string): string {
  if (value.trim() === '' || Number.isNaN(Date.parse(value))) {
    throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a time; use e.g. 2026-01-02T15:04:05Z`);
  }
  return value;
}

const SUBCOMMANDS = ['list', 'create', 'status', 'url', 'switchover', 'backup', 'backups', 'restore', 'delete'] as const;
type Sub = (typeof SUBCOMMANDS)[number];

function isSub(s: string): s is Sub {
  return (SUBCOMMANDS as readonly string[]).includes(s);
}

const dbPath = (tenant: string, environment: string, name?: string): string =>
  `${envPath(tenant, environment)}/databases${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;

/** `lanes db list|create|status|switchover|backup|backups|restore|delete` */
export async function dbCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'db');
  if (!isSub(sub)) throw new UsageError(`db: unknown subcommand ${JSON.stringify(sub)}; use list, create, status, switchover, backup, backups, restore or delete`);
  const name = `db ${sub}`;
  const json = (raw: unknown): number => {
    ctx.io.line(JSON.stringify(raw, null, 2));
    return 0;
  };

  if (sub === 'list') {
    const args = parseCommandArgs(name, rest, { json: { type: 'boolean' } });
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 1, 1, usageOf(name));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const { api } = await connect(ctx.config);
    const raw = await api.get(dbPath(ref.tenant, ref.environment));
    if (args.values.json === true) return json(raw);
    for (const l of renderDatabases(decodeDatabaseList(raw))) ctx.io.line(l);
    return 0;
  }

  if (sub === 'create') {
    const args = parseCommandArgs(name, rest, {
      engine: { type: 'string' },
      'backup-interval': { type: 'string' },
      'backup-retention': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 2, 2, usageOf(name));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const db = checkDatabaseName('database', args.positionals[1]);
    const v = args.values;
    if (v.engine !== undefined && v.engine.trim() === '') throw new UsageError(`--engine: give an engine, e.g. postgres`);
    const interval = v['backup-interval'] === undefined ? undefined : durationFlag('backup-interval', v['backup-interval']);
    const retention = v['backup-retention'] === undefined ? undefined : durationFlag('backup-retention', v['backup-retention']);
    const backup = { ...(interval === undefined ? {} : { interval }), ...(retention === undefined ? {} : { retention }) };
    const body = { name: db, ...(v.engine === undefined ? {} : { engine: v.engine.trim() }), ...(Object.keys(backup).length === 0 ? {} : { backup }) };
    const { api } = await connect(ctx.config);
    const res = await api.request('POST', dbPath(ref.tenant, ref.environment), { json: body });
    if (v.json === true) return json(res.body);
    const d = decodeDatabase(res.body);
    ctx.io.line(`database ${d.name} created in ${ref.tenant}/${ref.environment} (${d.engine || 'postgres'}, lane ${d.lane || '?'}): members ${describeMembers(d)}`);
    ctx.io.line(`url: ${d.url || '-'}`);
    if (d.variables.length > 0) ctx.io.line(`services get it in ${d.variables.join(', ')}`);
    return 0;
  }

  if (sub === 'restore') {
    const args = parseCommandArgs(name, rest, { 'to-time': { type: 'string' }, as: { type: 'string' }, json: { type: 'boolean' } });
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 2, 2, usageOf(name));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const db = checkDatabaseName('database', args.positionals[1]);
    const v = args.values;
    if (v['to-time'] === undefined) throw new UsageError(`${name}: --to-time is required (the moment to restore to); usage: ${usageOf(name)}`);
    const toTime = timeFlag('to-time', v['to-time']);
    if (v.as === undefined) throw new UsageError(`${name}: --as is required (the new database's name; the original stays as it is); usage: ${usageOf(name)}`);
    const as = checkDatabaseName('--as', v.as);
    if (as === db) throw new UsageError(`--as: ${JSON.stringify(as)} is the database being restored; restore into a new name`);
    const { api } = await connect(ctx.config);
    if (v.json !== true) ctx.io.line(`copying a base backup of ${db} (${ref.tenant}/${ref.environment}) and replaying its WAL up to ${toTime}…`);
    const res = await api.request('POST', `${dbPath(ref.tenant, ref.environment, db)}/restore`, { json: { toTime, as }, timeoutMs: RESTORE_TIMEOUT_MS });
    if (v.json === true) return json(res.body);
    const d = decodeDatabase(res.body);
    ctx.io.line(`restoring ${db} to ${d.restoredFrom?.toTime || toTime} as ${d.name}: members ${describeMembers(d)}`);
    ctx.io.line(`url: ${d.url || '-'}`);
    return 0;
  }

  // status, switchover, backup, backups, delete: TENANT/ENV NAME
  const args = parseCommandArgs(name, rest, sub === 'switchover' ? { to: { type: 'string' } } : sub === 'delete' ? {} : { json: { type: 'boolean' } });
  if (args.help) return printUsage(ctx.io, name);
  expectPositionals(name, args.positionals, 2, 2, usageOf(name));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const db = checkDatabaseName('database', args.positionals[1]);
  const values = args.values as { json?: boolean; to?: string };
  const path = dbPath(ref.tenant, ref.environment, db);
  const where = `${ref.tenant}/${ref.environment}`;

  switch (sub) {
    case 'status': {
      const { api } = await connect(ctx.config);
      const raw = await api.get(path);
      if (values.json === true) return json(raw);
      for (const l of renderDatabaseStatus(decodeDatabase(raw))) ctx.io.line(l);
      return 0;
    }
    case 'url': {
      // The one place the password is shown: the operator asked for it.
      const { api } = await connect(ctx.config);
      const raw = await api.get(`${path}/url`);
      if (values.json === true) return json(raw);
      const url = isObj(raw) ? optStr(raw, 'url') : null;
      if (url === null) throw new CliError(`the control plane answered without the URL of ${db}`);
      ctx.io.line(url);
      return 0;
    }
    case 'switchover': {
      const to = values.to;
      if (to !== undefined && to.trim() === '') throw new UsageError('--to: give a member name, e.g. b (lanes db status shows them)');
      const { api } = await connect(ctx.config);
      ctx.io.line(`switching over ${db} of ${where}${to === undefined ? '' : ` to ${to.trim()}`}…`);
      const res = await api.request('POST', `${path}/switchover`, { json: to === undefined ? {} : { to: to.trim() }, timeoutMs: SWITCHOVER_TIMEOUT_MS });
      const body = isObj(res.body) ? res.body : {};
      const primary = optStr(body, 'primary');
      const term = optNum(body, 'term');
      if (primary === null) throw new CliError(`the control plane answered the switchover of ${db} without the new primary; see lanes db status ${where} ${db}`);
      ctx.io.line(`switched over: primary is now ${primary}${term === null ? '' : ` (term ${term})`}`);
      return 0;
    }
    case 'backup': {
      const { api } = await connect(ctx.config);
      if (values.json !== true) ctx.io.line(`taking a base backup of ${db} (${where})…`);
      const res = await api.request('POST', `${path}/backups`, { timeoutMs: BACKUP_TIMEOUT_MS });
      if (values.json === true) return json(res.body);
      const b = decodeBackup(res.body);
      ctx.io.line(`backup ${b.id} taken (${formatBytes(b.sizeBytes)}, timeline ${b.timeline})`);
      return 0;
    }
    case 'backups': {
      const { api } = await connect(ctx.config);
      const raw = await api.get(`${path}/backups`);
      if (values.json === true) return json(raw);
      for (const l of renderBackups(decodeBackupList(raw))) ctx.io.line(l);
      return 0;
    }
    case 'delete': {
      const { api } = await connect(ctx.config);
      const res = await api.request('DELETE', path);
      const gone = isObj(res.body) ? optStr(res.body, 'name') ?? db : db;
      ctx.io.line(`deleting database ${gone} of ${where} (its members stop; backups are kept)`);
      return 0;
    }
  }
}
