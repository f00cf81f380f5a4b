/**
 * Running PostgreSQL's programs: argv builders (never a shell string), the user they run
 * as (PostgreSQL refuses root, so a root keeper drops to the `postgres` uid or the one
 * configured, through `setpriv`), a minimal environment (never the keeper's own, which may
 * hold tokens), timeouts, and errors that quote the program's last words. Also the few
 * file helpers that must create files owned by that user.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, UnavailableError } from '@lanes/spec';

const PG_ROOT = '/usr/lib/postgresql';

/** The uid/gid PostgreSQL's programs run as; null: as this process's own user. */
export type RunAs = { readonly uid: number; readonly gid: number } | null;

/** The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl, or null. */
export function findPostgresBin(): string | null {
  let versions: string[];
  try {
    versions = readdirSync(PG_ROOT).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    return null;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(PG_ROOT, v, 'bin');
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'postgres'))) return bin;
  }
  return null;
}

function execText(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: 5_000 }, (err, stdout) => (err ? reject(err) : resolve(String(stdout).trim())));
  });
}

/**
 * `--run-as`: a user name or `UID:GID`. As root it defaults to `postgres`; otherwise programs
 * run as this process's user and `spec` must be absent or name that user.
 */
export async function resolveRunAs(spec: string | null): Promise<RunAs> {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const wanted = spec ?? (root ? 'postgres' : null);
  if (wanted === null) return null;
  let uid: number;
  let gid: number;
  const numeric = /^(\d{1,10}):(\d{1,10})$/.exec(wanted);
  if (numeric) {
    uid = Number(numeric[1]);
    gid = Number(numeric[2]);
  } else {
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(wanted)) throw new InputError(`--run-as: ${JSON.stringify(wanted)} is not a user name or UID:GID`, 'run-as');
    try {
      uid = Number(await execText('id', ['-u', wanted]));
      gid = Number(await execText('id', ['-g', wanted]));
    } catch {
      throw new InputError(`--run-as: there is no user ${JSON.stringify(wanted)}; create it (Debian's postgresql package does) or give UID:GID`, 'run-as');
    }
  }
  if (uid === 0) throw new InputError('--run-as: PostgreSQL refuses to run as root; name another user', 'run-as');
  if (!root) {
    if (typeof process.getuid === 'function' && uid !== process.getuid()) {
      throw new InputError(`--run-as: only root can run PostgreSQL as uid ${uid}; run the keeper as that user instead`, 'run-as');
    }
    return null;
  }
  return { uid, gid };
}

/** The argv that runs `file args` as `runAs` (setpriv execs it: same pid, no shell, no PAM session). */
export function asUser(runAs: RunAs, file: string, args: readonly string[]): { file: string; args: string[] } {
  if (runAs === null) return { file, args: [...args] };
  return { file: 'setpriv', args: [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups', '--', file, ...args] };
}

/** The environment PostgreSQL's programs get: nothing of the keeper's own. */
export function toolEnv(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', ...extra };
}

export interface ToolRun {
  readonly file: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly cwd?: string;
}

/** The program a run starts (through setpriv or not), for messages. */
function programName(run: ToolRun): string {
  if (run.file !== 'setpriv') return path.basename(run.file);
  const i = run.args.indexOf('--');
  return path.basename(run.args[i + 1] ?? run.file);
}

/** Runs a program to its end; rejects with an UnavailableError quoting its last stderr lines. */
export function runTool(run: ToolRun): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(run.file, [...run.args], { env: toolEnv(run.env), stdio: ['ignore', 'pipe', 'pipe'], ...(run.cwd ? { cwd: run.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1_000_000) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-20_000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, run.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new UnavailableError(`${programName(run)} could not start: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const name = programName(run);
      const last = stderr.trim().split('\n').slice(-3).join(' | ');
      const how = timedOut ? `timed out after ${run.timeoutMs} ms` : signal ? `was killed by ${signal}` : `exited with ${code}`;
      reject(new UnavailableError(`${name} ${how}${last ? `: ${last}` : ''}`));
    });
  });
}

/** Creates `dir` (and parents) owned by `runAs` with `mode`. */
export async function ownedDir(dir: string, runAs: RunAs, mode = 0o700): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  await chmod(dir, mode);
  if (runAs !== null) await chown(dir, runAs.uid, runAs.gid);
}

/** Creates `dir` owned by `runAs` if it is missing; an existing directory is left as it is. */
export async function ensureDir(dir: string, runAs: RunAs, mode = 0o700): Promise<void> {
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await ownedDir(dir, runAs, mode);
}

/** Writes a file atomically (temp, fsync, rename, fsync of the directory), owned by `runAs`. */
export async function writeOwnedFile(file: string, content: string, runAs: RunAs, mode = 0o600): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (runAs !== null) await chown(tmp, runAs.uid, runAs.gid);
  await rename(tmp, file);
  const dh = await open(path.dirname(file), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export async function isDataDir(dataDir: string): Promise<boolean> {
  try {
    return (await stat(path.join(dataDir, 'PG_VERSION'))).isFile();
  } catch {
    return false;
  }
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** An LSN `X/Y` as a number of bytes (BigInt), for comparisons; null when absent. */
export function parseLsn(lsn: string | null | undefined): bigint | null {
  if (lsn === null || lsn === undefined) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) return null;
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

/** The fields of `pg_controldata` output that the keeper reads. */
export function parseControlData(text: string): { state: string | null; checkpointLsn: string | null; timeline: number | null } {
  const get = (label: string): string | null => {
    const line = text.split('\n').find((l) => l.startsWith(`${label}:`));
    return line === undefined ? null : line.slice(label.length + 1).trim();
  };
  const tli = get("Latest checkpoint's TimeLineID");
  return { state: get('Database cluster state'), checkpointLsn: get('Latest checkpoint location'), timeline: tli === null ? null : Number(tli) };
}
