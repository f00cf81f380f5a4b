/**
 * The supervisor's state file (`stateDir/state.json`): the last desired list (so instances
 * keep running while the control plane is away) and what is known of each instance's
 * process, so a restarted supervisor re-adopts instead of starting second copies.
 * Written atomically (tmp + rename); read defensively (a bad entry is dropped, not fatal).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DesiredInstance, EnvironmentNetwork, InstanceNetwork } from '@lanes/spec';
import type { RestartHistory } from './policy.js';
import { checkInstanceId, isRecord, parseDesiredList, parseInstanceNetwork, parseNetworkList } from './validate.js';

export interface InstanceRecord {
  readonly id: string;
  readonly pid: number | null;
  /** /proc/<pid>/stat field 22 at spawn; tells our process from a reused pid. */
  readonly startTime: string | null;
  readonly port: number | null;
  /** The CHECK_PORT given to the instance (kept across restarts like `port`); null when it has none. */
  readonly checkPort: number | null;
  readonly restarts: number;
  readonly startedAt: string | null;
  readonly healthy: boolean;
  readonly everHealthy: boolean;
  readonly lastExitCode: number | null;
  readonly lastExitSignal: string | null;
  readonly message: string;
  readonly history: RestartHistory;
  /** The instance's place in its environment's network, so its namespace can be removed even once it is no longer desired. */
  readonly network: InstanceNetwork | null;
}

export interface SupervisorState {
  readonly version: 1;
  readonly desired: readonly DesiredInstance[];
  readonly instances: readonly InstanceRecord[];
  /** The last environment networks, re-applied at start (static stability). */
  readonly networks: readonly EnvironmentNetwork[];
}

export const EMPTY_STATE: SupervisorState = { version: 1, desired: [], instances: [], networks: [] };

export function writeStateFile(file: string, state: SupervisorState): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

function numOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
function strOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** A part of the file that does not parse is dropped, not fatal (the control plane re-sends it). */
function orNull<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

function parseRecord(value: unknown): InstanceRecord | null {
  if (!isRecord(value)) return null;
  let id: string;
  try {
    id = checkInstanceId('id', value['id']);
  } catch {
    return null;
  }
  const pid = numOrNull(value['pid']);
  const h = isRecord(value['history']) ? value['history'] : {};
  const exitTimes = Array.isArray(h['exitTimesMs']) ? h['exitTimesMs'].filter((t): t is number => typeof t === 'number') : [];
  return {
    id,
    pid: pid !== null && Number.isInteger(pid) && pid > 1 ? pid : null,
    startTime: strOrNull(value['startTime']),
    port: numOrNull(value['port']),
    checkPort: numOrNull(value['checkPort']),
    restarts: numOrNull(value['restarts']) ?? 0,
    startedAt: strOrNull(value['startedAt']),
    healthy: value['healthy'] === true,
    everHealthy: value['everHealthy'] === true,
    lastExitCode: numOrNull(value['lastExitCode']),
    lastExitSignal: strOrNull(value['lastExitSignal']),
    message: strOrNull(value['message']) ?? '',
    history: { backoffMs: numOrNull(h['backoffMs']) ?? 0, exitTimesMs: exitTimes },
    network: orNull(() => parseInstanceNetwork('network', value['network'])),
  };
}

/**
 * Reads the state file; a missing file is an empty state. Throws a one-line error when
 * the file exists but cannot be understood, so the caller can decide (move it aside).
 */
export function readStateFile(file: string): SupervisorState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return EMPTY_STATE;
    throw err;
  }
  const raw: unknown = JSON.parse(text);
  if (!isRecord(raw) || raw['version'] !== 1) throw new Error(`state file ${file}: unknown format (expected version 1)`);
  const desired = parseDesiredList('desired', raw['desired'] ?? []);
  const instances = Array.isArray(raw['instances']) ? raw['instances'].map(parseRecord).filter((r): r is InstanceRecord => r !== null) : [];
  const networks = orNull(() => parseNetworkList('networks', raw['networks'])) ?? [];
  return { version: 1, desired, instances, networks };
}
