/**
 * LANES_HOME: where the launcher keeps everything (tokens, logs, state of every component)
 * and `context.json`, which tells later commands where the running platform is.
 * Files are read defensively (a crash may leave anything behind) and written atomically.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** The environment variables the CLI reads, parsed once in main. */
export interface CliConfig {
  /** Absolute path of LANES_HOME. @default ~/.lanes */
  readonly home: string;
  /** LANES_API_URL: talk to this control plane instead of the one in context.json. */
  readonly apiUrl: string | null;
  /** LANES_TOKEN: use this token instead of LANES_HOME/admin.token. */
  readonly token: string | null;
}

export function configFromEnv(env: NodeJS.ProcessEnv): CliConfig {
  const home = env['LANES_HOME'] && env['LANES_HOME'].trim() !== '' ? env['LANES_HOME'] : path.join(os.homedir(), '.lanes');
  const apiUrl = env['LANES_API_URL']?.trim() || null;
  const token = env['LANES_TOKEN']?.trim() || null;
  return Object.freeze({ home: path.resolve(home), apiUrl, token });
}

/** Every path the CLI knows inside LANES_HOME. */
export function homePaths(home: string) {
  return {
    home,
    context: path.join(home, 'context.json'),
    adminToken: path.join(home, 'admin.token'),
    nodeToken: path.join(home, 'node.token'),
    logs: path.join(home, 'logs'),
    log: (name: string) => path.join(home, 'logs', `${name}.log`),
    controlplaneState: path.join(home, 'controlplane.json'),
    zones: path.join(home, 'zones'),
    zoneDir: (zone: string) => path.join(home, 'zones', zone),
    agentState: (zone: string) => path.join(home, 'zones', zone, 'agent.json'),
    agentInstances: (zone: string) => path.join(home, 'zones', zone, 'state.json'),
    gatewayDir: path.join(home, 'gateway'),
    gatewayState: path.join(home, 'gateway', 'gateway.json'),
    dnsDir: path.join(home, 'dns'),
    dnsState: path.join(home, 'dns', 'dns.json'),
  } as const;
}

export type LauncherState = 'starting' | 'ready' | 'stopping' | 'failed';

/** A process `lanes zone down` stopped (SIGSTOP), to be continued by `zone up` or `down`. */
export interface FrozenProcess {
  readonly pid: number;
  /** /proc/<pid>/stat field 22 when it was frozen: a reused pid is never signalled. */
  readonly startTime: string | null;
}

/** A zone in a simulated outage: its supervisor and instance process groups are frozen. */
export interface DownZone {
  readonly zone: string;
  readonly since: string;
  readonly supervisors: readonly FrozenProcess[];
  readonly instances: readonly FrozenProcess[];
}

/** context.json: written by the launcher, read by every other command. */
export interface LanesContext {
  readonly state: LauncherState;
  /** Why the start failed, when state is `failed`. */
  readonly message: string | null;
  readonly apiUrl: string | null;
  readonly gatewayUrl: string | null;
  readonly domain: string;
  readonly httpPort: number;
  readonly zones: readonly string[];
  readonly launcherPid: number;
  readonly components: {
    readonly controlplane: number | null;
    readonly gateway: number | null;
    /** The DNS server; absent (null) in a context.json written before it existed. */
    readonly dns: number | null;
    readonly agents: Readonly<Record<string, number>>;
  };
  readonly startedAt: string;
  /** How environments are isolated; null in a context.json written before isolation existed. */
  readonly isolation: 'netns' | 'none' | null;
  /** The platform CIDR environments' subnets come from (netns only). */
  readonly networkCidr: string | null;
  /**
   * Zones `lanes zone down` froze. Written by the zone commands, kept by the launcher when it
   * rewrites the file, read by `zone up` and `down` (which must continue them first).
   */
  readonly downZones: readonly DownZone[];
}

const ZONE_RE = /^[a-z][a-z0-9]{0,7}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function pidOf(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v > 1 ? v : null;
}

/** Reads a JSON file; null when it is missing or not valid JSON (a crash can leave either). */
export async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** Writes JSON atomically (temp file + rename) with mode 0600. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Decodes context.json leniently; null when there is none or it is unusable. */
export function decodeContext(v: unknown): LanesContext | null {
  if (!isRecord(v)) return null;
  const launcherPid = pidOf(v['launcherPid']);
  if (launcherPid === null) return null;
  const state = v['state'];
  const components = isRecord(v['components']) ? v['components'] : {};
  const agentsIn = isRecord(components['agents']) ? components['agents'] : {};
  const agents: Record<string, number> = {};
  for (const [zone, pid] of Object.entries(agentsIn)) {
    const p = pidOf(pid);
    if (p !== null) agents[zone] = p;
  }
  const str = (key: string): string | null => (typeof v[key] === 'string' ? v[key] : null);
  return {
    state: state === 'starting' || state === 'stopping' || state === 'failed' ? state : 'ready',
    message: str('message'),
    apiUrl: str('apiUrl'),
    gatewayUrl: str('gatewayUrl'),
    domain: str('domain') ?? 'lanes.localhost',
    httpPort: typeof v['httpPort'] === 'number' ? v['httpPort'] : 8080,
    zones: Array.isArray(v['zones']) ? v['zones'].filter((z): z is string => typeof z === 'string') : [],
    launcherPid,
    components: { controlplane: pidOf(components['controlplane']), gateway: pidOf(components['gateway']), dns: pidOf(components['dns']), agents },
    startedAt: str('startedAt') ?? '',
    isolation: v['isolation'] === 'netns' || v['isolation'] === 'none' ? v['isolation'] : null,
    networkCidr: str('networkCidr'),
    downZones: decodeDownZones(v['downZones']),
  };
}

