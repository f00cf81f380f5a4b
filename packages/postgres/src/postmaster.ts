/**
 * The postmaster as the keeper's supervised child: started with an argv (as the PostgreSQL
 * user), its output appended to a log file, in its own process group so that a signal
 * meant for the keeper's group (Ctrl-C, a supervisor's group kill) never reaches it, and
 * stopped with the mode the caller chooses: `fast` (clients disconnected, a shutdown
 * checkpoint, every WAL record sent to the standbys first) or `immediate` (SIGQUIT: every
 * backend dies at once; this is fencing). A postmaster left behind by a keeper that was
 * killed is found through postmaster.pid and stopped before anything else happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { closeSync, openSync, readFileSync, renameSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { asUser, toolEnv, type RunAs } from './pgexec.js';

const LOG_ROTATE_BYTES = 20 * 1024 * 1024;

export type StopMode = 'fast' | 'immediate';

export interface PostmasterOptions {
  readonly bin: string;
  readonly dataDir: string;
  readonly runAs: RunAs;
  readonly logFile: string;
}

/** Emits 'exit' (code, signal) when the postmaster ends, whoever ended it. */
export class Postmaster extends EventEmitter {
  readonly #opts: PostmasterOptions;
  #child: ChildProcess | null = null;
  #exited: Promise<void> | null = null;

  constructor(opts: PostmasterOptions) {
    super();
    this.#opts = opts;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts `postgres -D dataDir`; resolves once spawned (readiness is the caller's to check). */
  start(): number {
    if (this.#child !== null) throw new Error('postmaster already running');
    rotateIfLarge(this.#opts.logFile);
    const fd = openSync(this.#opts.logFile, 'a', 0o600);
    const { file, args } = asUser(this.#opts.runAs, path.join(this.#opts.bin, 'postgres'), ['-D', this.#opts.dataDir]);
    let child: ChildProcess;
    try {
      child = spawn(file, args, { env: toolEnv(), stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    this.#exited = once(child, 'exit').then(([code, signal]) => {
      if (this.#child === child) this.#child = null;
      this.emit('exit', code as number | null, signal as NodeJS.Signals | null);
    });
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error('postgres could not be started');
    return child.pid;
  }

  /** Stops it and waits; escalates to SIGKILL after `timeoutMs`. Safe when not running. */
  async stop(mode: StopMode, timeoutMs = 30_000): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (child === null || exited === null || child.pid === undefined) return;
    signal(child.pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    const timer = setTimeout(() => {
      if (child.pid !== undefined) {
        signal(-child.pid, 'SIGKILL');
        signal(child.pid, 'SIGKILL');
      }
    }, timeoutMs);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the whole process group at once (the keeper is exiting and cannot wait). */
  killNow(): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    signal(pid, 'SIGQUIT');
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function rotateIfLarge(file: string): void {
  try {
    if (statSync(file).size > LOG_ROTATE_BYTES) renameSync(file, `${file}.1`);
  } catch {
    /* no log yet */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A postmaster still running on `dataDir` without a keeper (its keeper was killed): stopped
 * at once (SIGQUIT), then SIGKILL if it lingers. Returns its pid, or null if there was none.
 * The pid is checked against /proc so that a reused pid is never signalled.
 */
export async function stopOrphan(dataDir: string, timeoutMs = 10_000): Promise<number | null> {
  let pid: number;
  try {
    pid = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return null;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  const argv = cmdline.split('\0');
  const exe = path.basename(argv[0] ?? '');
  const dIndex = argv.indexOf('-D');
  if (!(exe === 'postgres' || exe === 'postmaster') || dIndex < 0 || path.resolve(argv[dIndex + 1] ?? '') !== path.resolve(dataDir)) return null;
  signal(pid, 'SIGQUIT');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) signal(pid, 'SIGKILL');
  return pid;
}
