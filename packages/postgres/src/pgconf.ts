/**
 * The member's PostgreSQL configuration as pure functions of its role and settings:
 * postgresql.conf, pg_hba.conf, libpq connection strings and the archive/restore commands.
 * The keeper writes their output whole (a file is never edited in place) and tests compare
 * it with golden files. Every value is quoted for the syntax it lands in.
 */
import { isIP } from 'node:net';
import { InputError } from '@lanes/spec';

export const SUPERUSER = 'postgres';
export const REPLICATION_USER = 'replicator';

/** A value for postgresql.conf: single-quoted, quotes doubled, backslashes escaped. */
export function confString(value: string, field = 'value'): string {
  if (/[\n\r\0]/.test(value)) throw new InputError(`${field}: ${JSON.stringify(value)} contains a line break or NUL, which postgresql.conf cannot hold`, field);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A libpq connection-string value: bare when safe, else single-quoted with \ and ' escaped. */
export function conninfoValue(value: string): string {
  if (value.length > 0 && /^[A-Za-z0-9_.:/@-]+$/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function conninfo(params: Readonly<Record<string, string | number>>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(' ');
}

/** An SQL identifier: double-quoted, quotes doubled. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new InputError(`identifier ${JSON.stringify(name)} contains NUL`, 'identifier');
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * One argument of a command that PostgreSQL hands to `sh -c` (archive_command,
 * restore_command — PostgreSQL offers no argv form): single-quoted for the shell, and `%`
 * doubled so that PostgreSQL's own `%p`/`%f` substitution cannot touch it. `%p` and `%f`
 * themselves are passed with `placeholder()`.
 */
export function shellArg(value: string, field = 'argument'): string {
  if (/[\n\r\0]/.test(value)) throw new InputError(`${field}: ${JSON.stringify(value)} contains a line break or NUL`, field);
  return `'${value.replace(/%/g, '%%').replace(/'/g, `'\\''`)}'`;
}

/** `%p` or `%f`, quoted for the shell (PostgreSQL substitutes paths and names without quotes). */
export function placeholder(p: '%p' | '%f'): string {
  return `'${p}'`;
}

export function commandLine(argv: readonly (string | { readonly placeholder: '%p' | '%f' })[], field = 'command'): string {
  return argv.map((a) => (typeof a === 'string' ? shellArg(a, field) : placeholder(a.placeholder))).join(' ');
}

export interface PostgresConfInput {
  readonly member: string;
  readonly listenAddresses: readonly string[];
  readonly port: number;
  /** Directory of the unix socket (the keeper's own connections). */
  readonly socketDir: string;
  /** @default 100 */
  readonly maxConnections: number;
  /** e.g. '128MB' */
  readonly sharedBuffers: string;
  /** WAL kept for standbys that fall behind or rejoin (pg_rewind), e.g. '512MB'. */
  readonly walKeepSize: string;
  /** false only for tests and benchmarks that say so. */
  readonly fsync: boolean;
  readonly role: 'primary' | 'standby';
  /** The primary's synchronous standby (a member name), or null: writes need no standby. */
  readonly syncStandby: string | null;
  /** Where a standby streams from; null for a primary or a standby about to be promoted. */
  readonly upstream: { readonly host: string; readonly port: number } | null;
  /** The libpq password file holding the replication user's password. */
  readonly passfile: string;
  /** Continuous archiving: shell command lines from `commandLine`. */
  readonly archive: { readonly archiveCommand: string; readonly restoreCommand: string } | null;
}

/** postgresql.conf for a member in `role`. */
export function renderPostgresqlConf(c: PostgresConfInput): string {
  const lines: string[] = [
    `# Rendered by the Lanes keeper of member ${c.member} for its role (${c.role}); every change here is overwritten.`,
    '',
    '# connections',
    `listen_addresses = ${confString(c.listenAddresses.join(','), 'listen_addresses')}`,
    `port = ${c.port}`,
    `unix_socket_directories = ${confString(c.socketDir, 'unix_socket_directories')}`,
    'unix_socket_permissions = 0700',
    `max_connections = ${c.maxConnections}`,
    `shared_buffers = ${confString(c.sharedBuffers, 'shared_buffers')}`,
    "password_encryption = 'scram-sha-256'",
    // A client cut off by a partition is noticed within seconds, not hours.
    'tcp_keepalives_idle = 5',
    'tcp_keepalives_interval = 2',
    'tcp_keepalives_count = 3',
    '',
    '# replication',
    "wal_level = 'replica'",
    'max_wal_senders = 10',
    'max_replication_slots = 10',
    `wal_keep_size = ${confString(c.walKeepSize, 'wal_keep_size')}`,
    // pg_rewind needs it to rejoin a former primary.
    'wal_log_hints = on',
    'hot_standby = on',
    'hot_standby_feedback = on',
    "wal_sender_timeout = '5s'",
    "wal_receiver_timeout = '5s'",
    "wal_receiver_status_interval = '1s'",
    "wal_retrieve_retry_interval = '500ms'",
    "recovery_target_timeline = 'latest'",
    'synchronous_commit = on',
    `synchronous_standby_names = ${confString(c.role === 'primary' && c.syncStandby !== null ? quoteIdent(c.syncStandby) : '', 'synchronous_standby_names')}`,
    `primary_conninfo = ${confString(
      c.role === 'standby' && c.upstream !== null
        ? conninfo({
            host: c.upstream.host,
            port: c.upstream.port,
            user: REPLICATION_USER,
            application_name: c.member,
            passfile: c.passfile,
            connect_timeout: 2,
            keepalives_idle: 2,
            keepalives_interval: 1,
            keepalives_count: 2,
          })
        : '',
      'primary_conninfo',
    )}`,
    '',
    '# durability',
    `fsync = ${c.fsync ? 'on' : 'off'}`,
    'full_page_writes = on',
    '',
    '# archiving',
  ];
  if (c.archive === null) {
    lines.push('archive_mode = off');
  } else {
    // 'always': a standby archives what it receives too, so that nothing streamed before a
    // failover is missing from the archive; the store accepts identical duplicates.
    lines.push("archive_mode = 'always'", `archive_command = ${confString(c.archive.archiveCommand, 'archive_command')}`, "archive_timeout = '60s'");
    lines.push(`restore_command = ${confString(c.archive.restoreCommand, 'restore_command')}`);
  }
  lines.push(
    '',
    '# logging (stderr, to the file the keeper gives the postmaster)',
    "log_destination = 'stderr'",
    'logging_collector = off',
    "log_line_prefix = '%m [%p] '",
    "log_min_messages = 'warning'",
    'log_checkpoints = off',
    "log_statement = 'none'",
    '',
  );
  return lines.join('\n');
}

export interface PgHbaInput {
  readonly member: string;
  /** Client networks allowed to connect (CIDR), e.g. the environment's network. */
  readonly allow: readonly string[];
}

/** `10.1.0.0/24`, `::1/128`: an address and a prefix length that fits it. Throws InputError naming the value. */
export function checkCidr(cidr: string, field = 'allow'): string {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr);
  const family = m ? isIP(m[1] ?? '') : 0;
  const bits = Number(m?.[2]);
  if (!m || family === 0 || bits > (family === 4 ? 32 : 128)) {
    throw new InputError(`${field}: ${JSON.stringify(cidr)} is not a network; use ADDRESS/PREFIX, e.g. 10.88.1.0/24 or ::1/128`, field);
  }
  return cidr;
}

/** pg_hba.conf: SCRAM passwords everywhere, only from the allowed networks. */
export function renderPgHba(h: PgHbaInput): string {
  // Local replication: base backups taken by the keeper through its socket.
  const rows: string[][] = [
    ['local', 'all', 'all', '', 'scram-sha-256'],
    ['local', 'replication', 'all', '', 'scram-sha-256'],
  ];
  for (const cidr of h.allow.map((c) => checkCidr(c))) {
    rows.push(['host', 'replication', REPLICATION_USER, cidr, 'scram-sha-256']);
    rows.push(['host', 'all', 'all', cidr, 'scram-sha-256']);
  }
  const widths = [6, 12, 11, 20];
  const fmt = (r: string[]): string =>
    r
      .map((v, i) => (i < widths.length ? v.padEnd(widths[i] ?? 0) : v))
      .join(' ')
      .trimEnd();
  return [`# Rendered by the Lanes keeper of member ${h.member}; every change here is overwritten.`, fmt(['# TYPE', 'DATABASE', 'USER', 'ADDRESS', 'METHOD']), ...rows.map(fmt), ''].join('\n');
}
