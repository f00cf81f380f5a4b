/**
 * The API's resource shapes (docs/api.md) as the CLI reads them, with decoders that check
 * what the CLI relies on and say which field of the answer was wrong.
 */
import type { LogLine } from '@lanes/spec';
import { CliError } from './errors.js';

export interface Tenant {
  readonly name: string;
  readonly createdAt: string;
}

export interface Environment {
  readonly tenant: string;
  readonly name: string;
  readonly lane: string;
  readonly phase: string;
  readonly host: string;
  readonly url: string;
  readonly release: string | null;
  readonly createdAt: string;
  /** 'netns' | 'none'; '' from a control plane that predates isolation. */
  readonly isolation: string;
  readonly network: EnvironmentNetwork | null;
}

export interface ReleaseService {
  readonly name: string;
  readonly instances: number;
  readonly http: boolean;
  readonly path: string | null;
}

export interface Release {
  readonly id: string;
  readonly version: number;
  readonly name: string;
  readonly status: string;
  readonly createdAt: string;
  readonly services: readonly ReleaseService[];
}

export interface Service {
  readonly name: string;
  readonly instances: number;
  readonly effectiveInstances: number;
  readonly http: boolean;
  readonly path: string | null;
  readonly ready: number;
  /** A tcp service's platform TCP port on the gateway; null for other services. */
  readonly tcp: { readonly address: string; readonly port: number } | null;
}

export interface Instance {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly zone: string;
  readonly desired: string;
  readonly state: string;
  readonly healthy: boolean;
  readonly pid: number | null;
  readonly address: string | null;
  readonly port: number | null;
  readonly restarts: number;
  readonly message: string;
  readonly lastExitCode: number | null;
}

export interface Rollout {
  readonly release: string;
  readonly state: string;
  readonly message: string;
}

export interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
  readonly time: string;
}

export interface EnvironmentStatus extends Environment {
  readonly services: readonly Service[];
  readonly instances: readonly Instance[];
  readonly rollout: Rollout | null;
  readonly conditions: readonly Condition[];
}

export interface Zone {
  readonly name: string;
  /** ready | unavailable | down */
  readonly state: string;
  readonly address: string | null;
  readonly lastSeenAt: string | null;
}

/** An environment's private network (isolation netns); egress null: any destination outside the platform. */
export interface EnvironmentNetwork {
  readonly subnet: string;
  readonly egressAddress: string;
  readonly egress: readonly { readonly cidr: string; readonly port: number | null }[] | null;
}

export interface LanesEvent {
  readonly id: string;
  readonly time: string;
  readonly tenant: string | null;
  readonly environment: string | null;
  readonly reason: string;
  readonly object: string;
  readonly message: string;
}

type Obj = Record<string, unknown>;

function bad(where: string, expected: string): CliError {
  return new CliError(`unexpected answer from the control plane: ${where} should be ${expected}`);
}

function obj(v: unknown, where: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(where, 'an object');
  return v as Obj; // checked just above: a non-array object
}

function str(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw bad(`${where}.${key}`, 'a string');
  return v;
}

