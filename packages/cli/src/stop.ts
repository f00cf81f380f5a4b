/**
 * `lanes down`, and the cleanup `lanes up` does after a crashed run: stops everything a
 * launcher started, working only from files in LANES_HOME (so it works after kill -9 of
 * the launcher). Order: zones frozen by `lanes zone down` are continued (a stopped process
 * cannot act on SIGTERM); each zone supervisor is asked to stop its instances and exit;
 * then gateway, DNS server, control plane and launcher get SIGTERM (SIGKILL after a grace); last,
 * instance processes still alive according to the supervisors' state files are killed.
 */
import { readFile, rm } from 'node:fs/promises';
import { homePaths, instancesFromAgentState, readComponentState, readContext, readJson, writeJsonAtomic, zoneDirs } from './home.js';
import { thawZone } from './freeze.js';
import type { Io } from './io.js';
import { descendants, isAlive, isLauncher, isOurs, signalGroup, startTime, terminate, waitForExit } from './procs.js';

export interface StopOptions {
  /** A pid never to signal: the launcher calling this on itself. */
  readonly selfPid?: number;
  /** SIGTERM → SIGKILL grace for gateway, control plane and launcher. @default 10000 */
  readonly graceMs?: number;
}

/** Returns the sentences describing what was stopped (empty when nothing was running). */
export async function stopPlatform(home: string, io: Io, options: StopOptions = {}): Promise<string[]> {
  const paths = homePaths(home);
  const graceMs = options.graceMs ?? 10_000;
  const stopped: string[] = [];
  const report = (sentence: string): void => {
    stopped.push(sentence);
    io.line(sentence);
  };

  const ctx = await readContext(home);
  // Tell a live launcher to stop supervising before its components go away, so it does
  // not restart them (it re-reads context.json before every restart).
  if (ctx !== null && ctx.state !== 'stopping') {
    const raw = await readJson(paths.context);
    if (typeof raw === 'object' && raw !== null) await writeJsonAtomic(paths.context, { ...raw, state: 'stopping' }).catch(() => undefined);
  }

  const zones = [...new Set([...(ctx?.zones ?? []), ...Object.keys(ctx?.components.agents ?? {}), ...(await zoneDirs(home))])];
  const nodeToken = await readFile(paths.nodeToken, 'utf8').then((t) => t.trim(), () => null);

  // 0. Frozen zones first. Every zone is continued, not only those context.json lists:
  //    SIGCONT does nothing to a running process, and the record may be lost.
  for (const zone of zones) {
    const recorded = ctx?.downZones.find((d) => d.zone === zone);
    const thawed = await thawZone(home, ctx, zone, recorded);
    if (recorded !== undefined && (thawed.supervisors.length > 0 || thawed.instances > 0)) report(`continued frozen zone ${zone}`);
  }

  // 1. Zone supervisors, in parallel: each stops its instances, answers, then exits.
  //    Reported in zone order once all are done, so the output does not depend on timing.
  const perZone = await Promise.all(
    zones.map(async (zone) => {
      const sentences: string[] = [];
      const state = await readComponentState(paths.agentState(zone));
      const pids = new Set<number>();
      if (state && isOurs(state.pid, home)) pids.add(state.pid);
      const fromCtx = ctx?.components.agents[zone];
      if (fromCtx !== undefined && fromCtx !== options.selfPid && isOurs(fromCtx, home)) pids.add(fromCtx);
      for (const pid of pids) {
        let asked = false;
        if (state && state.pid === pid && state.url && nodeToken) asked = await askAgentToShutDown(state.url, nodeToken);
        const how = asked && (await waitForExit(pid, 15_000)) ? 'exited' : await terminate(pid, { graceMs });
        if (how !== 'gone') {
          sentences.push(`stopped zone ${zone} supervisor (pid ${pid})${asked ? ' and its instances' : how === 'killed' ? ' with SIGKILL' : ''}`);
        }
      }
      return sentences;
    }),
  );
  for (const sentence of perZone.flat()) report(sentence);

  // 2. Gateway, control plane, launcher.
  const controlplaneState = await readComponentState(paths.controlplaneState);
  const gatewayState = await readComponentState(paths.gatewayState);
  const dnsState = await readComponentState(paths.dnsState);
  const targets: [string, (number | null | undefined)[]][] = [
    ['gateway', [ctx?.components.gateway, gatewayState?.pid]],
    ['dns server', [ctx?.components.dns, dnsState?.pid]],
    ['control plane', [ctx?.components.controlplane, controlplaneState?.pid]],
  ];
  for (const [label, candidates] of targets) {
    for (const pid of new Set(candidates.filter((p): p is number => typeof p === 'number' && p !== options.selfPid))) {
      if (!isOurs(pid, home)) continue;
      const how = await terminate(pid, { graceMs });
      if (how !== 'gone') report(`stopped ${label} (pid ${pid})${how === 'killed' ? ' with SIGKILL' : ''}`);
    }
  }
  if (ctx !== null && ctx.launcherPid !== options.selfPid && isLauncher(ctx.launcherPid)) {
    // Not the group: a foreground launcher shares its terminal's process group.
    const how = await terminate(ctx.launcherPid, { graceMs, group: false });
    if (how !== 'gone') report(`stopped launcher (pid ${ctx.launcherPid})${how === 'killed' ? ' with SIGKILL' : ''}`);
  }

  // 3. Last resort: instances the supervisors recorded that are still alive.
  let leftovers = 0;
  for (const zone of zones) {
    for (const rec of instancesFromAgentState(await readJson(paths.agentInstances(zone)))) {
      if (!isAlive(rec.pid)) continue;
      const now = startTime(rec.pid);
      if (rec.startTime !== null && now !== null && now !== rec.startTime) continue; // a reused pid
      // A sandboxed instance's pid is runc's: what runs inside (tini, the program) is below it
      // in groups of its own, and outlives a runc that is killed.
      const inside = descendants(rec.pid);
      signalGroup(rec.pid, 'SIGTERM');
      if (!(await waitForExit(rec.pid, 3_000))) signalGroup(rec.pid, 'SIGKILL');
      for (const pid of inside) if (isAlive(pid)) signalGroup(pid, 'SIGKILL');
      leftovers++;
    }
  }
  if (leftovers > 0) report(`stopped ${leftovers} leftover instance process${leftovers === 1 ? '' : 'es'}`);

  // The run is over: its readiness files and context would only mislead the next commands.
  for (const file of [paths.controlplaneState, paths.gatewayState, paths.dnsState, ...zones.map((z) => paths.agentState(z)), paths.context]) {
    await rm(file, { force: true }).catch(() => undefined);
  }
  return stopped;
}

async function askAgentToShutDown(url: string, nodeToken: string): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/v1/shutdown`, {
      method: 'POST',
      headers: { authorization: `Bearer ${nodeToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ stopInstances: true }),
      signal: AbortSignal.timeout(60_000),
    });
    await res.text().catch(() => '');
    // 409: a shutdown is already in progress; waiting for the exit is still right.
    return res.ok || res.status === 409;
  } catch {
    return false;
  }
}
