/**
 * Failover state, pure: the health of every checked target (consecutive successes and
 * failures against the check's thresholds) and the decision which target a failover
 * record answers with. Times and check results come in from the health checker
 * (checker.ts); nothing here waits, connects or reads a clock.
 */
import type { DnsFailoverRecord, DnsHealthCheck, DnsTarget } from '@lanes/spec';

export type Role = 'primary' | 'secondary';

export interface TargetHealth {
  readonly healthy: boolean;
  /** Consecutive successes (0 after a failure). */
  readonly successes: number;
  /** Consecutive failures (0 after a success). */
  readonly failures: number;
  /** What the last check saw, e.g. "HTTP 503" or "timed out after 2000 ms"; null before the first. */
  readonly last: string | null;
}

/**
 * A new target counts as healthy until its checks say otherwise, as Route 53 does: a record
 * answers its primary from the start instead of flapping while the first checks run.
 */
export const INITIAL_HEALTH: TargetHealth = Object.freeze({ healthy: true, successes: 0, failures: 0, last: null });

/** One check result applied to a target's health, with the thresholds of its check. */
export function observe(prev: TargetHealth, ok: boolean, check: DnsHealthCheck, detail: string): TargetHealth {
  if (ok) {
    const successes = prev.successes + 1;
    return { healthy: prev.healthy || successes >= check.healthyThreshold, successes, failures: 0, last: detail };
  }
  const failures = prev.failures + 1;
  return { healthy: prev.healthy && failures < check.unhealthyThreshold, successes: 0, failures, last: detail };
}

export interface Choice {
  readonly role: Role;
  readonly target: DnsTarget;
  /** One sentence: why this target answers. */
  readonly reason: string;
}

/**
 * The primary while it is healthy; else the secondary while it is healthy; else the primary
 * again (fail open: with both down, the primary is the better guess, and an answer that
 * may work beats none). An unchecked target is always healthy.
 */
export function choose(record: DnsFailoverRecord, primaryHealthy: boolean, secondaryHealthy: boolean): Choice {
  const p = record.primary.address;
  const s = record.secondary.address;
  if (primaryHealthy) return { role: 'primary', target: record.primary, reason: `primary ${p} is healthy` };
  if (secondaryHealthy) return { role: 'secondary', target: record.secondary, reason: `primary ${p} is unhealthy and secondary ${s} is healthy` };
  return { role: 'primary', target: record.primary, reason: `primary ${p} and secondary ${s} are both unhealthy; answering the primary (fail open)` };
}

/** The identity of one check: a changed address or check settings start a new history. */
export function targetKey(record: DnsFailoverRecord, role: Role): string {
  const t = record[role];
  return JSON.stringify([record.name, role, t.address, t.check]);
}

/** What a check result changed, for the log line. */
export interface Transition {
  readonly name: string;
  readonly role: Role;
  readonly health: TargetHealth;
  /** The target's health flipped. */
  readonly flipped: boolean;
  /** The record now answers another target than before. */
  readonly before: Choice;
  readonly after: Choice;
}

/** Health of every checked target of the zone, and the record choices that follow from it. */
export class FailoverState {
  #records = new Map<string, DnsFailoverRecord>();
  readonly #health = new Map<string, TargetHealth>();

  /**
   * Takes the records of a new zone: targets whose check is unchanged keep their history;
   * new ones start healthy; the history of removed ones is dropped.
   */
  setRecords(records: Iterable<DnsFailoverRecord>): void {
    this.#records = new Map([...records].map((r) => [r.name, r]));
    const keep = new Set<string>();
    for (const r of this.#records.values()) {
      for (const role of ['primary', 'secondary'] as const) if (r[role].check !== null) keep.add(targetKey(r, role));
    }
    for (const k of [...this.#health.keys()]) if (!keep.has(k)) this.#health.delete(k);
  }

  records(): DnsFailoverRecord[] {
    return [...this.#records.values()];
  }

  health(record: DnsFailoverRecord, role: Role): TargetHealth {
    if (record[role].check === null) return INITIAL_HEALTH;
    return this.#health.get(targetKey(record, role)) ?? INITIAL_HEALTH;
  }

  choice(record: DnsFailoverRecord): Choice {
    return choose(record, this.health(record, 'primary').healthy, this.health(record, 'secondary').healthy);
  }

  /** Applies one check result; null when the record or its check is no longer in the zone (a late result). */
  report(name: string, role: Role, key: string, ok: boolean, detail: string): Transition | null {
    const record = this.#records.get(name);
    const check = record?.[role].check;
    if (record === undefined || check === null || check === undefined || targetKey(record, role) !== key) return null;
    const before = this.choice(record);
    const prev = this.health(record, role);
    const health = observe(prev, ok, check, detail);
    this.#health.set(key, health);
    return { name, role, health, flipped: health.healthy !== prev.healthy, before, after: this.choice(record) };
  }
}
