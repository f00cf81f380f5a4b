/**
 * The health checker: runs the HTTP checks of the failover targets on their intervals, as
 * Route 53's health checkers do, and reports each result. It decides nothing: the results
 * go to FailoverState (failover.ts) through `onResult`. One timer chain per target; a
 * check never overlaps the next one of the same target, and each is bounded by its timeout.
 */
import http from 'node:http';
import https from 'node:https';
import type { DnsFailoverRecord, DnsHealthCheck } from '@lanes/spec';
import { targetKey, type Role } from './failover.js';

export interface ProbeResult {
  /** A 2xx or 3xx status arrived within the timeout. */
  readonly ok: boolean;
  /** What was seen: "HTTP 204", "HTTP 503", "timed out after 2000 ms", "connect ECONNREFUSED 127.0.0.1:9". */
  readonly detail: string;
}

/**
 * One check: GET `url`, success on 2xx/3xx (redirects are not followed), failure on any other
 * status, an error or no response headers within `timeoutMs`. The body is not read. An
 * https target's certificate is not verified (Route 53 does not either): the check asks
 * "does it answer", and targets often carry certificates for names, not addresses.
 */
export function probe(url: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      resolve(r);
    };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      done({ ok: false, detail: `${JSON.stringify(url)} is not a URL` });
      return;
    }
    const lib = target.protocol === 'https:' ? https : http;
    const req = lib.request(target, {
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'lanes-dns-health-check', connection: 'close', accept: '*/*' },
      ...(target.protocol === 'https:' ? { rejectUnauthorized: false } : {}),
    });
    timer = setTimeout(() => {
      done({ ok: false, detail: `timed out after ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      done({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
      res.on('error', () => undefined);
      res.destroy();
    });
    req.on('error', (err) => done({ ok: false, detail: err.message || 'connection failed' }));
    req.end();
  });
}

export interface HealthCheckerOptions {
  /** Called with every check result; `key` identifies the target's check (targetKey). */
  readonly onResult: (name: string, role: Role, key: string, result: ProbeResult) => void;
  /** The check itself; replaceable in tests. @default probe */
  readonly probe?: (url: string, timeoutMs: number) => Promise<ProbeResult>;
}

interface Running {
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

export class HealthChecker {
  readonly #opts: HealthCheckerOptions;
  readonly #probe: (url: string, timeoutMs: number) => Promise<ProbeResult>;
  readonly #running = new Map<string, Running>();

  constructor(options: HealthCheckerOptions) {
    this.#opts = options;
    this.#probe = options.probe ?? probe;
  }

  /** Checks currently scheduled (for tests and logs). */
  get size(): number {
    return this.#running.size;
  }

  /** Runs exactly the checks of `records`: unchanged checks go on, new ones start, removed ones stop. */
  sync(records: readonly DnsFailoverRecord[]): void {
    const want = new Map<string, { name: string; role: Role; check: DnsHealthCheck }>();
    for (const r of records) {
      for (const role of ['primary', 'secondary'] as const) {
        const check = r[role].check;
        if (check !== null) want.set(targetKey(r, role), { name: r.name, role, check });
      }
    }
    for (const [key, run] of this.#running) {
      if (want.has(key)) continue;
      run.stopped = true;
      if (run.timer !== null) clearTimeout(run.timer);
      this.#running.delete(key);
    }
    for (const [key, w] of want) {
      if (this.#running.has(key)) continue;
      const run: Running = { timer: null, stopped: false };
      this.#running.set(key, run);
      // A first check soon, spread a little so a zone's checks do not all fire at once.
      const firstMs = Math.floor(Math.random() * Math.min(w.check.intervalMs, 500));
      run.timer = setTimeout(() => void this.#loop(key, w.name, w.role, w.check, run), firstMs);
    }
  }

  async #loop(key: string, name: string, role: Role, check: DnsHealthCheck, run: Running): Promise<void> {
    run.timer = null;
    if (run.stopped) return;
    const started = Date.now();
    const result = await this.#probe(check.url, check.timeoutMs).catch((err: unknown): ProbeResult => ({ ok: false, detail: err instanceof Error ? err.message : String(err) }));
    if (run.stopped) return;
    this.#opts.onResult(name, role, key, result);
    if (run.stopped) return;
    run.timer = setTimeout(() => void this.#loop(key, name, role, check, run), Math.max(0, started + check.intervalMs - Date.now()));
  }

  /** Stops every check (in-flight ones finish by their timeout; their results are dropped). */
  stop(): void {
    this.sync([]);
  }
}
