/**
 * Process checks and signals by pid: is it alive (zombies count as gone), does it look like
 * ours (so a recycled pid is never killed), stop it gracefully and then for good.
 */
import { readFileSync, readdirSync } from 'node:fs';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True while the process exists and is not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return typeof err === 'object' && err !== null && 'code' in err && err.code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: "pid (comm) S ..."; comm may contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (not Linux): trust kill(0)
  }
}

/** The state letter of /proc/<pid>/stat (R, S, D, T stopped, Z…), or null when it cannot be read. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/** /proc/<pid>/stat field 22 (start time in clock ticks since boot), or null. */
export function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)" start at field 3; field 22 is the 20th of those.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** The process's argv, or null when it cannot be read (gone, or not Linux). */
export function commandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return null;
  }
}

/**
 * True when `pid` is alive and, where /proc can tell, its command line mentions `marker`
 * (e.g. LANES_HOME), so a pid recycled by an unrelated process is left alone.
 */
export function isOurs(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false;
  const argv = commandLine(pid);
  return argv === null || argv.some((a) => a.includes(marker));
}

/** The launcher is `node …/bin/lanes.js up …`; anything else under that pid (a reused one) is not. */
export function isLauncher(pid: number): boolean {
  if (!isAlive(pid)) return false;
  const argv = commandLine(pid);
  return argv === null || argv.includes('up');
}

/** Signals the process group led by `pid`, falling back to the process alone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
    return;
  } catch {
    /* not a group leader, or gone */
  }
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * SIGTERM, then SIGKILL after `graceMs`. `group` signals the whole process group (for the
 * components, which lead their own). Returns how it ended.
 */
export async function terminate(pid: number, { graceMs = 10_000, group = true } = {}): Promise<'exited' | 'killed' | 'gone'> {
  if (!isAlive(pid)) return 'gone';
  const send = (sig: NodeJS.Signals): void => (group ? signalGroup(pid, sig) : signalProcess(pid, sig));
  send('SIGTERM');
  if (await waitForExit(pid, graceMs)) return 'exited';
  send('SIGKILL');
  await waitForExit(pid, 2_000);
  return 'killed';
}

/** Every live descendant of `pid` (its children, theirs, …), from /proc's parent links. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(text.slice(text.lastIndexOf(')') + 1).trim().split(' ')[1]);
    if (Number.isInteger(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}
