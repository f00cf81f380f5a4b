/**
 * Freezing a zone for a simulated outage on one machine: SIGSTOP of the zone supervisor's
 * process group and of every instance process group it runs (and of every process those
 * started in groups of their own), SIGCONT to end it. Pids come
 * from context.json and the supervisor's own files, read defensively as `lanes down` does;
 * each is checked alive, ours, and (where a start time was recorded) not a reused pid.
 * A stopped process stays alive for everyone watching it (the launcher's child 'exit' and
 * the supervisor's are not fired), so nothing restarts a frozen component.
 */
import {
  homePaths,
  instancesFromAgentState,
  readComponentState,
  readJson,
  type DownZone,
  type FrozenProcess,
  type LanesContext,
} from './home.js';
import { descendants, isAlive, isOurs, processState, signalGroup, sleep, startTime } from './procs.js';

/** The zone supervisor's pid: from context.json and its readiness file, alive and ours. */
export async function supervisorPids(home: string, ctx: LanesContext | null, zone: string): Promise<number[]> {
  const state = await readComponentState(homePaths(home).agentState(zone));
  const candidates = [ctx?.components.agents[zone], state?.pid].filter((p): p is number => typeof p === 'number');
  return [...new Set(candidates)].filter((pid) => pid !== process.pid && isOurs(pid, home));
}

/** The instance processes the zone supervisor recorded that still run (same start time). */
export async function instanceProcesses(home: string, zone: string): Promise<FrozenProcess[]> {
  const out: FrozenProcess[] = [];
  for (const rec of instancesFromAgentState(await readJson(homePaths(home).agentInstances(zone)))) {
    if (!isAlive(rec.pid)) continue;
    const now = startTime(rec.pid);
    if (rec.startTime !== null && now !== null && now !== rec.startTime) continue; // a reused pid
    out.push({ pid: rec.pid, startTime: now ?? rec.startTime });
  }
  return out;
}

function sameProcess(p: FrozenProcess): boolean {
  if (!isAlive(p.pid)) return false;
  const now = startTime(p.pid);
  return p.startTime === null || now === null || now === p.startTime;
}

async function waitStopped(pids: readonly number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((pid) => isAlive(pid) && processState(pid) !== 'T' && processState(pid) !== 't') && Date.now() < deadline) await sleep(20);
}

export interface Frozen {
  readonly supervisors: readonly FrozenProcess[];
  readonly instances: readonly FrozenProcess[];
}

/**
 * Stops the supervisor first (so it cannot see its instances stop and replace them), then
 * every instance group it recorded, read after the supervisor stopped so none starts in between.
 */
export async function freezeZone(home: string, ctx: LanesContext | null, zone: string): Promise<Frozen> {
  const supervisors: FrozenProcess[] = [];
  for (const pid of await supervisorPids(home, ctx, zone)) {
    signalGroup(pid, 'SIGSTOP');
    supervisors.push({ pid, startTime: startTime(pid) });
  }
  await waitStopped(supervisors.map((p) => p.pid), 2_000);
  const instances = await instanceProcesses(home, zone);
  // What an instance started in groups of its own (a database keeper's PostgreSQL) is on the
  // same machine: it goes dark too, and is recorded so that zone up continues it.
  for (const p of [...instances]) {
    for (const child of descendants(p.pid)) {
      if (!instances.some((x) => x.pid === child)) instances.push({ pid: child, startTime: startTime(child) });
    }
  }
  for (const p of instances) signalGroup(p.pid, 'SIGSTOP');
  await waitStopped(instances.map((p) => p.pid), 2_000);
  return { supervisors, instances };
}

/**
 * Continues a frozen zone: instances first, so the supervisor's health checks find them
 * running, then the supervisor. Signals what was recorded as frozen and what the files name
 * now (SIGCONT to a running process does nothing). Answers what it continued.
 */
export async function thawZone(
  home: string,
  ctx: LanesContext | null,
  zone: string,
  recorded: DownZone | undefined,
): Promise<{ supervisors: number[]; instances: number }> {
  const instances = new Map<number, FrozenProcess>();
  for (const p of recorded?.instances ?? []) if (sameProcess(p)) instances.set(p.pid, p);
  for (const p of await instanceProcesses(home, zone)) instances.set(p.pid, p);
  const supervisors = new Set(await supervisorPids(home, ctx, zone));
  for (const p of recorded?.supervisors ?? []) if (sameProcess(p)) supervisors.add(p.pid);
  for (const pid of instances.keys()) if (!supervisors.has(pid)) signalGroup(pid, 'SIGCONT');
  for (const pid of supervisors) signalGroup(pid, 'SIGCONT');
  return { supervisors: [...supervisors], instances: [...instances.keys()].filter((pid) => !supervisors.has(pid)).length };
}
