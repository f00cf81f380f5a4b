/**
 * Hand-written checks for what reaches the supervisor from outside (the watch stream and
 * state.json): every value that becomes a path, an argv or an environment variable is
 * checked here first. Errors are one line and name the field.
 */
import { InputError, checkName, checkZoneName } from '@lanes/spec';
import type { DesiredInstance, EnvironmentNetwork, HealthCheckSpec, InstanceNetwork, NetworkRef, ServiceGroup } from '@lanes/spec';
import { type EnvironmentPlan, checkEgress, checkSecurityGroups, planEnvironment, zoneOfAddress } from '@lanes/network';
import { toEgressRules, toSecurityGroupRules } from './network.js';

/** Instance ids become directory names: no '/', no leading '.', bounded length. */
const INSTANCE_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkInstanceId(field: string, value: unknown): string {
  if (typeof value !== 'string' || !INSTANCE_ID_RE.test(value)) {
    throw new InputError(`${field}: ${describe(value)} is not a valid instance id; use 1-128 characters A-Z, a-z, 0-9, '_', '.', '-', not starting with '.' or '-'`, field);
  }
  return value;
}

function str(field: string, value: unknown, maxLength = 256): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength || value.includes('\0')) {
    throw new InputError(`${field}: ${describe(value)} should be a non-empty string of at most ${maxLength} characters`, field);
  }
  return value;
}

function int(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InputError(`${field}: ${describe(value)} should be an integer from ${min} to ${max}`, field);
  }
  return value;
}

/** Absent (an older control plane): 200-399. */
function statusRange(field: string, value: unknown): readonly [number, number] {
  if (value === undefined) return [200, 399];
  if (!Array.isArray(value) || value.length !== 2) throw new InputError(`${field}: ${describe(value)} should be [low, high]`, field);
  const lo = int(`${field}.0`, value[0], 100, 599);
  const hi = int(`${field}.1`, value[1], lo, 599);
  return [lo, hi];
}

function health(field: string, value: unknown): HealthCheckSpec | null {
  if (value === null) return null;
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object or null`, field);
  const path = str(`${field}.path`, value['path'], 1024);
  if (!path.startsWith('/')) throw new InputError(`${field}.path: ${describe(path)} should start with '/'`, `${field}.path`);
  return {
    path,
    intervalMs: int(`${field}.intervalMs`, value['intervalMs'], 10, 3_600_000),
    timeoutMs: int(`${field}.timeoutMs`, value['timeoutMs'], 10, 600_000),
    healthyThreshold: int(`${field}.healthyThreshold`, value['healthyThreshold'], 1, 100),
    unhealthyThreshold: int(`${field}.unhealthyThreshold`, value['unhealthyThreshold'], 1, 100),
    expectStatus: statusRange(`${field}.expectStatus`, value['expectStatus']),
  };
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const CIDR_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/;

function ipv4(field: string, value: unknown): string {
  if (typeof value !== 'string' || !IPV4_RE.test(value)) throw new InputError(`${field}: ${describe(value)} is not an IPv4 address; use e.g. 10.88.1.5`, field);
  return value;
}

function cidr(field: string, value: unknown): string {
  if (typeof value !== 'string' || !CIDR_RE.test(value)) throw new InputError(`${field}: ${describe(value)} is not an IPv4 CIDR; use e.g. 10.88.0.0/16`, field);
  return value;
}

function list(field: string, value: unknown, maxItems: number): unknown[] {
  if (!Array.isArray(value) || value.length > maxItems) throw new InputError(`${field}: ${describe(value)} should be an array of at most ${maxItems} entries`, field);
  return value;
}

/** Runs a check of @lanes/network and puts `field` in front of its message. */
function within<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new InputError(`${field}: ${message}`, field);
  }
}

/** The plan inputs: envIndex, cidr and zones, checked by computing the plan itself. */
function networkRef(field: string, value: Record<string, unknown>): { ref: NetworkRef; plan: EnvironmentPlan } {
  const envIndex = int(`${field}.envIndex`, value['envIndex'], 1, 254);
  const platform = cidr(`${field}.cidr`, value['cidr']);
  const zones = list(`${field}.zones`, value['zones'], 4).map((z, i) => checkZoneName(`${field}.zones[${i}]`, z));
  const plan = within(field, () => planEnvironment(platform, envIndex, zones));
  return { ref: { envIndex, cidr: platform, zones }, plan };
}

/** An instance's place in its environment's network; null (or absent, as in older state files) is loopback. */
export function parseInstanceNetwork(field: string, value: unknown): InstanceNetwork | null {
  if (value === null || value === undefined) return null;
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object or null`, field);
  const { ref, plan } = networkRef(field, value);
  const address = ipv4(`${field}.address`, value['address']);
  if (zoneOfAddress(plan, address) === null) {
    throw new InputError(`${field}.address: ${address} is not an instance address of environment ${ref.envIndex} (${plan.subnet}, zone ranges ${plan.zones.map((z) => `${z.first}-${z.last}`).join(', ')})`, `${field}.address`);
  }
  return { ...ref, address };
}

