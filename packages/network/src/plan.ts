/**
 * The address plan and the names of every kernel object, as pure functions: one platform
 * CIDR carved into a /24 per environment, each /24 cut into one 64-address slice per zone;
 * the last /24 of the platform CIDR is the pool of egress addresses. Everything here is
 * validated so that nothing unchecked reaches argv or an nftables script.
 */
import { createHash } from 'node:crypto';
import { ConflictError, InputError, checkZoneName } from '@lanes/spec';

/** Default platform CIDR; environment n gets 10.88.n.0/24. */
export const DEFAULT_PLATFORM_CIDR = '10.88.0.0/16';
/** Default prefix of every kernel object the platform creates. */
export const DEFAULT_PREFIX = 'lanes-';
/** A zone owns a 64-address slice of its environment's /24, so at most 4 zones. */
export const MAX_ZONES = 4;
const SLICE = 64;
/** Usable slots per zone: the slice minus 2 addresses at each end (net/gateway, probe/broadcast). */
export const SLOTS_PER_ZONE = SLICE - 4;

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Default names after `lanes-` start with br, v, host, probe or a digit; test prefixes stay clear of them. */
const PREFIX_RE = /^lanes-([txyz][a-z]?)?$/;
/** Instance ids as the control plane makes them; no path separators, spaces or quotes. */
const INSTANCE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export interface ZonePlan {
  readonly name: string;
  /** 0-based position of the zone in the platform's zone order. */
  readonly index: number;
  /** First and last address instances of this zone may use. */
  readonly first: string;
  readonly last: string;
}

/** Everything the network layer needs to know about one environment, computed once. */
export interface EnvironmentPlan {
  readonly index: number;
  /** Name prefix of every kernel object (`lanes-`). */
  readonly prefix: string;
  /** The whole platform's network, e.g. 10.88.0.0/16. */
  readonly platformCidr: string;
  /** This environment's network, e.g. 10.88.3.0/24. */
  readonly subnet: string;
  /** Host side of the environment's bridge: the gateway's link, instances' default route. */
  readonly gatewayAddress: string;
  /** Second host address on the bridge: zone supervisors' health probes come from it. */
  readonly supervisorAddress: string;
  /** Source address of the environment's outbound connections (SNAT). */
  readonly egressAddress: string;
  readonly bridge: string;
  /** The platform's nftables tables in the host (one `inet`, one `bridge`, shared by all environments). */
  readonly hostTable: string;
  /** This environment's chains in the host's `inet` table. */
  readonly chains: { readonly forward: string; readonly egress: string; readonly nat: string };
  readonly zones: readonly ZonePlan[];
}

export interface PlanOptions {
  /** Name prefix; `lanes-`, or for tests and benchmarks `lanes-` plus t, x, y or z and an optional letter. @default 'lanes-' */
  readonly prefix?: string;
}

