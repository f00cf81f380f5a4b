/**
 * Whole-platform test harness: boots Lanes the way a user does (`lanes up --detach` in a
 * temporary LANES_HOME, free ports), talks to it through the CLI and the public API, and
 * tears everything down by PID afterwards.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort, isAlive, killTree, sleep, tempDir, waitFor } from '@lanes/testkit';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const cliBin = path.join(repoRoot, 'packages', 'cli', 'bin', 'lanes.js');
export const helloDir = path.join(repoRoot, 'examples', 'hello');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Context {
  apiUrl: string;
  gatewayUrl: string;
  launcherPid?: number;
  components?: { controlplane?: number; gateway?: number; dns?: number; agents?: Record<string, number> };
}

export class TestPlatform {
  readonly home: string;
  readonly apiPort: number;
  readonly httpPort: number;
  /** The platform DNS's UDP and TCP port (always a free one, so parallel platforms never clash on 8053). */
  readonly dnsPort: number;
  /** The gateway's HTTPS port (always a free one, so parallel platforms never clash on 8443). */
  readonly httpsPort: number;
  readonly zones: string[];
  readonly domain = 'lanes.localhost';
  readonly env: NodeJS.ProcessEnv;

  private constructor(home: string, apiPort: number, httpPort: number, zones: string[], extraEnv: NodeJS.ProcessEnv, dnsPort: number, httpsPort: number) {
    this.home = home;
    this.apiPort = apiPort;
    this.httpPort = httpPort;
    this.dnsPort = dnsPort;
    this.httpsPort = httpsPort;
    this.zones = zones;
    this.env = { ...process.env, LANES_HOME: home, ...extraEnv };
  }

  /** Boots a platform; isolation defaults to none (the no-root mode) unless asked. */
  static async start(opts: { zones?: string[]; env?: NodeJS.ProcessEnv; isolation?: 'netns' | 'none'; dnsPort?: number; httpsPort?: number } = {}): Promise<TestPlatform> {
    const p = new TestPlatform(await tempDir('lanes-e2e-'), await freePort(), await freePort(), opts.zones ?? ['a', 'b', 'c'], opts.env ?? {}, opts.dnsPort ?? (await freePort()), opts.httpsPort ?? (await freePort()));
    const up = ['up', '--detach', '--api-port', String(p.apiPort), '--http-port', String(p.httpPort), '--dns-port', String(p.dnsPort), '--https-port', String(p.httpsPort), '--zones', p.zones.join(','), '--isolation', opts.isolation ?? 'none'];
    const r = await p.cli(up, 90_000);
    if (r.code !== 0) {
      await p.stop();
      throw new Error(`lanes up failed (${r.code}): ${r.stderr || r.stdout}\n${p.componentLogs()}`);
    }
    return p;
  }

  get token(): string {
    return readFileSync(path.join(this.home, 'admin.token'), 'utf8').trim();
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  context(): Context {
    return JSON.parse(readFileSync(path.join(this.home, 'context.json'), 'utf8')) as Context;
  }

  /** Runs the real `lanes` CLI. */
  cli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(process.execPath, [cliBin, ...args], { env: this.env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  /** A call to the public API with the admin token (or `token`). */
  async api<T = unknown>(method: string, p: string, body?: unknown, token: string | null = this.token): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (token) headers['authorization'] = `Bearer ${token}`;
    let payload: string | Buffer | undefined;
    if (Buffer.isBuffer(body)) {
      headers['content-type'] = 'application/gzip';
      payload = body;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const r = await request(`${this.apiUrl}${p}`, { method: method as 'GET', headers, body: payload ?? null, headersTimeout: 30_000, bodyTimeout: 30_000 });
    const text = await r.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.statusCode, body: parsed as T };
  }

  /** A GET through the gateway for an environment's host. */
  async get(envHost: string, p = '/'): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const r = await request(`http://127.0.0.1:${this.httpPort}${p}`, { headers: { host: envHost }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
  }

  host(env: string, tenant: string): string {
    return `${env}.${tenant}.${this.domain}`;
  }

  async status(ref: string): Promise<EnvStatus> {
    const [tenant, env] = ref.split('/');
    const r = await this.api<EnvStatus>('GET', `/v1/tenants/${tenant}/environments/${env}`);
    if (r.status !== 200) throw new Error(`status ${ref}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Waits until the environment's rollout is complete and every asked instance is healthy. */
  async waitReady(ref: string, timeoutMs = 60_000): Promise<EnvStatus> {
    return waitFor(
      `${ref} ready`,
      async () => {
        const s = await this.status(ref);
        // Database members (release 'platform') are placed by their database, not counted by services.
        const running = s.instances.filter((i) => i.desired === 'running' && i.release !== 'platform');
        const asked = s.services.reduce((n, svc) => n + svc.effectiveInstances, 0);
        return s.rollout?.state === 'complete' && running.length === asked && running.every((i) => i.healthy) ? s : false;
      },
      { timeoutMs, intervalMs: 200 },
    );
  }

  componentLogs(): string {
    const dir = path.join(this.home, 'logs');
    if (!existsSync(dir)) return '';
    return readdirSync(dir)
      .map((f) => `--- ${f}\n${readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
      .join('\n');
  }

  /** Every pid the platform may have started: components and instances. */
  pids(): number[] {
    const out: number[] = [];
    try {
      const c = this.context();
      if (c.launcherPid) out.push(c.launcherPid);
      const comp = c.components ?? {};
      if (comp.controlplane) out.push(comp.controlplane);
      if (comp.gateway) out.push(comp.gateway);
      if (comp.dns) out.push(comp.dns);
      for (const pid of Object.values(comp.agents ?? {})) out.push(pid);
    } catch {
      /* no context */
    }
    const zonesDir = path.join(this.home, 'zones');
    if (existsSync(zonesDir)) {
      for (const z of readdirSync(zonesDir)) {
        for (const f of ['agent.json', 'state.json']) {
          try {
            const text = readFileSync(path.join(zonesDir, z, f), 'utf8');
            for (const m of text.matchAll(/"pid"\s*:\s*(\d+)/g)) out.push(Number(m[1]));
          } catch {
            /* missing */
          }
        }
      }
    }
    return [...new Set(out)].filter((p) => p > 1 && p !== process.pid);
  }

  async stop(): Promise<void> {
    await this.cli(['down'], 60_000).catch(() => undefined);
    for (const pid of this.pids()) if (isAlive(pid)) killTree(pid);
    await sleep(100);
    await rm(this.home, { recursive: true, force: true }).catch(() => undefined);
  }
}

export interface InstanceStatus {
  id: string;
  service: string;
  release: string;
  zone: string;
  desired: 'running' | 'stopped';
  state: string;
  healthy: boolean;
  pid: number | null;
  address: string | null;
  port: number | null;
  restarts: number;
  message: string;
}

export interface EnvStatus {
  tenant: string;
  name: string;
  lane: string;
  release: string | null;
  services: { name: string; instances: number; effectiveInstances: number; ready: number }[];
  instances: InstanceStatus[];
  rollout: { release: string; state: string; message: string } | null;
}

/**
 * A client that sends requests through the gateway without pause until stopped, counting
 * successes and failures (with the first few failures kept for the assertion message).
 */
export class LoadClient {
  ok = 0;
  failed = 0;
  readonly failures: string[] = [];
  readonly seen = new Map<string, number>();
  #stop = false;
  #done: Promise<void>;

  constructor(port: number, host: string, concurrency = 4) {
    const worker = async (): Promise<void> => {
      while (!this.#stop) {
        try {
          const r = await request(`http://127.0.0.1:${port}/`, { headers: { host }, headersTimeout: 10_000, bodyTimeout: 10_000 });
          const text = await r.body.text();
          if (r.statusCode === 200) {
            this.ok++;
            try {
              const inst = (JSON.parse(text) as { instance?: string }).instance ?? '?';
              this.seen.set(inst, (this.seen.get(inst) ?? 0) + 1);
            } catch {
              /* not JSON */
            }
          } else {
            this.failed++;
            if (this.failures.length < 5) this.failures.push(`${r.statusCode} ${text.trim()}`);
          }
        } catch (err) {
          this.failed++;
          if (this.failures.length < 5) this.failures.push((err as Error).message);
        }
      }
    };
    this.#done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => undefined);
  }

  async stop(): Promise<this> {
    this.#stop = true;
    await this.#done;
    return this;
  }
}

export { spawn };