function serviceGroup(field: string, value: unknown): ServiceGroup {
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object`, field);
  const service = checkName(`${field}.service`, value['service']);
  const addresses = list(`${field}.addresses`, value['addresses'], 256).map((a, i) => ipv4(`${field}.addresses[${i}]`, a));
  const portsRaw = value['ports'];
  const ports = portsRaw === null ? null : list(`${field}.ports`, portsRaw, 64).map((p, i) => int(`${field}.ports[${i}]`, p, 1, 65_535));
  const fromRaw = value['allowFrom'];
  const allowFrom = fromRaw === null ? null : list(`${field}.allowFrom`, fromRaw, 256).map((n, i) => checkName(`${field}.allowFrom[${i}]`, n));
  const http = value['http'];
  if (typeof http !== 'boolean') throw new InputError(`${field}.http: ${describe(http)} should be true or false`, `${field}.http`);
  return { service, addresses, ports, allowFrom, http };
}

function environmentNetwork(field: string, value: unknown): EnvironmentNetwork {
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object`, field);
  const { ref, plan } = networkRef(field, value);
  const egressRaw = value['egress'];
  const egress = egressRaw === null
    ? null
    : list(`${field}.egress`, egressRaw, 256).map((e, i) => {
        const f = `${field}.egress[${i}]`;
        if (!isRecord(e)) throw new InputError(`${f}: ${describe(e)} should be an object`, f);
        return { cidr: cidr(`${f}.cidr`, e['cidr']), port: e['port'] === null ? null : int(`${f}.port`, e['port'], 1, 65_535) };
      });
  const groups = list(`${field}.groups`, value['groups'], 256).map((g, i) => serviceGroup(`${field}.groups[${i}]`, g));
  const net: EnvironmentNetwork = {
    ...ref,
    tenant: str(`${field}.tenant`, value['tenant']),
    environment: str(`${field}.environment`, value['environment']),
    egress,
    groups,
  };
  // The network package's own checks: addresses inside the subnet, no address in two
  // groups, allowFrom naming known services, egress outside the platform network.
  within(field, () => checkSecurityGroups(plan, toSecurityGroupRules(net.groups)));
  within(field, () => checkEgress(plan, toEgressRules(net.egress)));
  return net;
}

/** Checks the `networks` of a desired message; absent (an older control plane) is none. */
export function parseNetworkList(field: string, value: unknown): EnvironmentNetwork[] {
  if (value === undefined) return [];
  const nets = list(field, value, 254).map((n, i) => environmentNetwork(`${field}[${i}]`, n));
  const seen = new Set<number>();
  for (const [i, n] of nets.entries()) {
    if (seen.has(n.envIndex)) throw new InputError(`${field}[${i}].envIndex: ${n.envIndex} appears twice`, `${field}[${i}].envIndex`);
    seen.add(n.envIndex);
  }
  return nets;
}