/** Parses dotted IPv4 into an unsigned 32-bit number; InputError naming `field` otherwise. */
export function parseIpv4(field: string, value: unknown): number {
  if (typeof value !== 'string' || !IPV4_RE.test(value)) {
    throw new InputError(`${field}: ${JSON.stringify(value)} is not an IPv4 address; use e.g. 10.88.1.5`, field);
  }
  return value.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export interface Cidr {
  readonly base: number;
  readonly length: number;
  readonly text: string;
}

/** Parses `a.b.c.d/len`; the address must be the network's first address. */
export function parseCidr(field: string, value: unknown, minLength = 0, maxLength = 32): Cidr {
  const text = typeof value === 'string' ? value : '';
  const slash = text.indexOf('/');
  const lenText = slash < 0 ? '' : text.slice(slash + 1);
  if (slash < 0 || !/^\d{1,2}$/.test(lenText)) {
    throw new InputError(`${field}: ${JSON.stringify(value)} is not a CIDR; use e.g. 10.88.0.0/16`, field);
  }
  const base = parseIpv4(field, text.slice(0, slash));
  const length = Number(lenText);
  if (length < minLength || length > maxLength) {
    throw new InputError(`${field}: ${JSON.stringify(value)} has prefix /${length}; use /${minLength} to /${maxLength}`, field);
  }
  const size = 2 ** (32 - length);
  if (base % size !== 0) {
    throw new InputError(`${field}: ${JSON.stringify(value)} has host bits set; use ${formatIpv4(base - (base % size))}/${length}`, field);
  }
  return { base, length, text: `${formatIpv4(base)}/${length}` };
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return address >= cidr.base && address < cidr.base + 2 ** (32 - cidr.length);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}

export function checkPrefix(value: unknown): string {
  if (typeof value !== 'string' || !PREFIX_RE.test(value)) {
    throw new InputError(`prefix: ${JSON.stringify(value)} is not allowed; use "lanes-" (or, for tests, "lanes-" plus t, x, y or z and an optional letter)`, 'prefix');
  }
  return value;
}

export function checkInstanceId(value: unknown): string {
  if (typeof value !== 'string' || !INSTANCE_ID_RE.test(value)) {
    throw new InputError(`instance.id: ${JSON.stringify(value)} is not a valid instance id; use 1-63 characters A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit`, 'instance.id');
  }
  return value;
}

/** How many environments a platform CIDR holds: one /24 each, the last /24 is the egress pool. */
export function maxEnvironments(cidr: string): number {
  const c = parseCidr('cidr', cidr, 8, 23);
  return Math.min(2 ** (24 - c.length) - 2, 254);
}

/**
 * The plan of environment `index` (1-based, allocated by the control plane) in platform
 * `cidr`, with `zones` in platform order (a zone's slice follows its position).
 */
export function planEnvironment(cidr: string, index: number, zones: readonly string[], opts: PlanOptions = {}): EnvironmentPlan {
  const platform = parseCidr('cidr', cidr, 8, 23);
  const max = maxEnvironments(platform.text);
  if (!Number.isInteger(index) || index < 1 || index > max) {
    throw new InputError(`index: ${JSON.stringify(index)} is out of range; platform ${platform.text} holds environments 1-${max}`, 'index');
  }
  if (zones.length === 0 || zones.length > MAX_ZONES) {
    throw new InputError(`zones: ${zones.length} zones given; use 1-${MAX_ZONES}`, 'zones');
  }
  zones.forEach((z, i) => checkZoneName(`zones[${i}]`, z));
  if (new Set(zones).size !== zones.length) throw new InputError(`zones: ${JSON.stringify(zones)} names a zone twice`, 'zones');
  const prefix = checkPrefix(opts.prefix ?? DEFAULT_PREFIX);
  const base = platform.base + index * 256;
  const pool = platform.base + (2 ** (32 - platform.length) - 256);
  return Object.freeze({
    index,
    prefix,
    platformCidr: platform.text,
    subnet: `${formatIpv4(base)}/24`,
    gatewayAddress: formatIpv4(base + 1),
    supervisorAddress: formatIpv4(base + 254),
    egressAddress: formatIpv4(pool + index),
    bridge: `${prefix}br${index}`,
    hostTable: `${prefix}host`,
    chains: Object.freeze({ forward: `fwd_${index}`, egress: `egress_${index}`, nat: `nat_${index}` }),
    zones: Object.freeze(
      zones.map((name, k) => Object.freeze({ name, index: k, first: formatIpv4(base + k * SLICE + 2), last: formatIpv4(base + k * SLICE + SLICE - 3) })),
    ),
  });
}

/** The egress address of environment `index`: that index within the platform's last /24. */
export function egressAddress(cidr: string, index: number): string {
  const platform = parseCidr('cidr', cidr, 8, 23);
  return formatIpv4(platform.base + 2 ** (32 - platform.length) - 256 + index);
}

export function zonePlan(plan: EnvironmentPlan, zone: string): ZonePlan {
  const z = plan.zones.find((candidate) => candidate.name === zone);
  if (!z) throw new InputError(`zone: ${JSON.stringify(zone)} is not a zone of environment ${plan.index}; use one of ${plan.zones.map((x) => x.name).join(', ')}`, 'zone');
  return z;
}

/** Address of `slot` (0..59) in `zone`'s slice. */
export function instanceAddress(plan: EnvironmentPlan, zone: string, slot: number): string {
  const z = zonePlan(plan, zone);
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS_PER_ZONE) {
    throw new InputError(`slot: ${JSON.stringify(slot)} is out of range; use 0-${SLOTS_PER_ZONE - 1}`, 'slot');
  }
  return formatIpv4(parseIpv4('first', z.first) + slot);
}

/** The zone whose slice holds `address`, or null when it is no instance address of the plan. */
export function zoneOfAddress(plan: EnvironmentPlan, address: string): string | null {
  const a = parseIpv4('address', address);
  for (const z of plan.zones) {
    if (a >= parseIpv4('first', z.first) && a <= parseIpv4('last', z.last)) return z.name;
  }
  return null;
}

/** The lowest address of `zone` not in `used`; ConflictError when the zone's slice is full. */
export function allocateAddress(plan: EnvironmentPlan, zone: string, used: Iterable<string>): string {
  const taken = new Set(used);
  for (let slot = 0; slot < SLOTS_PER_ZONE; slot++) {
    const candidate = instanceAddress(plan, zone, slot);
    if (!taken.has(candidate)) return candidate;
  }
  throw new ConflictError(`zone ${zone} of environment ${plan.index} has no free address: all ${SLOTS_PER_ZONE} are in use`);
}

/** Names of one instance's kernel objects: its namespace and the host side of its veth. */
export interface InstanceNames {
  readonly netns: string;
  readonly veth: string;
  /** MAC of the instance's eth0, derived from its address so anti-spoofing can pin it. */
  readonly mac: string;
}

export function instanceNames(plan: EnvironmentPlan, id: string, address: string): InstanceNames {
  checkInstanceId(id);
  const a = parseIpv4('address', address);
  // Interface names are at most 15 bytes: the prefix, 'v' and as many hash digits as fit.
  const hashLength = 15 - plan.prefix.length - 1;
  const hash = createHash('sha256').update(`${plan.index}/${id}`).digest('hex').slice(0, hashLength);
  const bytes = [24, 16, 8, 0].map((s) => (Math.floor(a / 2 ** s) % 256).toString(16).padStart(2, '0'));
  return { netns: `${plan.prefix}${plan.index}-${id}`, veth: `${plan.prefix}v${hash}`, mac: ['02', '6c', ...bytes].join(':') };
}

/** Throws unless `address` is an instance address of `zone` in the plan. */
export function checkInstanceAddress(plan: EnvironmentPlan, zone: string, address: string): void {
  const z = zonePlan(plan, zone);
  const a = parseIpv4('address', address);
  if (a < parseIpv4('first', z.first) || a > parseIpv4('last', z.last)) {
    throw new InputError(`address: ${address} is not in zone ${zone}'s range ${z.first}-${z.last} of environment ${plan.index}; use instanceAddress() or allocateAddress()`, 'address');
  }
}
