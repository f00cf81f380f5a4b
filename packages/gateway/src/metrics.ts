/**
 * Reports the request counts per service to the control plane every couple of seconds
 * (`POST /v1/gateway/report`): the autoscaler's view of live traffic. Best effort: a failed
 * report is logged at debug and its counts are dropped, never retried into a burst.
 */
import type { Logger } from 'pino';
import { request } from 'undici';

/** Requests per service since the previous call. */
export interface TrafficSource {
  take(): { tenant: string; environment: string; service: string; requests: number }[];
}

export interface MetricsReporterOptions {
  readonly apiUrl: string;
  readonly token: () => Promise<string>;
  readonly traffic: TrafficSource;
  readonly logger: Logger;
  /** @default 2000 */
  readonly intervalMs?: number;
}

export class MetricsReporter {
  readonly #opts: MetricsReporterOptions;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #last = Date.now();

  constructor(opts: MetricsReporterOptions) {
    this.#opts = opts;
    this.#intervalMs = opts.intervalMs ?? 2000;
  }

  start(): void {
    this.#timer = setInterval(() => void this.#report(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #report(): Promise<void> {
    const now = Date.now();
    const counts = this.#opts.traffic.take();
    const intervalMs = now - this.#last;
    this.#last = now;
    try {
      const r = await request(`${this.#opts.apiUrl}/v1/gateway/report`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await this.#opts.token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ intervalMs, counts }),
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await r.body.dump();
    } catch (err) {
      this.#opts.logger.debug({ err: (err as Error).message }, 'traffic report failed');
    }
  }
}
