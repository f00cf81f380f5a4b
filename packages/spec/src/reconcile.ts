/**
 * The environment reconciler's decision, as a pure function: given what the user asked
 * (release, scale, lane) and what exists (instance rows with what supervisors observed),
 * return the plan that moves the world one step closer. It is level-based: run it again
 * on the result and it asks only for what is still missing. Every action carries the
 * sentence that explains it, which becomes an event.
 */
import type { Manifest } from './manifest.js';
import type { Lane } from './names.js';
import type { InstanceState } from './protocol.js';
import { chooseSurplus, chooseZones, effectiveCount } from './placement.js';

export interface InstanceView {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly zone: string;
  readonly desired: 'running' | 'stopped';
  /** Null until the zone's supervisor reports the instance. */
  readonly state: InstanceState | null;
  readonly healthy: boolean;
  readonly createdAt: string;
}

export interface EnvironmentView {
  readonly lane: Lane;
  readonly phase: 'active' | 'deleting';
  /** The release that should be running, with its manifest; null before the first deploy. */
  readonly release: { readonly hash: string; readonly manifest: Manifest } | null;
  /** Instance counts set by `lanes scale`, overriding the manifest. */
  readonly scales: Readonly<Record<string, number>>;
  /** Zones whose supervisors are reporting, in platform order. */
  readonly zones: readonly string[];
  readonly instances: readonly InstanceView[];
  /** `lanes stop|start|restart`: of the whole environment and per service. */
  readonly run?: {
    readonly environment: RunView;
    readonly services: Readonly<Record<string, RunView>>;
  };
}

export interface RunView {
  readonly stopped: boolean;
  /** Instances created before this time are replaced, new ones first (a rolling restart). */
  readonly restartedAt: string | null;
}

export type Action =
  | { readonly type: 'create'; readonly service: string; readonly release: string; readonly zone: string; readonly reason: string }
  | { readonly type: 'retire'; readonly id: string; readonly reason: string }
  | { readonly type: 'forget'; readonly id: string; readonly reason: string };

export interface RolloutView {
  readonly state: 'progressing' | 'complete' | 'failed';
  readonly message: string;
}

export interface Plan {
  readonly actions: readonly Action[];
  readonly rollout: RolloutView | null;
  /** True when nothing of the environment is left and a deleting environment can go. */
  readonly gone: boolean;
}

/** The count asked for a service: the scale override, else the manifest's. */
export function askedCount(service: { name: string; instances: number }, scales: Readonly<Record<string, number>>): number {
  return scales[service.name] ?? service.instances;
}

const isFailing = (i: InstanceView): boolean => i.state === 'crashloop';

