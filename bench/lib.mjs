// Shared bench helpers: boot a platform with the real CLI in a temporary LANES_HOME on free
// ports, run commands, parse wrk output, and clean up by PID.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
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

export async function bootPlatform(zones = 'a,b,c', isolation = 'none') {
  const home = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-'));
  const apiPort = await freePort();
  const httpPort = await freePort();
  const env = { ...process.env, LANES_HOME: home };
  await run(env, ['up', '--detach', '--api-port', String(apiPort), '--http-port', String(httpPort), '--zones', zones, '--isolation', isolation]);
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

/** Runs wrk and returns { rps, p50Ms, p99Ms, errors }. */
export function wrk(url, { connections = 64, threads = 2, durationS = 10, host } = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${durationS}s`, '--latency'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const ms = (label) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = non2xx + (errs ? errs.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
  return { rps, p50Ms: ms('50'), p99Ms: ms('99'), errors };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
