/**
 * Backups and point-in-time recovery. Base backups (pg_basebackup, tar, gzip, with the WAL
 * to make them consistent) and continuous WAL archiving (archive_command → wal-main.js)
 * go into a `BackupStore`; `DirectoryBackupStore` keeps them in a directory (the object
 * storage issue will add S3 behind the same interface). `planRetention` and
 * `chooseRestoreBackup` are pure. `restoreToTime` recovers into a NEW data directory
 * (never over a live one) and leaves it cleanly shut down, ready to be started as a new
 * cluster; `verifyBackup` restores a backup into a scratch directory and queries it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chown, copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { z } from 'zod';
import { ConflictError, InputError, NotFoundError, UnavailableError } from '@lanes/spec';
import { commandLine, confString, SUPERUSER } from './pgconf.js';
import { LocalClient } from './pgclient.js';
import { asUser, isDataDir, ownedDir, parseControlData, parseLsn, runTool, writeOwnedFile, type RunAs } from './pgexec.js';
import { Postmaster } from './postmaster.js';
import type { Secret } from './secret.js';

export const WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

const backupInfoSchema = z.object({
  id: z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/),
  member: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  timeline: z.number().int().min(1),
  startLsn: z.string(),
  stopLsn: z.string(),
  sizeBytes: z.number().int().min(0),
  files: z.array(z.string().regex(/^[a-z_]+(\.tar\.gz|_manifest)?$/)),
  verified: z.object({ at: z.string(), ok: z.boolean(), message: z.string() }).nullable(),
});
export type BackupInfo = z.infer<typeof backupInfoSchema>;

/** Where backups and archived WAL live. Every method is safe to retry. */
export interface BackupStore {
  /** Stores a finished base backup: its files (local paths, moved or copied) and its info. */
  putBackup(info: BackupInfo, files: readonly string[]): Promise<void>;
  /** Every backup, oldest first. */
  listBackups(): Promise<BackupInfo[]>;
  /** NotFoundError naming the id when there is none. */
  getBackup(id: string): Promise<BackupInfo>;
  updateBackup(info: BackupInfo): Promise<void>;
  /** Copies a backup's files into `dir`; returns their paths. */
  fetchBackup(id: string, dir: string): Promise<string[]>;
  deleteBackup(id: string): Promise<void>;
  /** Archives one WAL file; an identical copy already there is fine, a different one a ConflictError. */
  putWal(name: string, file: string): Promise<'stored' | 'duplicate'>;
  /** Restores one WAL file to `dest`; false when the archive does not have it. */
  getWal(name: string, dest: string): Promise<boolean>;
  listWal(): Promise<string[]>;
  deleteWal(name: string): Promise<void>;
}

const WAL_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?$|^[0-9A-F]{8}\.history$/;

export function checkWalName(name: string): string {
  if (!WAL_NAME.test(name)) throw new InputError(`${JSON.stringify(name)} is not a WAL file name`, 'wal');
  return name;
}

/** The segment number a WAL file name stands for (16 MB segments); null for .history files. */
export function walSegment(name: string): bigint | null {
  const m = WAL_NAME.exec(name);
  if (!m || m[1] === undefined || m[2] === undefined || m[3] === undefined) return null;
  return BigInt(`0x${m[2]}`) * 0x100n + BigInt(`0x${m[3]}`);
}

