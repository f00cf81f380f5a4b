/**
 * The launcher's side of private networks: which isolation `lanes up` runs with (asked for,
 * or detected), the one warning when environments are not isolated, and the removal of every
 * `lanes-` namespace, link and nftables table when a run ends or a crashed run left them.
 * The kernel work itself belongs to @lanes/network.
 */
import { DEFAULT_PLATFORM_CIDR, MAX_ZONES, NetworkManager, detectIsolation, maxEnvironments, type Isolation, type NetworkObjects } from '@lanes/network';
import { CliError, UsageError } from './errors.js';

export type IsolationRequest = 'auto' | 'netns' | 'none';

export interface ResolvedIsolation {
  readonly mode: 'netns' | 'none';
  /** One sentence: why this mode (detected, or asked for). */
  readonly reason: string;
}

export function parseIsolationRequest(value: string | undefined): IsolationRequest {
  const v = value ?? 'auto';
  if (v !== 'auto' && v !== 'netns' && v !== 'none') throw new UsageError(`--isolation: ${JSON.stringify(value)} is not an isolation mode; use auto, netns or none`);
  return v;
}

/** `--network-cidr`: a /8–/23 IPv4 network; at most MAX_ZONES zones fit an environment's /24. */
export function parseNetworkCidr(value: string | undefined, isolation: IsolationRequest, zones: readonly string[]): string {
  if (value !== undefined && isolation === 'none') throw new UsageError('--network-cidr: only used with --isolation netns or auto; drop it or the --isolation none');
  const cidr = (value ?? DEFAULT_PLATFORM_CIDR).trim();
  try {
    maxEnvironments(cidr);
  } catch (err) {
    throw new UsageError(`--network-cidr: ${(err instanceof Error ? err.message : String(err)).replace(/^cidr: /, '')}`);
  }
  if (isolation === 'netns' && zones.length > MAX_ZONES) {
    throw new UsageError(`--zones: ${zones.length} zones, but isolated environments have room for at most ${MAX_ZONES}; use fewer zones or --isolation none`);
  }
  return cidr;
}

/**
 * auto → what the host supports; netns → fails (one line, the reason) when it cannot;
 * none → none. `detect` is replaceable for tests.
 */
export async function resolveIsolation(
  requested: IsolationRequest,
  zones: readonly string[],
  detect: () => Promise<Isolation> = detectIsolation,
): Promise<ResolvedIsolation> {
  if (requested === 'none') return { mode: 'none', reason: '--isolation none was given' };
  const found = await detect();
  if (requested === 'netns' && found.mode !== 'netns') throw new CliError(`--isolation netns: this host cannot isolate environments: ${found.reason}`);
  if (found.mode === 'netns' && zones.length > MAX_ZONES) {
    // auto on a capable host with many zones: run without isolation rather than fail.
    return { mode: 'none', reason: `${zones.length} zones, and isolated environments have room for at most ${MAX_ZONES}` };
  }
  return found;
}

/** The one line `lanes up` prints when environments are not isolated. */
export function isolationWarning(reason: string): string {
  return `warning: isolation is off (${reason}): environments share the host's loopback network`;
}

/** `isolation   netns (10.88.0.0/16)` in the ready summary (value part). */
export function isolationSummary(mode: 'netns' | 'none', cidr: string | null): string {
  return mode === 'netns' ? `netns (${cidr ?? DEFAULT_PLATFORM_CIDR})` : 'none';
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** "2 namespaces, 5 links and 2 nftables tables", or null when nothing was removed. */
export function describeRemoved(o: NetworkObjects): string | null {
  const parts = [
    o.namespaces.length > 0 ? count(o.namespaces.length, 'namespace') : null,
    o.links.length > 0 ? count(o.links.length, 'link') : null,
    o.tables.length > 0 ? count(o.tables.length, 'nftables table') : null,
  ].filter((p): p is string => p !== null);
  if (parts.length === 0) return null;
  const last = parts.pop();
  return parts.length === 0 ? `${last}` : `${parts.join(', ')} and ${last}`;
}

/**
 * Removes every namespace (killing what still runs inside), link and nftables table with the
 * `lanes-` prefix. Failures become one line naming what could not be done.
 */
export async function removeNetworkObjects(): Promise<NetworkObjects> {
  try {
    return await new NetworkManager().cleanupAll({ killProcesses: true });
  } catch (err) {
    throw new CliError(`cannot remove the platform's network objects (lanes-*): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Cuts (down) or restores (up) the links of every instance of `zone`. */
export async function setZoneLinks(zone: string, up: boolean): Promise<void> {
  const manager = new NetworkManager();
  try {
    await (up ? manager.zoneUp(zone) : manager.zoneDown(zone));
  } catch (err) {
    throw new CliError(`cannot ${up ? 'restore' : 'cut'} the network links of zone ${zone}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
