/**
 * Pure placement functions: how many instances a service gets in a lane, and in which
 * zones new ones go. Spreading is "fill the least-loaded zone first", ties broken by the
 * zone order, so results are deterministic and testable.
 */
import type { Lane } from './names.js';

/**
 * The number of instances a service runs. A double lane keeps a mirror image: at least one
 * instance in each of two distinct zones, so a service asked for 1 runs 2. A service scaled
 * to 0 stays at 0 in either lane.
 */
export function effectiveCount(asked: number, lane: Lane): number {
  if (asked <= 0) return 0;
  return lane === 'double' ? Math.max(asked, 2) : asked;
}

/** Zones for `count` new instances given how many each zone already holds. */
export function chooseZones(count: number, zones: readonly string[], existing: ReadonlyMap<string, number>): string[] {
  if (zones.length === 0) return [];
  const load = new Map(zones.map((z) => [z, existing.get(z) ?? 0]));
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let best = zones[0] as string;
    for (const z of zones) if ((load.get(z) ?? 0) < (load.get(best) ?? 0)) best = z;
    out.push(best);
    load.set(best, (load.get(best) ?? 0) + 1);
  }
  return out;
}

export interface Placed {
  readonly id: string;
  readonly zone: string;
  readonly healthy: boolean;
  readonly createdAt: string;
}

/**
 * Picks `count` instances to remove: unhealthy ones first, then from the most crowded
 * zone, newest first, so what remains stays spread and serving.
 */
export function chooseSurplus(instances: readonly Placed[], count: number): string[] {
  const remaining = [...instances];
  const out: string[] = [];
  for (let i = 0; i < count && remaining.length > 0; i++) {
    const load = new Map<string, number>();
    for (const p of remaining) load.set(p.zone, (load.get(p.zone) ?? 0) + 1);
    remaining.sort((a, b) => {
      if (a.healthy !== b.healthy) return a.healthy ? 1 : -1;
      const dl = (load.get(b.zone) ?? 0) - (load.get(a.zone) ?? 0);
      if (dl !== 0) return dl;
      return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0;
    });
    const victim = remaining.shift() as Placed;
    out.push(victim.id);
  }
  return out;
}
