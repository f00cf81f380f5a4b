/**
 * Test-only helpers for this package's tests: tiny instance programs written into a temp
 * dir, a desired-instance builder, and process bookkeeping for cleanup. Not exported.
 */
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import type { DesiredInstance, ObservedInstance } from '@lanes/spec';
import { killTree, tempDir } from '@lanes/testkit';
import { Supervisor } from './supervisor.js';
import type { SupervisorOptions } from './supervisor.js';

const SERVER_APP = `
import http from 'node:http';
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') { res.end('ok'); return; }
  if (req.url === '/env') { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(process.env)); return; }
  res.statusCode = 404; res.end();
});
server.listen(Number(process.env.PORT), process.env.HOST, () => console.log('listening pid=' + process.pid + ' port=' + process.env.PORT));
process.on('SIGTERM', () => { console.log('got SIGTERM'); server.close(); process.exit(0); });
setInterval(() => console.error('tick ' + Date.now()), 200);
`;
const CRASH_APP = `console.error('crashing on purpose'); process.exit(1);\n`;
const STUBBORN_APP = `
process.on('SIGTERM', () => console.log('got SIGTERM, ignoring it'));
console.log('stubborn pid=' + process.pid);
setInterval(() => {}, 1000);
`;

export interface TestApps {
  readonly dir: string;
  readonly root: string;
}

/** Writes server.mjs, crash.mjs and stubborn.mjs into a fresh temp dir. */
export async function writeTestApps(): Promise<TestApps> {
  const root = await tempDir('lanes-agent-test-');
  const dir = path.join(root, 'app');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'server.mjs'), SERVER_APP);
  writeFileSync(path.join(dir, 'crash.mjs'), CRASH_APP);
  writeFileSync(path.join(dir, 'stubborn.mjs'), STUBBORN_APP);
  return { dir, root };
}

export const FAST_HEALTH = { path: '/healthz', intervalMs: 100, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] } as const;

export function desired(id: string, app: 'server.mjs' | 'crash.mjs' | 'stubborn.mjs', extra: Partial<DesiredInstance> = {}): DesiredInstance {
  return {
    id,
    tenant: 'acme',
    environment: 'prod',
    service: app === 'server.mjs' ? 'web' : app.replace('.mjs', ''),
    release: 'r1',
    argv: [process.execPath, app],
    env: { GREETING: 'hello' },
    port: null,
    listens: app === 'server.mjs',
    health: app === 'server.mjs' ? FAST_HEALTH : null,
    stopGraceMs: 2000,
    network: null,
    ...extra,
  };
}

export const silentLogger = pino({ level: 'silent' });

/** Restart timings scaled down so tests stay quick; the shape of the policy is unchanged. */
export const FAST_POLICY = { initialBackoffMs: 100, maxBackoffMs: 800 } as const;

export function makeSupervisor(apps: TestApps, stateDir: string, extra: Partial<SupervisorOptions> = {}): Supervisor {
  return new Supervisor({
    zone: 'a',
    stateDir,
    resolvePackage: () => Promise.resolve(apps.dir),
    logger: silentLogger,
    restartPolicy: FAST_POLICY,
    ...extra,
  });
}

export function find(sup: Supervisor, id: string): ObservedInstance | undefined {
  return sup.observed().find((o) => o.id === id);
}

/** Pids of live, non-zombie processes whose working directory is `dir` (our unique temp app dir). */
export function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) !== dir) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z') pids.push(Number(name));
    } catch {
      /* gone meanwhile, or not ours to inspect */
    }
  }
  return pids;
}

/** Cleanup: kills (by pid, with their groups) the processes running in the test's app dir. */
export function killAllIn(dir: string): void {
  for (const pid of processesIn(dir)) killTree(pid);
}

/** Cleanup at the end of a test: its processes, then its temp dir. */
export async function cleanupApps(apps: TestApps): Promise<void> {
  killAllIn(apps.dir);
  await rm(apps.root, { recursive: true, force: true });
}
