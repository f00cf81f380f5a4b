// Shared bench helpers: boot a platform with the real CLI in a temporary LANES_HOME on free
// ports, run commands, parse wrk output, and clean up by PID.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const cli = path.join(root, 'packages', 'cli', 'bin', 'lanes.js');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function run(env, args, timeoutMs = 180_000) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`lanes ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function bootPlatform(zones = 'a,b,c', isolation = 'none', extra = []) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-'));
  const apiPort = await freePort();
  const httpPort = await freePort();
  const env = { ...process.env, LANES_HOME: home };
  // Every port a free one: two platforms of one benchmark run side by side.
  const ports = ['--dns-port', String(await freePort()), '--https-port', String(await freePort())];
  await run(env, ['up', '--detach', '--api-port', String(apiPort), '--http-port', String(httpPort), ...ports, '--zones', zones, '--isolation', isolation, ...extra]);
  const token = readFileSync(path.join(home, 'admin.token'), 'utf8').trim();
  return {
    home, env, apiPort, httpPort, token,
    async api(p) {
      const r = await fetch(`http://127.0.0.1:${apiPort}${p}`, { headers: { authorization: `Bearer ${token}` } });
      return r.json();
    },
    async stop() {
      await run(env, ['down']).catch(() => undefined);
      const pids = [];
      const zd = path.join(home, 'zones');
      if (existsSync(zd)) for (const z of readdirSync(zd)) {
        try { for (const m of readFileSync(path.join(zd, z, 'state.json'), 'utf8').matchAll(/"pid"\s*:\s*(\d+)/g)) pids.push(Number(m[1])); } catch { /* none */ }
      }
      for (const pid of pids) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export function hasWrk() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status === 1; // wrk --version exits 1 after printing its version
  }
}

/** Runs wrk and returns { rps, p50Ms, p99Ms, errors } (and the other fields of parseWrk). */
export function wrk(url, { connections = 64, threads = 2, durationS = 10, host } = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${durationS}s`, '--latency'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  return parseWrk(execFileSync('wrk', args, { encoding: 'utf8' }));
}

/**
 * The figures of one wrk --latency report: req/s, p50/p99 in ms, requests completed,
 * non-2xx/3xx answers, socket errors, and `errors` (the two added up).
 */
export function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const ms = (label) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = errs ? errs.slice(1).reduce((n, x) => n + Number(x), 0) : 0;
  const requests = Number(/(\d+) requests in /.exec(out)?.[1] ?? NaN);
  return { rps, p50Ms: ms('50'), p99Ms: ms('99'), errors: non2xx + socketErrors, non2xx, socketErrors, requests };
}

/**
 * Runs wrk without blocking the event loop (so Ctrl-C cleanup still runs), optionally
 * pinned to one CPU with taskset. Resolves to parseWrk's figures plus the raw report.
 */
export function wrkAsync(url, { connections = 64, threads = 1, durationS = 10, host, cpu = null, timeoutMs } = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${durationS}s`, '--latency'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  const [cmd, argv] = cpu === null ? ['wrk', args] : ['taskset', ['-c', String(cpu), 'wrk', ...args]];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { encoding: 'utf8', timeout: timeoutMs ?? (durationS + 30) * 1000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`wrk ${url} failed: ${(stderr || err.message).trim().split('\n')[0]}`));
      else resolve({ ...parseWrk(stdout), raw: stdout });
    });
  });
}

/** True when `cmd` can be started (it exists on PATH and runs); its exit status does not matter. */
export function hasCommand(cmd, args = ['--version']) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch (err) {
    return err.code !== 'ENOENT';
  }
}

/** Kernel clock ticks per second (utime/stime unit in /proc/PID/stat). */
export function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** { ppid, ticks: utime + stime } of a process (all its threads), or null when it is gone. */
export function procStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

/** `pid` and all its descendants, from the parent links in /proc. */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(name);
    if (st === null) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    out.push(p);
    for (const c of children.get(p) ?? []) queue.push(c);
  }
  return out;
}

/** CPU ticks (utime + stime) used so far by each process of `pid`'s tree: Map pid → ticks. */
export function treeTicks(pid) {
  const out = new Map();
  for (const p of processTree(pid)) {
    const st = procStat(p);
    if (st !== null) out.set(p, st.ticks);
  }
  return out;
}

/** Ticks used between two treeTicks snapshots (processes that appeared count from 0). */
export function ticksBetween(before, after) {
  let n = 0;
  for (const [pid, t] of after) n += t - (before.get(pid) ?? 0);
  return n;
}

/** The 1, 5 and 15 minute load averages and the machine's CPU count. */
export function loadavg() {
  const [one, five, fifteen] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return { one, five, fifteen, cpus: os.availableParallelism() };
}

/**
 * The processes and temporary directories a bench started, so that all of them go away
 * however it ends (done, failed, Ctrl-C): each process leads its own process group and is
 * stopped with its whole group (workers included) by PID, never by name.
 */
export class ProcessSet {
  #children = new Set();
  #dirs = new Set();
  #hooked = false;

  /** A temporary directory removed by cleanup. */
  tempDir(prefix) {
    const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.#dirs.add(dir);
    return dir;
  }

  /**
   * Starts `cmd args` in its own process group, pinned to `cpu` with taskset when given,
   * stdout and stderr appended to `log` (or dropped). Resolves once it started.
   */
  async spawn(cmd, args, { cpu = null, env = process.env, cwd = root, log = null } = {}) {
    this.#hook();
    const [file, argv] = cpu === null ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
    const fd = log === null ? 'ignore' : openSync(log, 'a');
    const child = spawn(file, argv, { detached: true, stdio: ['ignore', fd, fd], env, cwd });
    if (typeof fd === 'number') closeSync(fd);
    child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`${cmd} could not start: ${err.message}`)));
    });
    this.#children.add(child);
    return child;
  }

  /** SIGTERM to the child's group, SIGKILL after `graceMs`; resolves when the leader exited. */
  async stop(child, graceMs = 5_000) {
    if (!this.#children.has(child)) return;
    const gone = child.exitCode !== null || child.signalCode !== null;
    if (!gone) signalGroup(child.pid, 'SIGTERM');
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(resolve, gone ? 0 : graceMs);
    });
    await Promise.race([child.exited, late]);
    clearTimeout(timer);
    // Whatever is left of the group (workers of a leader that already exited).
    signalGroup(child.pid, 'SIGKILL');
    await Promise.race([child.exited, new Promise((r) => setTimeout(r, 1_000))]);
    this.#children.delete(child);
  }

  /** Stops every process (in parallel) and removes the temporary directories. */
  async cleanup() {
    await Promise.all([...this.#children].map((c) => this.stop(c, 2_000)));
    this.#removeDirs();
  }

  /** Last resort on exit: SIGKILL to every group left, directories removed (synchronous). */
  killAllSync() {
    for (const c of this.#children) signalGroup(c.pid, 'SIGKILL');
    this.#children.clear();
    this.#removeDirs();
  }

  #removeDirs() {
    for (const d of this.#dirs) rmSync(d, { recursive: true, force: true });
    this.#dirs.clear();
  }

  #hook() {
    if (this.#hooked) return;
    this.#hooked = true;
    process.once('exit', () => this.killAllSync());
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.once(sig, () => {
        console.error(`\n${sig}: stopping what the bench started`);
        void this.cleanup().finally(() => process.exit(130));
      });
    }
  }
}

function signalGroup(pid, signal) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
