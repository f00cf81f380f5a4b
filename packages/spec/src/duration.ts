import { InputError } from './errors.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `500ms`, `1s`, `2m`, `1h`, `10d` (or a bare number of milliseconds) into milliseconds. */
export function parseDurationMs(value: string | number, field = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return Math.round(value);
  } else {
    const m = DURATION_RE.exec(value.trim());
    if (m) return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  }
  throw new InputError(`${field}: ${JSON.stringify(value)} is not a duration; use e.g. 500ms, 1s, 2m`, field);
}
