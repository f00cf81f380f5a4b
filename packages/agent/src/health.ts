/**
 * Health probing of one instance: an HTTP GET (2xx/3xx passes) or a TCP connect, run
 * every interval, with consecutive-pass/-fail thresholds deciding the healthy flag.
 */
import http from 'node:http';
import net from 'node:net';
import type { HealthCheckSpec } from '@lanes/spec';

export type ProbeKind = { readonly kind: 'http'; readonly path: string } | { readonly kind: 'tcp' };

export interface ProbeResult {
  readonly ok: boolean;
  /** A short reason, e.g. "GET /healthz answered 503" or "connect ECONNREFUSED". */
  readonly reason: string;
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = 'code' in err && typeof err.code === 'string' ? err.code : null;
    return code ?? err.message;
  }
  return String(err);
}

/** One probe; never rejects. `localAddress` binds the probe's source (an environment's supervisor link). */
export function probeOnce(address: string, port: number, kind: ProbeKind, timeoutMs: number, localAddress?: string): Promise<ProbeResult> {
  const bind = localAddress === undefined ? {} : { localAddress };
  return new Promise((resolve) => {
    const what = kind.kind === 'http' ? `GET ${kind.path}` : `TCP connect to port ${port}`;
    let abort: () => void = () => undefined;
    let done = false;
    const timer = setTimeout(() => {
      abort();
      finish({ ok: false, reason: `${what} timed out after ${timeoutMs} ms` });
    }, timeoutMs);
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    if (kind.kind === 'http') {
      const req = http.request({ host: address, port, ...bind, path: kind.path, method: 'GET', agent: false, headers: { 'user-agent': 'lanes-agent-health' } }, (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        req.destroy();
        finish({ ok: status >= 200 && status < 400, reason: `${what} answered ${status}` });
      });
      abort = () => req.destroy();
      req.on('error', (err) => finish({ ok: false, reason: `${what} failed: ${errText(err)}` }));
      req.end();
    } else {
      const sock = net.connect({ host: address, port, ...bind });
      abort = () => sock.destroy();
      sock.on('connect', () => {
        sock.destroy();
        finish({ ok: true, reason: `${what} succeeded` });
      });
      sock.on('error', (err) => finish({ ok: false, reason: `${what} failed: ${errText(err)}` }));
    }
  });
}

export interface HealthProbeOptions {
  readonly address: string;
  readonly port: number;
  /** Source address of the probes; unset: the kernel picks. */
  readonly localAddress?: string;
  readonly kind: ProbeKind;
  readonly spec: Omit<HealthCheckSpec, 'path'>;
  /** The flag to start from: false for a fresh process, the last known value for an adopted one. */
  readonly initialHealthy: boolean;
  readonly onChange: (healthy: boolean, reason: string) => void;
}

/** Runs probes until stopped; calls onChange only when the healthy flag flips. */
export class HealthProbe {
  private healthy: boolean;
  private passes = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private everHealthy = false;

  constructor(private readonly opts: HealthProbeOptions) {
    this.healthy = opts.initialHealthy;
  }

  start(): void {
    // The first probe comes quickly so a fast-starting instance becomes healthy soon.
    this.schedule(Math.min(this.opts.spec.intervalMs, 100));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    this.timer = null;
    const { address, port, kind, spec } = this.opts;
    const result = await probeOnce(address, port, kind, spec.timeoutMs, this.opts.localAddress);
    if (this.stopped) return;
    if (result.ok) {
      this.passes += 1;
      this.failures = 0;
      if (!this.healthy && this.passes >= spec.healthyThreshold) {
        this.healthy = true;
        this.opts.onChange(true, result.reason);
      }
    } else {
      this.failures += 1;
      this.passes = 0;
      if (this.healthy && this.failures >= spec.unhealthyThreshold) {
        this.healthy = false;
        this.opts.onChange(false, result.reason);
      }
    }
    // Until the instance is healthy for the first time, probe at a brisk startup pace so a
    // new instance joins the gateway within a fraction of a second of becoming ready.
    this.schedule(this.everHealthy || this.healthy ? spec.intervalMs : Math.min(spec.intervalMs, STARTUP_PROBE_MS));
    if (this.healthy) this.everHealthy = true;
  }
}

/** Probe interval before an instance's first healthy verdict. */
const STARTUP_PROBE_MS = 250;
