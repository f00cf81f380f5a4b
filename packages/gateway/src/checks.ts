/**
 * Active health checks made by the gateway itself, as a load balancer does (an ALB target
 * group's checks): for every endpoint of a route with a `health` spec, a GET of the path
 * every interval, healthy when the status is in the expected range within the timeout.
 * `unhealthyThreshold` failures in a row take the endpoint out of rotation,
 * `healthyThreshold` passes in a row bring it back. A new endpoint starts healthy: the zone
 * supervisor's own checks already passed before the control plane routed it.
 *
 * The checker only reports verdicts (`onChange`); the routing state applies them. In a
 * gateway with several workers the primary checks once and tells every worker.
 */
import http from 'node:http';
import type { HealthCheckSpec } from '@lanes/spec';
import type { CheckTarget } from './routing.js';

interface Tracked {
  target: CheckTarget;
  timer: NodeJS.Timeout | null;
  passes: number;
  fails: number;
  down: boolean;
  /** Bumped when the target is dropped, so a late answer is ignored. */
  generation: number;
}

export interface HealthCheckerOptions {
  /** A verdict changed: `down` true takes the endpoint out of rotation. */
  readonly onChange: (key: string, down: boolean, target: CheckTarget, detail: string) => void;
}

export class HealthChecker {
  readonly #tracked = new Map<string, Tracked>();
  readonly #onChange: HealthCheckerOptions['onChange'];
  #closed = false;

  constructor(options: HealthCheckerOptions) {
    this.#onChange = options.onChange;
  }

  /** Follows a new set of targets: starts checking new ones, stops dropped ones. */
  sync(targets: readonly CheckTarget[]): void {
    if (this.#closed) return;
    const keep = new Set<string>();
    for (const target of targets) {
      keep.add(target.key);
      const t = this.#tracked.get(target.key);
      if (t !== undefined) {
        const changed = !sameCheck(t.target.check, target.check) || t.target.origin !== target.origin;
        t.target = target;
        if (changed) this.#schedule(t, 0);
        continue;
      }
      const fresh: Tracked = { target, timer: null, passes: 0, fails: 0, down: false, generation: 0 };
      this.#tracked.set(target.key, fresh);
      this.#schedule(fresh, Math.random() * Math.min(target.check.intervalMs, 1000));
    }
    for (const [key, t] of this.#tracked) {
      if (keep.has(key)) continue;
      if (t.timer !== null) clearTimeout(t.timer);
      t.generation++;
      this.#tracked.delete(key);
    }
  }

  /** Endpoints currently checked down. */
  down(): string[] {
    return [...this.#tracked.values()].filter((t) => t.down).map((t) => t.target.key);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#tracked.values()) {
      if (t.timer !== null) clearTimeout(t.timer);
      t.generation++;
    }
    this.#tracked.clear();
  }

  #schedule(t: Tracked, delayMs: number): void {
    if (t.timer !== null) clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      t.timer = null;
      void this.#check(t);
    }, delayMs);
    t.timer.unref();
  }

  async #check(t: Tracked): Promise<void> {
    const gen = t.generation;
    const { check, origin } = t.target;
    const result = await probe(`${origin}${check.path}`, check);
    if (this.#closed || gen !== t.generation || this.#tracked.get(t.target.key) !== t) return;
    if (result.ok) {
      t.passes++;
      t.fails = 0;
      if (t.down && t.passes >= check.healthyThreshold) {
        t.down = false;
        this.#onChange(t.target.key, false, t.target, result.detail);
      }
    } else {
      t.fails++;
      t.passes = 0;
      if (!t.down && t.fails >= check.unhealthyThreshold) {
        t.down = true;
        this.#onChange(t.target.key, true, t.target, result.detail);
      }
    }
    this.#schedule(t, check.intervalMs);
  }
}

function sameCheck(a: HealthCheckSpec, b: HealthCheckSpec): boolean {
  return (
    a.path === b.path &&
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.healthyThreshold === b.healthyThreshold &&
    a.unhealthyThreshold === b.unhealthyThreshold &&
    a.expectStatus[0] === b.expectStatus[0] &&
    a.expectStatus[1] === b.expectStatus[1]
  );
}

/** One check: a GET on a fresh connection, its body discarded. */
function probe(url: string, check: HealthCheckSpec): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok, detail });
    };
    const req = http.get(url, { agent: false, headers: { 'user-agent': 'lanes-gateway-health/1', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const ok = status >= check.expectStatus[0] && status <= check.expectStatus[1];
      done(ok, ok ? `answered ${status}` : `answered ${status}, expected ${check.expectStatus[0]}-${check.expectStatus[1]}`);
      res.on('error', () => undefined);
    });
    const timer = setTimeout(() => {
      req.destroy();
      done(false, `no answer within ${check.timeoutMs} ms`);
    }, check.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  });
}
