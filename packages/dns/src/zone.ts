/**
 * The zone model: a DnsZoneSnapshot from the control plane (or from disk) is validated
 * once, then turned into lookup structures the answer logic reads without further checks.
 * Pure: no I/O, no clocks.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InputError } from '@lanes/spec';
import type { DnsFailoverRecord, DnsHealthCheck, DnsTarget, DnsZoneSnapshot } from '@lanes/spec';

/** Largest number of platform addresses per family: every answer must fit a 512-byte UDP message. */
export const MAX_ADDRESSES = 8;
/** Bounds of a TTL in seconds (one day at most: a failover record must be able to move). */
export const MIN_TTL = 0;
export const MAX_TTL = 86_400;
/** The label of the zone's name server under the apex: `ns.<domain>`. */
export const NS_LABEL = 'ns';

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** True for a lower-case host name of 1-63 character labels, 253 characters at most. */
export function isDnsName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => LABEL_RE.test(l));
}

/** True when `name` is `domain` itself or a name below it. */
export function inZone(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function integer(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InputError(`${field}: ${JSON.stringify(v)} is not an integer ${min}-${max}`, field);
  }
  return v;
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !isDnsName(v)) throw new InputError(`${field}: ${JSON.stringify(v)} is not a lower-case DNS name`, field);
  return v;
}

/**
 * An IPv6 address in the WHATWG URL parser's canonical form (hex groups, `::` compression,
 * an embedded IPv4 tail turned into hex), which the wire codec can write; null when `v` is
 * not an IPv6 address (zone ids such as `%eth0` have no place in DNS).
 */
