/**
 * Reads /proc/<pid>/stat so the supervisor can tell "our instance is still running" from
 * "a process that happens to have the same pid now" (pid reuse) and from a zombie.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  /** Field 3: R, S, D, Z, T, ... */
  readonly state: string;
  /** Field 22: start time in clock ticks since boot; with the pid it names one process for the machine's uptime. */
  readonly startTime: string;
  /** Fields 14 + 15: CPU time used (user + system) in clock ticks (USER_HZ, 100 on Linux). */
  readonly cpuTicks: number;
  /** Fields 16 + 17: CPU time of its children that have exited and been waited for. */
  readonly childTicks: number;
  /** Field 4: the parent's pid. */
  readonly ppid: number;
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
  const childTicks = Number(fields[13] ?? 0) + Number(fields[14] ?? 0);
  return { state, startTime, cpuTicks, childTicks, ppid: Number(fields[1] ?? 0) };
}

/** Every process's children, read from /proc once (for CPU of whole process trees). */
export function readChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return children;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat === null) continue;
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [Number(name)]);
    else list.push(Number(name));
  }
  return children;
}

/**
 * CPU ticks of `pid` and everything under it, including children already waited for: a
 * sandboxed instance's pid is its runtime's (runc → tini → the program), whose own time is
 * nearly nothing. Monotonic while the root lives (a reaped child's time moves to its parent).
 */
export function treeCpuTicks(pid: number, children: ReadonlyMap<number, readonly number[]>): number | null {
  const root = readProcStat(pid);
  if (root === null) return null;
  let total = 0;
  const seen = new Set<number>();
  const walk = (p: number, stat: ProcStat | null): void => {
    if (stat === null || seen.has(p)) return;
    seen.add(p);
    total += stat.cpuTicks + stat.childTicks;
    for (const c of children.get(p) ?? []) walk(c, readProcStat(c));
  };
  walk(pid, root);
  return total;
}

/** True when `pid` is alive, not a zombie, and is the process that started at `startTime`. */
export function isSameLiveProcess(pid: number, startTime: string | null): boolean {
  if (startTime === null) return false;
  const stat = readProcStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return false;
  return stat.startTime === startTime;
}
