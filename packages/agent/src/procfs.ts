/**
 * Reads /proc/<pid>/stat so the supervisor can tell "our instance is still running" from
 * "a process that happens to have the same pid now" (pid reuse) and from a zombie.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  /** Field 3: R, S, D, Z, T, ... */
  readonly state: string;
  /** Field 22: start time in clock ticks since boot; with the pid it names one process for the machine's uptime. */
  readonly startTime: string;
  /** Fields 14 + 15: CPU time used (user + system) in clock ticks (USER_HZ, 100 on Linux). */
  readonly cpuTicks: number;
}

export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 1).trim().split(' ');
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return null;
  // Fields 14 and 15: user and system time in clock ticks.
  const cpuTicks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  return { state, startTime, cpuTicks };
}

/** True when `pid` is alive, not a zombie, and is the process that started at `startTime`. */
export function isSameLiveProcess(pid: number, startTime: string | null): boolean {
  if (startTime === null) return false;
  const stat = readProcStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return false;
  return stat.startTime === startTime;
}