export function canonicalIPv6(v: string): string | null {
  if (!isIPv6(v) || v.includes('%')) return null;
  try {
    return new URL(`http://[${v}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

function address(v: unknown, field: string): string {
  if (typeof v === 'string' && isIPv4(v)) return v;
  const v6 = typeof v === 'string' ? canonicalIPv6(v) : null;
  if (v6 === null) throw new InputError(`${field}: ${JSON.stringify(v)} is not an IP address`, field);
  return v6;
}

function check(v: unknown, field: string): DnsHealthCheck {
  if (!isRecord(v)) throw new InputError(`${field}: expected an object`, field);
  let url: URL;
  try {
    url = new URL(String(v['url']));
  } catch {
    throw new InputError(`${field}.url: ${JSON.stringify(v['url'])} is not a URL`, `${field}.url`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(`${field}.url: ${JSON.stringify(v['url'])} is not http(s)`, `${field}.url`);
  const intervalMs = integer(v['intervalMs'], `${field}.intervalMs`, 100, 3_600_000);
  const timeoutMs = integer(v['timeoutMs'], `${field}.timeoutMs`, 10, intervalMs);
  return {
    url: url.href,
    intervalMs,
    timeoutMs,
    healthyThreshold: integer(v['healthyThreshold'], `${field}.healthyThreshold`, 1, 10),
    unhealthyThreshold: integer(v['unhealthyThreshold'], `${field}.unhealthyThreshold`, 1, 10),
  };
}

function target(v: unknown, field: string, checkRequired: boolean): DnsTarget {
  if (!isRecord(v)) throw new InputError(`${field}: expected an object`, field);
  const c = v['check'];
  if ((c === null || c === undefined) && checkRequired) throw new InputError(`${field}.check: missing; the primary needs a health check`, `${field}.check`);
  return { address: address(v['address'], `${field}.address`), check: c === null || c === undefined ? null : check(c, `${field}.check`) };
}

/** Checks a candidate snapshot field by field; throws an InputError naming the first bad field. */
export function validateSnapshot(candidate: unknown): DnsZoneSnapshot {
  if (!isRecord(candidate)) throw new InputError('zone: expected an object', 'zone');
  const domain = name(candidate['domain'], 'domain');
  const serial = integer(candidate['serial'], 'serial', 0, 0xffff_ffff);
  const ttl = integer(candidate['ttl'], 'ttl', MIN_TTL, MAX_TTL);
  const addrs = candidate['addresses'];
  if (!isRecord(addrs)) throw new InputError('addresses: expected { v4, v6 }', 'addresses');
  const family = (key: 'v4' | 'v6', canonical: (a: string) => string | null): string[] => {
    const list = addrs[key];
    if (!Array.isArray(list) || list.length > MAX_ADDRESSES) throw new InputError(`addresses.${key}: expected a list of at most ${MAX_ADDRESSES} addresses`, `addresses.${key}`);
    return list.map((a, i) => {
      const c = typeof a === 'string' ? canonical(a) : null;
      if (c === null) throw new InputError(`addresses.${key}.${i}: ${JSON.stringify(a)} is not an IP${key} address`, `addresses.${key}.${i}`);
      return c;
    });
  };
  const v4 = family('v4', (a) => (isIPv4(a) ? a : null));
  const v6 = family('v6', canonicalIPv6);
  const hostsIn = candidate['hosts'];
  if (!Array.isArray(hostsIn)) throw new InputError('hosts: expected a list of names', 'hosts');
  const hosts = hostsIn.map((h, i) => {
    const n = name(h, `hosts.${i}`);
    if (!inZone(n, domain) || n === domain) throw new InputError(`hosts.${i}: ${n} is not below ${domain}`, `hosts.${i}`);
    return n;
  });
  const failoverIn = candidate['failover'];
  if (!Array.isArray(failoverIn)) throw new InputError('failover: expected a list of records', 'failover');
  const failover = failoverIn.map((r, i): DnsFailoverRecord => {
    const field = `failover.${i}`;
    if (!isRecord(r)) throw new InputError(`${field}: expected an object`, field);
    const n = name(r['name'], `${field}.name`);
    if (!inZone(n, domain) || n === domain) throw new InputError(`${field}.name: ${n} is not below ${domain}`, `${field}.name`);
    return {
      name: n,
      ttl: integer(r['ttl'], `${field}.ttl`, MIN_TTL, MAX_TTL),
      primary: target(r['primary'], `${field}.primary`, true),
      secondary: target(r['secondary'], `${field}.secondary`, false),
    };
  });
  return { domain, serial, ttl, addresses: { v4, v6 }, hosts, failover };
}

/** A validated snapshot as lookup structures. */
export interface Zone {
  readonly snapshot: DnsZoneSnapshot;
  readonly domain: string;
  /** `ns.<domain>`: the name server the NS record and the SOA name. */
  readonly nsName: string;
  /** Names answered with the platform addresses: the apex, the name server, every environment host. */
  readonly addressNames: ReadonlySet<string>;
  /** Failover records by name (a name that is also an environment host is left out: the host wins). */
  readonly failover: ReadonlyMap<string, DnsFailoverRecord>;
  /** Every name that exists: those with records and all their ancestors up to the apex (empty non-terminals). */
  readonly existing: ReadonlySet<string>;
}

/** Builds the lookup structures of a validated snapshot. */
export function buildZone(snapshot: DnsZoneSnapshot): Zone {
  const domain = snapshot.domain;
  const nsName = `${NS_LABEL}.${domain}`;
  const addressNames = new Set<string>([domain, nsName, ...snapshot.hosts]);
  const failover = new Map<string, DnsFailoverRecord>();
  for (const r of snapshot.failover) if (!addressNames.has(r.name)) failover.set(r.name, r);
  const existing = new Set<string>();
  for (const n of [...addressNames, ...failover.keys()]) {
    // The name and every ancestor below the apex exist (RFC 8020: an empty non-terminal is not NXDOMAIN).
    for (let cur = n; cur !== domain && cur.length > domain.length; cur = cur.slice(cur.indexOf('.') + 1)) existing.add(cur);
  }
  existing.add(domain);
  return { snapshot, domain, nsName, addressNames, failover, existing };
}