/** Checks one desired instance; `field` is its path in the message, e.g. `instances[3]`. */
export function parseDesiredInstance(field: string, value: unknown): DesiredInstance {
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object`, field);
  const argvRaw = value['argv'];
  if (!Array.isArray(argvRaw) || argvRaw.length === 0 || argvRaw.length > 1024) {
    throw new InputError(`${field}.argv: ${describe(argvRaw)} should be a non-empty array of strings`, `${field}.argv`);
  }
  const argv = argvRaw.map((a, i) => {
    if (typeof a !== 'string' || a.includes('\0') || a.length > 65_536) {
      throw new InputError(`${field}.argv[${i}]: ${describe(a)} should be a string without NUL`, `${field}.argv[${i}]`);
    }
    return a;
  });
  if (argv[0] === '') throw new InputError(`${field}.argv[0]: "" should name a program`, `${field}.argv[0]`);
  const envRaw = value['env'];
  if (!isRecord(envRaw)) throw new InputError(`${field}.env: ${describe(envRaw)} should be an object of strings`, `${field}.env`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envRaw)) {
    if (!ENV_NAME_RE.test(k)) throw new InputError(`${field}.env: ${describe(k)} is not a valid variable name`, `${field}.env.${k}`);
    if (typeof v !== 'string' || v.includes('\0')) throw new InputError(`${field}.env.${k}: ${describe(v)} should be a string without NUL`, `${field}.env.${k}`);
    env[k] = v;
  }
  const port = value['port'];
  const listens = value['listens'];
  if (typeof listens !== 'boolean') throw new InputError(`${field}.listens: ${describe(listens)} should be true or false`, `${field}.listens`);
  // Absent in lists from an older control plane (and in older state files): no check port.
  const checkPort = value['checkPort'];
  // true: a free port the supervisor picks; a number: that port (a database member's keeper, whose peers know it).
  if (checkPort !== undefined && typeof checkPort !== 'boolean') int(`${field}.checkPort`, checkPort, 1, 65_535);
  // The sandbox's user: never root (0) — a tenant's program never runs as root.
  const userRaw = value['user'];
  let user: { uid: number; gid: number } | undefined;
  if (userRaw !== undefined) {
    if (typeof userRaw !== 'object' || userRaw === null) throw new InputError(`${field}.user: ${describe(userRaw)} should be { uid, gid }`, `${field}.user`);
    const u = userRaw as Record<string, unknown>;
    user = { uid: int(`${field}.user.uid`, u['uid'], 1, 2 ** 31 - 2), gid: int(`${field}.user.gid`, u['gid'], 1, 2 ** 31 - 2) };
  }
  const limitsRaw = value['limits'];
  let limits: { memoryBytes: number; cpus: number; pids: number } | undefined;
  if (limitsRaw !== undefined) {
    if (typeof limitsRaw !== 'object' || limitsRaw === null) throw new InputError(`${field}.limits: ${describe(limitsRaw)} should be { memoryBytes, cpus, pids }`, `${field}.limits`);
    const l = limitsRaw as Record<string, unknown>;
    const cpus = l['cpus'];
    if (typeof cpus !== 'number' || !(cpus >= 0.01 && cpus <= 1024)) throw new InputError(`${field}.limits.cpus: ${describe(cpus)} should be a number of cores`, `${field}.limits.cpus`);
    limits = { memoryBytes: int(`${field}.limits.memoryBytes`, l['memoryBytes'], 4 * 1024 * 1024, 2 ** 50), cpus, pids: int(`${field}.limits.pids`, l['pids'], 1, 4_194_304) };
  }
  return {
    id: checkInstanceId(`${field}.id`, value['id']),
    tenant: str(`${field}.tenant`, value['tenant']),
    environment: str(`${field}.environment`, value['environment']),
    service: str(`${field}.service`, value['service']),
    release: str(`${field}.release`, value['release']),
    argv,
    env,
    port: port === null ? null : int(`${field}.port`, port, 1, 65_535),
    listens,
    health: health(`${field}.health`, value['health'] ?? null),
    stopGraceMs: int(`${field}.stopGraceMs`, value['stopGraceMs'], 0, 3_600_000),
    network: parseInstanceNetwork(`${field}.network`, value['network']),
    ...(checkPort === true || typeof checkPort === 'number' ? { checkPort: checkPort as true | number } : {}),
    ...(user === undefined ? {} : { user }),
    ...(limits === undefined ? {} : { limits }),
  };
}

/** Checks a desired list: each entry, and that no id appears twice. */
export function parseDesiredList(field: string, value: unknown): DesiredInstance[] {
  if (!Array.isArray(value)) throw new InputError(`${field}: ${describe(value)} should be an array`, field);
  const list = value.map((v, i) => parseDesiredInstance(`${field}[${i}]`, v));
  const seen = new Set<string>();
  for (const [i, d] of list.entries()) {
    if (seen.has(d.id)) throw new InputError(`${field}[${i}].id: ${describe(d.id)} appears twice`, `${field}[${i}].id`);
    seen.add(d.id);
  }
  // Two instances of one environment on one address would each take the other's traffic.
  const addresses = new Map<string, string>();
  for (const [i, d] of list.entries()) {
    if (d.network === null) continue;
    const key = `${d.network.cidr}#${d.network.envIndex}#${d.network.address}`;
    const other = addresses.get(key);
    if (other !== undefined) throw new InputError(`${field}[${i}].network.address: ${d.network.address} is also the address of instance ${other}`, `${field}[${i}].network.address`);
    addresses.set(key, d.id);
  }
  return list;
}

export { isRecord };
