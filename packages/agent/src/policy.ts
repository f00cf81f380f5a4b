/**
 * The restart policy as a pure function: exponential backoff with jitter, reset after a
 * long enough run, and crash-loop detection over a sliding window. No timers, no I/O.
 */

export interface RestartPolicy {
  /** @default 1000 */
  readonly initialBackoffMs: number;
  /** @default 30000 */
  readonly maxBackoffMs: number;
  /** Fraction of the delay added or removed at random. @default 0.2 */
  readonly jitter: number;
  /** A run at least this long resets the backoff. @default 10000 */
  readonly resetAfterMs: number;
  /** @default 5 */
  readonly crashLoopExits: number;
  /** @default 60000 */
  readonly crashLoopWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  jitter: 0.2,
  resetAfterMs: 10_000,
  crashLoopExits: 5,
  crashLoopWindowMs: 60_000,
});

/** What the policy remembers of an instance between exits (persisted in state.json). */
export interface RestartHistory {
  /** The backoff the next exit waits (before jitter). */
  readonly backoffMs: number;
  /** Exit times (epoch ms) within the crash-loop window. */
  readonly exitTimesMs: readonly number[];
}

export interface RestartDecision {
  readonly delayMs: number;
  readonly history: RestartHistory;
  readonly crashLooping: boolean;
  readonly exitsInWindow: number;
}

export function initialHistory(policy: RestartPolicy): RestartHistory {
  return { backoffMs: policy.initialBackoffMs, exitTimesMs: [] };
}

/**
 * Decides how long to wait before restarting an instance that exited at `nowMs` after
 * running `ranMs` (null when unknown). `random` is in [0, 1).
 */
export function decideRestart(
  history: RestartHistory,
  policy: RestartPolicy,
  ranMs: number | null,
  nowMs: number,
  random: number,
): RestartDecision {
  const backoffMs = ranMs !== null && ranMs >= policy.resetAfterMs ? policy.initialBackoffMs : history.backoffMs;
  const exitTimesMs = [...history.exitTimesMs.filter((t) => nowMs - t < policy.crashLoopWindowMs), nowMs];
  const factor = 1 - policy.jitter + 2 * policy.jitter * random;
  const delayMs = Math.max(0, Math.round(backoffMs * factor));
  return {
    delayMs,
    history: { backoffMs: Math.min(backoffMs * 2, policy.maxBackoffMs), exitTimesMs },
    crashLooping: exitTimesMs.length >= policy.crashLoopExits,
    exitsInWindow: exitTimesMs.length,
  };
}