export function decideEnvironment(env: EnvironmentView, reportingZones: ReadonlySet<string>): Plan {
  const actions: Action[] = [];
  const running = env.instances.filter((i) => i.desired === 'running');

  // Instances asked to stop disappear from their supervisor's report once stopped.
  for (const i of env.instances) {
    if (i.desired === 'stopped' && i.state === null && reportingZones.has(i.zone)) {
      actions.push({ type: 'forget', id: i.id, reason: `instance ${i.id} stopped` });
    }
  }

  if (env.phase === 'deleting' || env.release === null) {
    if (env.phase === 'deleting') {
      for (const i of running) actions.push({ type: 'retire', id: i.id, reason: `environment is being deleted` });
    }
    const gone = env.phase === 'deleting' && env.instances.every((i) => actions.some((a) => a.type === 'forget' && a.id === i.id));
    return { actions, rollout: null, gone };
  }

  const release = env.release;
  const notes: string[] = [];
  let progressing = false;
  let failed: string | null = null;

  // Instances in a zone that is dark (unavailable or down) still exist and may come back,
  // but they serve nobody: the service is counted, placed and scaled on the live zones only,
  // so their work is rescheduled into the surviving zones. When the zone returns, the copies
  // beyond the asked count are the surplus retired below, most crowded zone first.
  const live = new Set(env.zones);
  for (const svc of release.manifest.services) {
    const runState = env.run?.services[svc.name];
    const stopped = env.run?.environment.stopped === true || runState?.stopped === true;
    const want = stopped ? 0 : effectiveCount(askedCount(svc, env.scales), env.lane);
    const restartedAt = [env.run?.environment.restartedAt, runState?.restartedAt].filter((t): t is string => typeof t === 'string').sort().at(-1);
    // After a restart, instances created before it count as the previous generation: they
    // keep serving until their replacements are healthy, exactly as an older release does.
    const fresh = (i: InstanceView): boolean => restartedAt === undefined || i.createdAt >= restartedAt;
    const mine = running.filter((i) => i.service === svc.name && i.release === release.hash && fresh(i));
    const current = mine.filter((i) => live.has(i.zone));
    const dark = mine.filter((i) => !live.has(i.zone));
    const old = running.filter((i) => i.service === svc.name && (i.release !== release.hash || !fresh(i)));
    const healthy = current.filter((i) => i.healthy);

    if (current.length < want) {
      const perZone = new Map<string, number>();
      for (const i of current) perZone.set(i.zone, (perZone.get(i.zone) ?? 0) + 1);
      const lost = dark.length > 0 ? ` (${dark.length} in dark zone${dark.length > 1 ? 's' : ''} ${[...new Set(dark.map((i) => i.zone))].join(', ')})` : '';
      // A rollout in steps: at most want + max_surge instances of the service run at once
      // (the previous generation's included). Without max_surge, all new ones start at once.
      const surge = svc.maxSurge ?? want;
      const room = old.length === 0 ? want - current.length : Math.max(0, Math.min(want - current.length, want + surge - current.length - old.length));
      for (const zone of chooseZones(room, env.zones, perZone)) {
        actions.push({
          type: 'create',
          service: svc.name,
          release: release.hash,
          zone,
          reason: `service ${svc.name} has ${current.length} of ${want} instances in live zones${lost}; placing one in zone ${zone}, the least loaded`,
        });
      }
    } else if (current.length > want) {
      // Never take away a healthy instance while that would leave fewer healthy than asked.
      const surplus = chooseSurplus(
        current.map((i) => ({ id: i.id, zone: i.zone, healthy: i.healthy, createdAt: i.createdAt })),
        current.length - want,
      );
      let healthyLeft = healthy.length;
      for (const id of surplus) {
        const inst = current.find((i) => i.id === id);
        if (!inst) continue;
        if (inst.healthy) {
          if (healthyLeft - 1 < Math.min(want, healthy.length)) continue;
          healthyLeft--;
        }
        actions.push({ type: 'retire', id, reason: `service ${svc.name} has ${current.length} instances, ${want} asked` });
      }
    }

    if (healthy.length < want && old.length > 0 && !stopped) {
      // Step by step: retire old instances while at least want - max_unavailable stay healthy.
      const floor = want - (svc.maxUnavailable ?? 0);
      let retirable = healthy.length + old.filter((i) => i.healthy).length - floor;
      for (const i of [...old].sort((a, b) => Number(a.healthy) - Number(b.healthy))) {
        if (!i.healthy) {
          actions.push({ type: 'retire', id: i.id, reason: `rolling ${svc.name}: the previous generation's instance is unhealthy` });
        } else if (retirable > 0) {
          retirable--;
          actions.push({ type: 'retire', id: i.id, reason: `rolling ${svc.name}: ${healthy.length} new healthy, keeping at least ${floor} healthy` });
        }
      }
    }
    if (healthy.length >= want) {
      for (const i of old) {
        actions.push({
          type: 'retire',
          id: i.id,
          reason: stopped
            ? `service ${svc.name} is stopped`
            : i.release === release.hash
              ? `service ${svc.name} restarted: its replacements are ready (${healthy.length}/${want} healthy)`
              : `release ${release.hash.slice(0, 12)} of service ${svc.name} is ready (${healthy.length}/${want} healthy); retiring the previous release's instance`,
        });
      }
      if (want > 0) notes.push(`${svc.name}: ${healthy.length}/${want} healthy`);
    } else {
      progressing = true;
      notes.push(`${svc.name}: ${healthy.length}/${want} healthy`);
      const looping = current.find(isFailing);
      if (looping && failed === null) failed = `service ${svc.name} is crash-looping (instance ${looping.id})`;
    }
  }

  // Services the new release no longer has.
  const names = new Set(release.manifest.services.map((s) => s.name));
  for (const i of running) {
    if (!names.has(i.service)) actions.push({ type: 'retire', id: i.id, reason: `service ${i.service} is not in release ${release.hash.slice(0, 12)}` });
  }

  const rollout: RolloutView = failed
    ? { state: 'failed', message: failed }
    : progressing
      ? { state: 'progressing', message: notes.join(', ') }
      : { state: 'complete', message: notes.join(', ') || 'no instances asked' };
  return { actions, rollout, gone: false };
}