/** Strings that only decorate output: a missing one is shown empty rather than failing. */
function text(o: Obj, key: string): string {
  const v = o[key];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

function optStr(o: Obj, key: string): string | null {
  const v = o[key];
  return typeof v === 'string' ? v : null;
}

function num(o: Obj, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where}.${key}`, 'a number');
  return v;
}

function optNum(o: Obj, key: string): number | null {
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function list(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw bad(where, 'a list');
  return v;
}

/** `{ "items": [...] }` */
export function decodeItems<T>(v: unknown, what: string, decode: (item: unknown, where: string) => T): T[] {
  const o = obj(v, what);
  return list(o['items'], `${what}.items`).map((item, i) => decode(item, `${what}.items[${i}]`));
}

export function decodeTenant(v: unknown, where = 'tenant'): Tenant {
  const o = obj(v, where);
  return { name: str(o, 'name', where), createdAt: text(o, 'createdAt') };
}

export function decodeEnvironment(v: unknown, where = 'environment'): Environment {
  const o = obj(v, where);
  return {
    tenant: str(o, 'tenant', where),
    name: str(o, 'name', where),
    lane: text(o, 'lane'),
    phase: text(o, 'phase'),
    host: text(o, 'host'),
    url: text(o, 'url'),
    release: optStr(o, 'release'),
    createdAt: text(o, 'createdAt'),
    isolation: text(o, 'isolation'),
    network: decodeNetwork(o['network'], `${where}.network`),
  };
}

function decodeNetwork(v: unknown, where: string): EnvironmentNetwork | null {
  if (v === null || v === undefined) return null;
  const o = obj(v, where);
  const egressIn = o['egress'];
  const egress =
    egressIn === null || egressIn === undefined
      ? null
      : list(egressIn, `${where}.egress`).map((e, i) => {
          const eo = obj(e, `${where}.egress[${i}]`);
          return { cidr: str(eo, 'cidr', `${where}.egress[${i}]`), port: optNum(eo, 'port') };
        });
  return { subnet: text(o, 'subnet'), egressAddress: text(o, 'egressAddress'), egress };
}

export function decodeZone(v: unknown, where = 'zone'): Zone {
  const o = obj(v, where);
  return { name: str(o, 'name', where), state: str(o, 'state', where), address: optStr(o, 'address'), lastSeenAt: optStr(o, 'lastSeenAt') };
}

export function decodeRelease(v: unknown, where = 'release'): Release {
  const o = obj(v, where);
  const services = Array.isArray(o['services']) ? o['services'] : [];
  return {
    id: str(o, 'id', where),
    version: num(o, 'version', where),
    name: text(o, 'name'),
    status: text(o, 'status'),
    createdAt: text(o, 'createdAt'),
    services: services.map((s, i) => {
      const so = obj(s, `${where}.services[${i}]`);
      return { name: text(so, 'name'), instances: optNum(so, 'instances') ?? 0, http: so['http'] === true, path: optStr(so, 'path') };
    }),
  };
}

export function decodeService(v: unknown, where = 'service'): Service {
  const o = obj(v, where);
  const instances = optNum(o, 'instances') ?? 0;
  return {
    name: str(o, 'name', where),
    instances,
    effectiveInstances: optNum(o, 'effectiveInstances') ?? instances,
    http: o['http'] === true,
    path: optStr(o, 'path'),
    ready: optNum(o, 'ready') ?? 0,
    tcp: decodeTcp(o['tcp']),
  };
}

/** `{ address, port }`; anything else (absent from an older control plane, null) is none. */
function decodeTcp(v: unknown): Service['tcp'] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Obj; // checked just above: a non-array object
  const address = optStr(o, 'address');
  const port = optNum(o, 'port');
  return address !== null && port !== null ? { address, port } : null;
}

export function decodeInstance(v: unknown, where = 'instance'): Instance {
  const o = obj(v, where);
  return {
    id: str(o, 'id', where),
    service: text(o, 'service'),
    release: text(o, 'release'),
    zone: text(o, 'zone'),
    desired: text(o, 'desired'),
    state: str(o, 'state', where),
    healthy: o['healthy'] === true,
    pid: optNum(o, 'pid'),
    address: optStr(o, 'address'),
    port: optNum(o, 'port'),
    restarts: optNum(o, 'restarts') ?? 0,
    message: text(o, 'message'),
    lastExitCode: optNum(o, 'lastExitCode'),
  };
}

export function decodeEnvironmentStatus(v: unknown, where = 'environment'): EnvironmentStatus {
  const o = obj(v, where);
  const rolloutIn = o['rollout'];
  const rollout =
    rolloutIn === null || rolloutIn === undefined
      ? null
      : (() => {
          const r = obj(rolloutIn, `${where}.rollout`);
          return { release: text(r, 'release'), state: str(r, 'state', `${where}.rollout`), message: text(r, 'message') };
        })();
  const conditions = Array.isArray(o['conditions']) ? o['conditions'] : [];
  return {
    ...decodeEnvironment(v, where),
    services: list(o['services'] ?? [], `${where}.services`).map((s, i) => decodeService(s, `${where}.services[${i}]`)),
    instances: list(o['instances'] ?? [], `${where}.instances`).map((s, i) => decodeInstance(s, `${where}.instances[${i}]`)),
    rollout,
    conditions: conditions.map((c, i) => {
      const co = obj(c, `${where}.conditions[${i}]`);
      return { type: text(co, 'type'), status: text(co, 'status'), reason: text(co, 'reason'), message: text(co, 'message'), time: text(co, 'time') };
    }),
  };
}

export function decodeEvent(v: unknown, where = 'event'): LanesEvent {
  const o = obj(v, where);
  const id = o['id'];
  if (typeof id !== 'string' && typeof id !== 'number') throw bad(`${where}.id`, 'a string or a number');
  return {
    id: String(id),
    time: text(o, 'time'),
    tenant: optStr(o, 'tenant'),
    environment: optStr(o, 'environment'),
    reason: text(o, 'reason'),
    object: text(o, 'object'),
    message: text(o, 'message'),
  };
}

/** One NDJSON line of the log stream; null for lines that are not a LogLine. */
export function decodeLogLine(line: string): LogLine | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Obj; // checked just above
  if (typeof o['line'] !== 'string' || typeof o['instance'] !== 'string') return null;
  return {
    time: optStr(o, 'time'),
    instance: o['instance'],
    service: text(o, 'service'),
    zone: text(o, 'zone'),
    stream: o['stream'] === 'stderr' ? 'stderr' : 'stdout',
    line: o['line'],
  };
}
