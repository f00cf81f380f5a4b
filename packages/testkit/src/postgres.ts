/**
 * A throwaway PostgreSQL cluster for tests, built from Debian's binaries: initdb into a
 * fresh temp dir, started with pg_ctl on a free loopback port, durability switched off for
 * speed, and removed again by stop() — or by an exit/signal hook if a test crashes first.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, chown, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, tempDir } from './util.js';

const execFileP = promisify(execFile);

const PG_ROOT = '/usr/lib/postgresql';
const START_TIMEOUT_S = 30;
const START_ATTEMPTS = 3;

export interface ThrowawayPostgres {
  /** URL of the cluster's `postgres` database (user postgres, trust auth, 127.0.0.1). */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the data directory, the unix socket and the server log. */
  readonly dir: string;
  /** Creates a database and returns its URL. Names: lower-case letters, digits, '_'. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (immediate mode) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

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
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'pg_ctl'))) return bin;
  }
  return null;
}

/** Clusters still running in this process, stopped synchronously if the process ends first. */
const running = new Map<string, { dataDir: string; dir: string }>();
let hooksInstalled = false;

/** Immediate shutdown (SIGQUIT to the postmaster) and removal; sync because 'exit' hooks cannot await. */
function killCluster(c: { dataDir: string; dir: string }): void {
  try {
    const pid = Number(readFileSync(path.join(c.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGQUIT');
  } catch {
    /* never started or already gone */
  }
  rmSync(c.dir, { recursive: true, force: true });
}

function stopAllSync(): void {
  for (const [key, c] of running) {
    running.delete(key);
    killCluster(c);
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', stopAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      stopAllSync();
      process.off(signal, onSignal);
      // Re-raise so the process still dies the way the sender meant.
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs a PostgreSQL binary; as root through `runuser -u postgres`, since PostgreSQL refuses root. */
async function runPg(bin: string, args: readonly string[], timeoutMs: number): Promise<void> {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, [...args]];
  await execFileP(cmd, argv, { timeout: timeoutMs });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await execFileP('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await execFileP('id', ['-g', 'postgres'])).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('cannot find the uid of user "postgres"; install postgresql');
  return { uid, gid };
}

/** Starts a fresh cluster; see the module header. Throws if no binaries are installed. */
export async function startPostgres(): Promise<ThrowawayPostgres> {
  const bin = findPostgresBin();
  if (!bin) throw new Error(`PostgreSQL binaries not found under ${PG_ROOT}; install postgresql`);
  const dir = await tempDir('lanes-pg-');
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  installHooks();
  running.set(dir, { dataDir, dir });
  try {
    if (isRoot()) {
      const { uid, gid } = await postgresIds();
      await chown(dir, uid, gid);
    }
    await runPg(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], 60_000);
    // Settings go into postgresql.conf rather than `pg_ctl -o`, which pg_ctl hands to a shell.
    await appendFile(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dir}'`,
        'fsync = off',
        'full_page_writes = off',
        'synchronous_commit = off',
        'max_connections = 50',
        'shared_buffers = 16MB',
        '',
      ].join('\n'),
    );
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      // The last `port` line wins, so a retry just appends another.
      await appendFile(path.join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      try {
        await runPg(path.join(bin, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(START_TIMEOUT_S)], (START_TIMEOUT_S + 5) * 1000);
        break;
      } catch (err) {
        // Another process may have taken the port between freePort() and the bind.
        if (attempt >= START_ATTEMPTS) {
          let log = '';
          try {
            log = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
          } catch {
            /* no log */
          }
          throw new Error(`pg_ctl start failed on port ${port}: ${err instanceof Error ? err.message : String(err)} (log: ${log})`);
        }
      }
    }
    const base = `postgres://postgres@127.0.0.1:${port}`;
    let stopped = false;
    return {
      url: `${base}/postgres`,
      port,
      dir,
      async createDatabase(name: string): Promise<string> {
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
          throw new Error(`database name ${JSON.stringify(name)} is not allowed; use lower-case letters, digits and '_'`);
        }
        const client = new pg.Client({ connectionString: `${base}/postgres`, connectionTimeoutMillis: 10_000 });
        await client.connect();
        try {
          await client.query(`create database "${name}"`);
        } finally {
          await client.end();
        }
        return `${base}/${name}`;
      },
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        try {
          await runPg(path.join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], 35_000);
        } finally {
          running.delete(dir);
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    stopAllSyncOne(dir);
    throw err;
  }
}

function stopAllSyncOne(dir: string): void {
  const c = running.get(dir);
  if (!c) return;
  running.delete(dir);
  killCluster(c);
}
