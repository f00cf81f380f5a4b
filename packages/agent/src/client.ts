/**
 * The supervisor's link to the control plane: follows the watch stream (desired lists),
 * reports observed state on every change and every second (the heartbeat), and fetches
 * release packages. Nothing here is fatal: while the control plane is away the
 * supervisor keeps running the last desired list (static stability).
 */
import { chmod, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { request } from 'undici';
import { extractArchive } from '@lanes/archive';
import { PLATFORM_RELEASE, type AgentReport, type AgentWatchMessage } from '@lanes/spec';
import type { Supervisor } from './supervisor.js';
import { isRecord, parseDesiredList, parseNetworkList } from './validate.js';

export interface ControlPlaneClientOptions {
  /** Base URL of the control plane, e.g. http://127.0.0.1:7000 */
  readonly api: string;
  readonly token: string;
  readonly zone: string;
  /** Where this supervisor's own server is reached (logs, shutdown). */
  readonly agentUrl: string;
  readonly supervisor: Supervisor;
  readonly logger: Logger;
  /** @default 1000 */
  readonly reportIntervalMs?: number;
  /** @default 50 */
  readonly reportDebounceMs?: number;
  /** @default 250 */
  readonly reconnectMinMs?: number;
  /** @default 5000 */
  readonly reconnectMaxMs?: number;
  /** The watch sends a ping every 5 s; a stream silent this long is considered dead. @default 15000 */
  readonly watchIdleMs?: number;
}

const MAX_WATCH_LINE_CHARS = 16 * 1024 * 1024;

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Parses one watch line; null (with the reason logged by the caller) for anything else. */
export function parseWatchMessage(line: string): AgentWatchMessage {
  const raw: unknown = JSON.parse(line);
  if (!isRecord(raw)) throw new Error('watch message: not an object');
  if (raw['type'] === 'ping') return { type: 'ping', time: typeof raw['time'] === 'string' ? raw['time'] : '' };
  if (raw['type'] === 'desired') {
    const revision = raw['revision'];
    if (typeof revision !== 'number') throw new Error(`revision: ${JSON.stringify(revision)} should be a number`);
    return { type: 'desired', revision, instances: parseDesiredList('instances', raw['instances']), networks: parseNetworkList('networks', raw['networks']) };
  }
  throw new Error(`type: ${JSON.stringify(raw['type'])} is not a watch message type; expected desired or ping`);
}

export class ControlPlaneClient {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private reportTimer: NodeJS.Timeout | null = null;
  private debounceTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private reportInFlight = false;
  private reportAgain = false;
  private watching: Promise<void> | null = null;
  private lastRevision: number | null = null;

  constructor(private readonly opts: ControlPlaneClientOptions) {
    this.log = opts.logger;
  }

  start(): void {
    this.unsubscribe = this.opts.supervisor.onChange(() => this.scheduleReport());
    this.reportTimer = setInterval(() => void this.report(), this.opts.reportIntervalMs ?? 1000);
    this.watching = this.watchLoop();
    void this.report();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.reportTimer !== null) clearInterval(this.reportTimer);
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer);
    this.unsubscribe?.();
    await this.watching;
  }

  /** The last revision applied from the watch stream; null before the first. */
  revision(): number | null {
    return this.lastRevision;
  }

  private scheduleReport(): void {
    if (this.debounceTimer !== null || this.abort.signal.aborted) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null;
      void this.report();
    }, this.opts.reportDebounceMs ?? 50);
  }

  private async report(): Promise<void> {
    if (this.abort.signal.aborted) return;
    if (this.reportInFlight) {
      this.reportAgain = true;
      return;
    }
    this.reportInFlight = true;
    try {
      const sup = this.opts.supervisor;
      const body: AgentReport = { zone: this.opts.zone, agentUrl: this.opts.agentUrl, pid: process.pid, address: sup.address, instances: sup.observed(), metrics: sup.metrics() };
      const res = await request(new URL('/v1/agent/report', this.opts.api), {
        method: 'POST',
        headers: { authorization: `Bearer ${this.opts.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: 2000,
        bodyTimeout: 2000,
        signal: this.abort.signal,
      });
      await res.body.dump();
      if (res.statusCode >= 300) this.log.debug({ status: res.statusCode }, 'report rejected');
    } catch (err) {
      if (!this.abort.signal.aborted) this.log.debug({ err: errText(err) }, 'report failed');
    } finally {
      this.reportInFlight = false;
      if (this.reportAgain) {
        this.reportAgain = false;
        this.scheduleReport();
      }
    }
  }

  private async watchLoop(): Promise<void> {
    const min = this.opts.reconnectMinMs ?? 250;
    const max = this.opts.reconnectMaxMs ?? 5000;
    let delayMs = min;
    const url = new URL('/v1/agent/watch', this.opts.api);
    url.searchParams.set('zone', this.opts.zone);
    while (!this.abort.signal.aborted) {
      try {
        const res = await request(url, {
          method: 'GET',
          headers: { authorization: `Bearer ${this.opts.token}`, accept: 'application/x-ndjson' },
          headersTimeout: 10_000,
          bodyTimeout: this.opts.watchIdleMs ?? 15_000,
          signal: this.abort.signal,
        });
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`watch answered ${res.statusCode}`);
        }
        this.log.info({ zone: this.opts.zone }, 'watch connected');
        delayMs = min;
        let buffered = '';
        res.body.setEncoding('utf8');
        for await (const chunk of res.body) {
          buffered += String(chunk);
          let nl = buffered.indexOf('\n');
          while (nl >= 0) {
            this.handleLine(buffered.slice(0, nl));
            buffered = buffered.slice(nl + 1);
            nl = buffered.indexOf('\n');
          }
          if (buffered.length > MAX_WATCH_LINE_CHARS) throw new Error(`watch line longer than ${MAX_WATCH_LINE_CHARS} characters`);
        }
        throw new Error('watch stream ended');
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.log.warn({ err: errText(err), retryMs: delayMs }, 'watch disconnected; keeping the last desired list');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs * (0.8 + 0.4 * Math.random()));
        this.abort.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      delayMs = Math.min(delayMs * 2, max);
    }
  }

  private handleLine(line: string): void {
    if (line.trim() === '') return;
    let msg: AgentWatchMessage;
    try {
      msg = parseWatchMessage(line);
    } catch (err) {
      // One bad message must not take down a zone: keep the last good list.
      this.log.error({ err: errText(err) }, 'watch message rejected');
      return;
    }
    if (msg.type !== 'desired') return;
    this.lastRevision = msg.revision;
    this.log.info({ revision: msg.revision, instances: msg.instances.length, networks: msg.networks.length }, 'desired list received');
    this.opts.supervisor.setDesired(msg.instances, msg.networks);
  }
}

export interface PackageResolverOptions {
  readonly api: string;
  readonly token: string;
  readonly stateDir: string;
  readonly logger: Logger;
  /** @default 512 MiB */
  readonly maxPackageBytes?: number;
  /** @default 120000 */
  readonly downloadTimeoutMs?: number;
}

const HASH_RE = /^[0-9a-f]{64}$/;
/** The working directory of instances of the platform's own programs: this package's directory. */
const PLATFORM_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * `resolvePackage` for the Supervisor: `stateDir/packages/<hash>` when present, else the
 * package is downloaded, unpacked into a temporary directory beside it, checked against
 * its hash and renamed into place, so a half-unpacked package is never used.
 */
export function createPackageResolver(opts: PackageResolverOptions): (hash: string) => Promise<string> {
  const root = path.join(opts.stateDir, 'packages');
  const inflight = new Map<string, Promise<string>>();
  const maxBytes = opts.maxPackageBytes ?? 512 * 1024 * 1024;

  const fetchPackage = async (hash: string, dest: string): Promise<string> => {
    await mkdir(root, { recursive: true });
    // Instances in an environment network run unprivileged: the packages must stay readable
    // whatever the umask (the archive's own files and directories are 0644/0755 already).
    await chmod(root, 0o755);
    const res = await request(new URL(`/v1/agent/packages/${hash}`, opts.api), {
      method: 'GET',
      headers: { authorization: `Bearer ${opts.token}` },
      headersTimeout: 10_000,
      bodyTimeout: opts.downloadTimeoutMs ?? 120_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`package ${hash}: download answered ${res.statusCode}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      size += buf.length;
      if (size > maxBytes) {
        res.body.destroy();
        throw new Error(`package ${hash}: larger than ${maxBytes} bytes`);
      }
      chunks.push(buf);
    }
    const tmp = await mkdtemp(path.join(root, `.tmp-${hash.slice(0, 12)}-`));
    try {
      const result = await extractArchive(Buffer.concat(chunks), tmp);
      if (result.hash !== hash) throw new Error(`package ${hash}: its content hash is ${result.hash}; refusing it`);
      await chmod(tmp, 0o755); // mkdtemp makes it 0700
      try {
        await rename(tmp, dest);
      } catch (err) {
        // Another resolver (e.g. a previous supervisor run) got there first: use that one.
        if (!(await exists(dest))) throw err;
        await rm(tmp, { recursive: true, force: true });
      }
      opts.logger.info({ release: hash, files: result.files, bytes: result.bytes }, 'package unpacked');
      return dest;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  };

  return async (hash: string): Promise<string> => {
    // The platform's own programs (a database member's keeper): they run from the install.
    if (hash === PLATFORM_RELEASE) return PLATFORM_DIR;
    if (!HASH_RE.test(hash)) throw new Error(`release: ${JSON.stringify(hash)} is not a package hash (64 lower-case hex characters)`);
    const dest = path.join(root, hash);
    if (await exists(dest)) return dest;
    let p = inflight.get(hash);
    if (p === undefined) {
      p = fetchPackage(hash, dest).finally(() => inflight.delete(hash));
      inflight.set(hash, p);
    }
    return p;
  };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