async function sha256(stream: NodeJS.ReadableStream): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A directory store: `base/<id>/` (the backup's files and info.json) and `wal/<name>.gz`.
 * Files are written to a temporary name, fsynced and renamed, so a reader never sees half
 * of one. WAL is gzipped (level 1: WAL compresses well and cheaply).
 */
export class DirectoryBackupStore implements BackupStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  #base(id?: string): string {
    return id === undefined ? path.join(this.root, 'base') : path.join(this.root, 'base', id);
  }

  #wal(name?: string): string {
    return name === undefined ? path.join(this.root, 'wal') : path.join(this.root, 'wal', `${checkWalName(name)}.gz`);
  }

  async #writeJson(file: string, value: unknown): Promise<void> {
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  async putBackup(info: BackupInfo, files: readonly string[]): Promise<void> {
    const parsed = backupInfoSchema.parse(info);
    const dir = this.#base(parsed.id);
    const tmp = `${dir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    for (const f of files) {
      const dest = path.join(tmp, path.basename(f));
      try {
        await rename(f, dest);
      } catch {
        await copyFile(f, dest);
      }
      const fh = await open(dest, 'r');
      await fh.sync().finally(() => fh.close());
    }
    await this.#writeJson(path.join(tmp, 'info.json'), parsed);
    await rename(tmp, dir);
    await fsyncDir(this.#base());
  }

  async listBackups(): Promise<BackupInfo[]> {
    let ids: string[];
    try {
      ids = (await readdir(this.#base())).filter((n) => !n.endsWith('.tmp'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: BackupInfo[] = [];
    for (const id of ids.sort()) {
      try {
        out.push(backupInfoSchema.parse(JSON.parse(await readFile(path.join(this.#base(id), 'info.json'), 'utf8'))));
      } catch {
        /* an unfinished or foreign directory: not a backup */
      }
    }
    return out.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }

  async getBackup(id: string): Promise<BackupInfo> {
    if (!backupInfoSchema.shape.id.safeParse(id).success) throw new NotFoundError(`backup ${JSON.stringify(id)} does not exist; list the backups for their ids`);
    try {
      return backupInfoSchema.parse(JSON.parse(await readFile(path.join(this.#base(id), 'info.json'), 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`backup ${JSON.stringify(id)} does not exist; list the backups for their ids`);
      throw err;
    }
  }

  async updateBackup(info: BackupInfo): Promise<void> {
    await this.getBackup(info.id);
    await this.#writeJson(path.join(this.#base(info.id), 'info.json'), backupInfoSchema.parse(info));
  }

  async fetchBackup(id: string, dir: string): Promise<string[]> {
    const info = await this.getBackup(id);
    const out: string[] = [];
    for (const f of info.files) {
      const dest = path.join(dir, f);
      await copyFile(path.join(this.#base(id), f), dest);
      out.push(dest);
    }
    return out;
  }

  async deleteBackup(id: string): Promise<void> {
    await this.getBackup(id);
    await rm(this.#base(id), { recursive: true, force: true });
  }

  async putWal(name: string, file: string): Promise<'stored' | 'duplicate'> {
    const dest = this.#wal(name);
    try {
      await stat(dest);
      const [have, want] = await Promise.all([sha256(createReadStream(dest).pipe(createGunzip())), sha256(createReadStream(file))]);
      if (have === want) return 'duplicate';
      throw new ConflictError(`WAL file ${name} is already archived with different contents; the archive keeps the first copy`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await mkdir(this.#wal(), { recursive: true, mode: 0o700 });
    const tmp = `${dest}.${randomBytes(4).toString('hex')}.tmp`;
    await pipeline(createReadStream(file), createGzip({ level: 1 }), createWriteStream(tmp, { mode: 0o600 }));
    const fh = await open(tmp, 'r');
    await fh.sync().finally(() => fh.close());
    await rename(tmp, dest);
    await fsyncDir(this.#wal());
    return 'stored';
  }

  async getWal(name: string, dest: string): Promise<boolean> {
    const src = this.#wal(name);
    const tmp = `${dest}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await pipeline(createReadStream(src), createGunzip(), createWriteStream(tmp, { mode: 0o600 }));
    } catch (err) {
      await rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await rename(tmp, dest);
    return true;
  }

  async listWal(): Promise<string[]> {
    try {
      return (await readdir(this.#wal()))
        .filter((n) => n.endsWith('.gz'))
        .map((n) => n.slice(0, -3))
        .filter((n) => WAL_NAME.test(n))
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async deleteWal(name: string): Promise<void> {
    await rm(this.#wal(name), { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// pure decisions

export interface RetentionPlan {
  readonly deleteBackups: readonly string[];
  readonly deleteWal: readonly string[];
}

/**
 * What retention removes at `nowMs`: backups finished before the window (now − retention),
 * except the newest of those (it is what recovers to the window's first moments), and the
 * WAL older than the oldest backup kept. Timeline history files are always kept.
 */
export function planRetention(backups: readonly BackupInfo[], wal: readonly string[], nowMs: number, retentionMs: number): RetentionPlan {
  const sorted = [...backups].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const windowStart = nowMs - retentionMs;
  const before = sorted.filter((b) => Date.parse(b.finishedAt) < windowStart);
  const keepFrom = before.length > 0 ? sorted.indexOf(before[before.length - 1] as BackupInfo) : 0;
  const kept = sorted.slice(keepFrom);
  const deleteBackups = sorted.slice(0, keepFrom).map((b) => b.id);
  const oldest = kept[0];
  if (oldest === undefined) return { deleteBackups, deleteWal: [] };
  const start = parseLsn(oldest.startLsn);
  if (start === null) return { deleteBackups, deleteWal: [] };
  const firstSegment = start / BigInt(WAL_SEGMENT_BYTES);
  const deleteWal = wal.filter((name) => {
    const seg = walSegment(name);
    return seg !== null && seg < firstSegment;
  });
  return { deleteBackups, deleteWal };
}

/**
 * The backup a restore to `target` starts from: `backupId` if given (it must have finished
 * by then), else the newest one finished by then. Bad input is an InputError (or a
 * NotFoundError for an unknown id) naming the value and the window that is possible.
 */
export function chooseRestoreBackup(backups: readonly BackupInfo[], target: Date | null, nowMs: number, retentionMs: number, backupId?: string): BackupInfo {
  const sorted = [...backups].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const oldest = sorted[0];
  const windowStartMs = Math.max(nowMs - retentionMs, oldest === undefined ? nowMs : Date.parse(oldest.finishedAt));
  const window = oldest === undefined ? 'there are no backups yet' : `the window is ${new Date(windowStartMs).toISOString()} to now (${new Date(nowMs).toISOString()})`;
  if (backupId !== undefined) {
    const b = sorted.find((x) => x.id === backupId);
    if (b === undefined) throw new NotFoundError(`backup ${JSON.stringify(backupId)} does not exist; list the backups for their ids`);
    if (target !== null && Date.parse(b.finishedAt) > target.getTime()) {
      throw new InputError(`--to-time ${target.toISOString()} is before backup ${b.id} finished (${b.finishedAt}); choose a later time or an older backup`, 'to-time');
    }
    return b;
  }
  if (oldest === undefined) throw new NotFoundError('there are no backups to restore from; take one first');
  if (target === null) return sorted[sorted.length - 1] as BackupInfo;
  if (Number.isNaN(target.getTime())) throw new InputError('--to-time is not a time; use ISO 8601, e.g. 2026-12-02T11:30:00Z', 'to-time');
  if (target.getTime() > nowMs) throw new InputError(`--to-time ${target.toISOString()} is in the future; ${window}`, 'to-time');
  if (target.getTime() < windowStartMs) throw new InputError(`--to-time ${target.toISOString()} is outside the retention window: ${window}`, 'to-time');
  const candidates = sorted.filter((b) => Date.parse(b.finishedAt) <= target.getTime());
  const b = candidates[candidates.length - 1];
  if (b === undefined) throw new InputError(`--to-time ${target.toISOString()} is before the oldest backup finished; ${window}`, 'to-time');
  return b;
}

// ---------------------------------------------------------------------------------------
// taking, restoring, verifying

/** How to run PostgreSQL's programs for the backup functions. */
export interface PgTools {
  readonly bin: string;
  readonly runAs: RunAs;
}

async function runPg(tools: PgTools, name: string, args: readonly string[], timeoutMs: number, env: Readonly<Record<string, string>> = {}): Promise<{ stdout: string; stderr: string }> {
  const { file, args: argv } = asUser(tools.runAs, path.join(tools.bin, name), args);
  return runTool({ file, args: argv, timeoutMs, env });
}

/** A timestamp PostgreSQL reads while loading its configuration (no zone abbreviations there: `+00`, not `Z`). */
export function pgTimestamp(d: Date): string {
  return `${d.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

export function newBackupId(at: Date = new Date()): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/**
 * Takes a base backup of the running server reached at `socketDir`:`port` (as the superuser,
 * password from `passfile`) into the store. `workDir` must be writable by PostgreSQL's user.
 */
export async function takeBaseBackup(opts: {
  readonly store: BackupStore;
  readonly tools: PgTools;
  readonly socketDir: string;
  readonly port: number;
  readonly passfile: string;
  readonly workDir: string;
  readonly member: string;
  readonly fsync?: boolean;
}): Promise<BackupInfo> {
  const startedAt = new Date();
  const id = newBackupId(startedAt);
  const dir = path.join(opts.workDir, `backup-${id}`);
  await ownedDir(opts.workDir, opts.tools.runAs, 0o700);
  await rm(dir, { recursive: true, force: true });
  try {
    await runPg(
      opts.tools,
      'pg_basebackup',
      ['-h', opts.socketDir, '-p', String(opts.port), '-U', SUPERUSER, '-D', dir, '-F', 'tar', '-z', '-X', 'stream', '-c', 'fast', '-w', ...(opts.fsync === false ? ['--no-sync'] : [])],
      24 * 3_600_000,
      { PGPASSFILE: opts.passfile, PGAPPNAME: 'lanes-backup' },
    );
    const manifest = JSON.parse(await readFile(path.join(dir, 'backup_manifest'), 'utf8')) as { 'WAL-Ranges'?: { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[] };
    const range = manifest['WAL-Ranges']?.[0];
    if (range === undefined) throw new UnavailableError('pg_basebackup wrote no WAL range in its manifest');
    const files = (await readdir(dir)).sort();
    let sizeBytes = 0;
    for (const f of files) sizeBytes += (await stat(path.join(dir, f))).size;
    const info: BackupInfo = {
      id,
      member: opts.member,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      timeline: range.Timeline,
      startLsn: range['Start-LSN'],
      stopLsn: range['End-LSN'],
      sizeBytes,
      files,
      verified: null,
    };
    await opts.store.putBackup(
      info,
      files.map((f) => path.join(dir, f)),
    );
    return info;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The restore_command for a restored cluster: wal-main.js restore from the same store. */
export function restoreCommandFor(storeRoot: string, walMain: string, node: string = process.execPath): string {
  return commandLine([node, walMain, 'restore', '--store', storeRoot, { placeholder: '%f' }, { placeholder: '%p' }], 'restore_command');
}

export interface RestoreOptions {
  readonly store: BackupStore;
  readonly tools: PgTools;
  /** The new data directory: must not exist, or be empty. */
  readonly dataDir: string;
  /** Recover to this time (commits after it are not replayed); null: to the end of the backup. */
  readonly targetTime: Date | null;
  readonly backupId?: string;
  readonly retentionMs: number;
  readonly restoreCommand: string;
  /** A port and socket directory for the recovery run (nothing else may use them). */
  readonly port: number;
  readonly socketDir: string;
  readonly nowMs?: number;
  /** @default 600000 */
  readonly timeoutMs?: number;
}

export interface RestoreResult {
  readonly backup: BackupInfo;
  readonly dataDir: string;
}

/**
 * Recovers into a new data directory: the base backup, then archived WAL up to the target,
 * then ends recovery (a new timeline) and shuts down cleanly. Never touches an existing
 * cluster: a data directory that exists and is not empty is a ConflictError.
 */
export async function restoreToTime(o: RestoreOptions): Promise<RestoreResult> {
  let existing: string[] = [];
  try {
    existing = await readdir(o.dataDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing.length > 0) {
    throw new ConflictError(`${o.dataDir} is not empty${(await isDataDir(o.dataDir)) ? ' (it holds a cluster)' : ''}; a restore only goes into a new directory`);
  }
  const backups = await o.store.listBackups();
  const backup = chooseRestoreBackup(backups, o.targetTime, o.nowMs ?? Date.now(), o.retentionMs, o.backupId);
  await ownedDir(o.dataDir, o.tools.runAs, 0o700);
  await ownedDir(o.socketDir, o.tools.runAs, 0o700);
  const scratch = `${o.dataDir}.fetch`;
  await ownedDir(scratch, o.tools.runAs, 0o700);
  try {
    const files = await o.store.fetchBackup(backup.id, scratch);
    const base = files.find((f) => path.basename(f) === 'base.tar.gz');
    const walTar = files.find((f) => path.basename(f) === 'pg_wal.tar.gz');
    if (base === undefined) throw new UnavailableError(`backup ${backup.id} has no base.tar.gz`);
    const tar = async (archive: string, into: string): Promise<void> => {
      const { file, args } = asUser(o.tools.runAs, 'tar', ['-x', '-z', '-f', archive, '-C', into]);
      await runTool({ file, args, timeoutMs: 3_600_000 });
    };
    const runAs = o.tools.runAs;
    if (runAs !== null) for (const f of files) await chown(f, runAs.uid, runAs.gid);
    await tar(base, o.dataDir);
    if (walTar !== undefined) await tar(walTar, path.join(o.dataDir, 'pg_wal'));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  // The restored postgresql.conf is the old member's; this one replaces it for recovery:
  // its own port and socket, no archiving into the store, no synchronous standby.
  const target = o.targetTime === null ? ["recovery_target = 'immediate'"] : [`recovery_target_time = ${confString(pgTimestamp(o.targetTime))}`, 'recovery_target_inclusive = on'];
  const conf = [
    '# Written by the Lanes restore: recovery into a new data directory.',
    "listen_addresses = ''",
    `port = ${o.port}`,
    `unix_socket_directories = ${confString(o.socketDir)}`,
    'unix_socket_permissions = 0700',
    'max_connections = 20',
    "shared_buffers = '32MB'",
    "wal_level = 'replica'",
    'wal_log_hints = on',
    // Off: nobody reads during recovery, and a hot standby would need at least the old
    // primary's max_connections and friends.
    'hot_standby = off',
    'archive_mode = off',
    "synchronous_standby_names = ''",
    "primary_conninfo = ''",
    `restore_command = ${confString(o.restoreCommand)}`,
    ...target,
    "recovery_target_action = 'promote'",
    "recovery_target_timeline = 'latest'",
    "log_destination = 'stderr'",
    "log_min_messages = 'warning'",
    '',
  ].join('\n');
  await writeOwnedFile(path.join(o.dataDir, 'postgresql.conf'), conf, o.tools.runAs, 0o600);
  await writeOwnedFile(path.join(o.dataDir, 'postgresql.auto.conf'), '', o.tools.runAs, 0o600);
  await writeOwnedFile(path.join(o.dataDir, 'recovery.signal'), '', o.tools.runAs, 0o600);

  const logFile = path.join(o.socketDir, 'restore.log');
  const pm = new Postmaster({ bin: o.tools.bin, dataDir: o.dataDir, runAs: o.tools.runAs, logFile });
  pm.start();
  const deadline = Date.now() + (o.timeoutMs ?? 600_000);
  try {
    for (;;) {
      // A backup's pg_control already says "in production"; the end of recovery is the
      // startup process removing recovery.signal (on promotion) while the server runs.
      if (pm.running && !(await exists(path.join(o.dataDir, 'recovery.signal')))) {
        const control = parseControlData((await runPg(o.tools, 'pg_controldata', ['-D', o.dataDir], 30_000)).stdout);
        if (control.state === 'in production') break;
      }
      if (!pm.running || Date.now() > deadline) {
        let tail = '';
        try {
          tail = (await readFile(logFile, 'utf8'))
            .split('\n')
            .filter((l) => /FATAL|PANIC|ERROR/.test(l))
            .slice(-2)
            .join(' | ');
        } catch {
          /* no log */
        }
        throw new UnavailableError(`recovery of backup ${backup.id}${o.targetTime ? ` to ${o.targetTime.toISOString()}` : ''} ${pm.running ? 'did not finish in time' : 'failed'}${tail ? `: ${tail}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await pm.stop('fast', 60_000);
  }
  await rm(path.join(o.dataDir, 'recovery.signal'), { force: true });
  return { backup, dataDir: o.dataDir };
}

/**
 * Verifies a backup by restoring it (to its end) into `scratchDir` and querying it as the
 * superuser; records the outcome in the store and returns it. The scratch data is removed.
 */
export async function verifyBackup(o: {
  readonly store: BackupStore;
  readonly tools: PgTools;
  readonly id: string;
  readonly scratchDir: string;
  readonly port: number;
  readonly superuserPassword: Secret;
  readonly restoreCommand: string;
  readonly retentionMs: number;
}): Promise<BackupInfo> {
  const dataDir = path.join(o.scratchDir, 'data');
  const socketDir = path.join(o.scratchDir, 'run');
  await rm(o.scratchDir, { recursive: true, force: true });
  await ownedDir(o.scratchDir, o.tools.runAs, 0o700);
  let verified: NonNullable<BackupInfo['verified']>;
  const pm = new Postmaster({ bin: o.tools.bin, dataDir, runAs: o.tools.runAs, logFile: path.join(socketDir, 'verify.log') });
  try {
    await restoreToTime({ store: o.store, tools: o.tools, dataDir, targetTime: null, backupId: o.id, retentionMs: o.retentionMs, restoreCommand: o.restoreCommand, port: o.port, socketDir });
    pm.start();
    const client = new LocalClient({ socketDir, port: o.port, user: SUPERUSER, password: o.superuserPassword, database: 'postgres' });
    let databases = 0;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const rows = await client.query<{ n: string }>('select count(*) as n from pg_database where datallowconn', [], 5_000);
        databases = Number(rows[0]?.n ?? 0);
        break;
      } catch (err) {
        if (Date.now() > deadline || !pm.running) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    client.close();
    verified = { at: new Date().toISOString(), ok: databases > 0, message: `restored and queried: ${databases} databases accept connections` };
  } catch (err) {
    verified = { at: new Date().toISOString(), ok: false, message: err instanceof Error ? err.message : String(err) };
  } finally {
    await pm.stop('immediate', 10_000);
    await rm(o.scratchDir, { recursive: true, force: true });
  }
  const info = { ...(await o.store.getBackup(o.id)), verified };
  await o.store.updateBackup(info);
  return info;
}