/** `downZones` leniently: entries with a valid zone name; frozen processes with a valid pid. */
export function decodeDownZones(v: unknown): DownZone[] {
  if (!Array.isArray(v)) return [];
  const processes = (list: unknown): FrozenProcess[] =>
    (Array.isArray(list) ? list : []).flatMap((f: unknown) => {
      const pid = isRecord(f) ? pidOf(f['pid']) : null;
      return pid === null || !isRecord(f) ? [] : [{ pid, startTime: typeof f['startTime'] === 'string' ? f['startTime'] : null }];
    });
  const out: DownZone[] = [];
  for (const item of v) {
    if (!isRecord(item) || typeof item['zone'] !== 'string' || !ZONE_RE.test(item['zone'])) continue;
    if (out.some((d) => d.zone === item['zone'])) continue;
    out.push({
      zone: item['zone'],
      since: typeof item['since'] === 'string' ? item['since'] : '',
      supervisors: processes(item['supervisors']),
      instances: processes(item['instances']),
    });
  }
  return out;
}

/**
 * Read-modify-write of context.json for the commands that add to it (`zone down`/`up`):
 * fields this CLI version does not know are kept. No-op when there is no context.
 */
export async function updateContext(home: string, change: (raw: Record<string, unknown>) => Record<string, unknown>): Promise<boolean> {
  const file = homePaths(home).context;
  const raw = await readJson(file);
  if (!isRecord(raw)) return false;
  await writeJsonAtomic(file, change(raw));
  return true;
}

export async function readContext(home: string): Promise<LanesContext | null> {
  return decodeContext(await readJson(homePaths(home).context));
}

/** `{ pid, url }` files the components write when they are ready. */
export interface ComponentState {
  readonly pid: number;
  readonly url: string | null;
}

export async function readComponentState(file: string): Promise<ComponentState | null> {
  const v = await readJson(file);
  if (!isRecord(v)) return null;
  const pid = pidOf(v['pid']);
  if (pid === null) return null;
  return { pid, url: typeof v['url'] === 'string' ? v['url'] : null };
}

/** An instance process recorded by a zone supervisor. */
export interface RecordedInstance {
  readonly pid: number;
  /** /proc/<pid>/stat field 22 at spawn when the agent recorded it: tells its process from a reused pid. */
  readonly startTime: string | null;
}

/**
 * The instance processes a zone supervisor recorded in its state file (packages/agent
 * src/state.ts: `{ version: 1, desired, instances: [{ id, pid, startTime, ... }] }`). The file
 * belongs to the agent, so it is read defensively: any `instances` list or map of records
 * with a numeric `pid`.
 */
export function instancesFromAgentState(v: unknown): RecordedInstance[] {
  const found = new Map<number, RecordedInstance>();
  const add = (rec: Record<string, unknown>): void => {
    const pid = pidOf(rec['pid']);
    if (pid !== null && !found.has(pid)) {
      found.set(pid, { pid, startTime: typeof rec['startTime'] === 'string' ? rec['startTime'] : null });
    }
  };
  const visitInstances = (instances: unknown): void => {
    const list = Array.isArray(instances) ? instances : isRecord(instances) ? Object.values(instances) : [];
    for (const item of list) {
      if (!isRecord(item)) continue;
      add(item);
      // An entry may nest its observed state, e.g. { desired, observed: { pid } }.
      for (const nested of Object.values(item)) if (isRecord(nested)) add(nested);
    }
  };
  const walk = (node: unknown, depth: number): void => {
    if (!isRecord(node) || depth > 3) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'instances') visitInstances(value);
      else if (isRecord(value)) walk(value, depth + 1);
    }
  };
  walk(v, 0);
  return [...found.values()];
}

/** Zones that have a directory under LANES_HOME/zones (valid zone names only). */
export async function zoneDirs(home: string): Promise<string[]> {
  try {
    const entries = await readdir(homePaths(home).zones, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && ZONE_RE.test(e.name)).map((e) => e.name);
  } catch {
    return [];
  }
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}
