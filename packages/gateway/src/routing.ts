/**
 * The gateway's routing core, pure and in memory: validates a RoutingTable received from
 * the control plane (or read back from disk), compiles it into lookup structures, and
 * answers "which route serves this host and path" and "which endpoint gets the next
 * request" (round robin, skipping endpoints ejected locally after a connection failure).
 * No I/O; the proxy and the watch client build on it.
 */
import net from 'node:net';
import { InputError, isValidName } from '@lanes/spec';
import type { Endpoint, Route, RoutingTable, VirtualHost } from '@lanes/spec';

/** How long an endpoint is skipped after a connection failure. @default 5000 */
export const DEFAULT_EJECT_MS = 5_000;

export interface RouteMatch {
  readonly vhost: VirtualHost;
  readonly route: Route;
}

/** An endpoint with the keys the proxy needs, computed once per table, not per request. */
export interface Upstream {
  readonly endpoint: Endpoint;
  /** `address:port`, the identity used for ejection. */
  readonly key: string;
  /** `http://address:port` (IPv6 in brackets), the identity of the connection pool. */
  readonly origin: string;
}

// ---------------------------------------------------------------------------------------
// Validation

const HOST_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ADDRESS_HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const ZONE_RE = /^[a-z][a-z0-9]{0,7}$/;
// A path prefix is an absolute path of visible ASCII, the same set the manifest allows
// (a stricter rule here would make one service's path reject every tenant's table).
const PREFIX_RE = /^\/[\x21-\x7e]{0,1023}$/;
const INSTANCE_RE = /^[A-Za-z0-9._:-]{1,200}$/;

function fail(field: string, value: unknown, rule: string): never {
  throw new InputError(`${field}: ${describe(value)} ${rule}`, field);
}

function describe(value: unknown): string {
  if (value === undefined) return 'is missing and';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(field: string, value: unknown): Record<string, unknown> {
  if (!isRecord(value)) fail(field, value, 'is not an object');
  return value;
}

function list(field: string, value: unknown): readonly unknown[] {
  if (!Array.isArray(value)) fail(field, value, 'is not an array');
  return value;
}

function name(field: string, value: unknown): string {
  if (typeof value !== 'string' || !isValidName(value)) {
    fail(field, value, "is not a valid name; use 1-30 characters a-z, 0-9 and '-', starting with a letter");
  }
  return value;
}

function validateEndpoint(field: string, value: unknown): Endpoint {
  const e = record(field, value);
  const instance = e['instance'];
  if (typeof instance !== 'string' || !INSTANCE_RE.test(instance)) {
    fail(`${field}.instance`, instance, 'is not an instance id; use 1-200 characters A-Z, a-z, 0-9, ".", "_", ":" and "-"');
  }
  const zone = e['zone'];
  if (typeof zone !== 'string' || !ZONE_RE.test(zone)) {
    fail(`${field}.zone`, zone, 'is not a valid zone name; use 1-8 characters a-z and 0-9, starting with a letter');
  }
  const address = e['address'];
  if (typeof address !== 'string' || (net.isIP(address) === 0 && !ADDRESS_HOST_RE.test(address))) {
    fail(`${field}.address`, address, 'is not an IP address or host name');
  }
  const port = e['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    fail(`${field}.port`, port, 'is not a port; use an integer 1-65535');
  }
  return Object.freeze({ instance, zone, address, port });
}

function validateRoute(field: string, value: unknown): Route {
  const r = record(field, value);
  const pathPrefix = r['pathPrefix'];
  if (typeof pathPrefix !== 'string' || !PREFIX_RE.test(pathPrefix)) {
    fail(`${field}.pathPrefix`, pathPrefix, 'is not a path prefix; use an absolute path of visible ASCII such as "/" or "/api/"');
  }
  const service = name(`${field}.service`, r['service']);
  const endpoints = list(`${field}.endpoints`, r['endpoints']).map((e, i) => validateEndpoint(`${field}.endpoints[${i}]`, e));
  return Object.freeze({ pathPrefix, service, endpoints: Object.freeze(endpoints) });
}

function validateHost(field: string, value: unknown): VirtualHost {
  const h = record(field, value);
  const host = h['host'];
  if (typeof host !== 'string' || !HOST_RE.test(host)) {
    fail(`${field}.host`, host, 'is not a lower-case host name such as "prod.acme.lanes.localhost"');
  }
  const tenant = name(`${field}.tenant`, h['tenant']);
  const environment = name(`${field}.environment`, h['environment']);
  const routes = list(`${field}.routes`, h['routes']).map((r, i) => validateRoute(`${field}.routes[${i}]`, r));
  const seen = new Set<string>();
  routes.forEach((r, i) => {
    if (seen.has(r.pathPrefix)) fail(`${field}.routes[${i}].pathPrefix`, r.pathPrefix, 'appears twice for this host');
    seen.add(r.pathPrefix);
  });
  return Object.freeze({ host, tenant, environment, routes: Object.freeze(routes) });
}

/**
 * Checks the structure of a routing table (hosts, path prefixes, names, addresses, ports)
 * and returns a frozen copy holding only the known fields. Throws an InputError naming
 * the first offending field.
 */
export function validateTable(value: unknown): RoutingTable {
  const t = record('table', value);
  const revision = t['revision'];
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    fail('table.revision', revision, 'is not a revision; use a non-negative integer');
  }
  const generatedAt = t['generatedAt'];
  if (typeof generatedAt !== 'string' || generatedAt.length > 64 || Number.isNaN(Date.parse(generatedAt))) {
    fail('table.generatedAt', generatedAt, 'is not an ISO time');
  }
  const hosts = list('table.hosts', t['hosts']).map((h, i) => validateHost(`table.hosts[${i}]`, h));
  const seen = new Set<string>();
  hosts.forEach((h, i) => {
    if (seen.has(h.host)) fail(`table.hosts[${i}].host`, h.host, 'appears twice in the table');
    seen.add(h.host);
  });
  return Object.freeze({ revision, generatedAt, hosts: Object.freeze(hosts) });
}

// ---------------------------------------------------------------------------------------
// Matching

/**
 * The host of a Host header as the table spells it: lower case, without the port and
 * without a trailing dot. `[::1]:8080` becomes `[::1]`.
 */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end -= 1;
  const bare = end === host.length ? host : host.slice(0, end);
  return bare.toLowerCase();
}

/**
 * True when `prefix` serves the request target `url` (a path, maybe with a query).
 * Matching is by whole path segments: `/api` serves `/api`, `/api/x` and `/api?q`, not
 * `/apix`; `/api/` serves `/api/x` and also `/api`; `/` serves everything.
 */
export function prefixMatches(prefix: string, url: string): boolean {
  const n = prefix.length;
  if (n === 1) return true;
  if (url.startsWith(prefix)) {
    if (prefix.charCodeAt(n - 1) === 47 /* / */ || url.length === n) return true;
    const c = url.charCodeAt(n);
    return c === 47 /* / */ || c === 63 /* ? */;
  }
  // `/api/` also serves `/api` and `/api?q` (compared by hand: no substring per request).
  if (prefix.charCodeAt(n - 1) !== 47) return false;
  if (url.length === n - 1) return prefix.startsWith(url);
  if (url.length < n || url.charCodeAt(n - 1) !== 63 /* ? */) return false;
  for (let i = 0; i < n - 1; i++) if (url.charCodeAt(i) !== prefix.charCodeAt(i)) return false;
  return true;
}

/** A compiled route: the public match plus the mutable round-robin cursor. */
class RouteEntry implements RouteMatch {
  cursor = 0;
  constructor(
    readonly vhost: VirtualHost,
    readonly route: Route,
    readonly upstreams: readonly Upstream[],
  ) {}
}

interface HostEntry {
  readonly vhost: VirtualHost;
  /** Longest prefix first, so the first match is the best one. */
  readonly routes: readonly RouteEntry[];
}

export function endpointKey(endpoint: Endpoint): string {
  return `${endpoint.address}:${endpoint.port}`;
}

function toUpstream(endpoint: Endpoint): Upstream {
  const host = net.isIPv6(endpoint.address) ? `[${endpoint.address}]` : endpoint.address;
  return Object.freeze({ endpoint, key: endpointKey(endpoint), origin: `http://${host}:${endpoint.port}` });
}

export interface RoutingStateOptions {
  /** Clock for ejection periods, replaceable in tests. @default Date.now */
  readonly now?: () => number;
}

/**
 * The current routing table and what the gateway learned locally about its endpoints.
 * `replace` swaps the table atomically (validated first); `match` and `pick` run on every
 * request and allocate nothing.
 */
export class RoutingState {
  #table: RoutingTable | null = null;
  #hosts = new Map<string, HostEntry>();
  /** Endpoint key → time (ms) until which it is skipped. */
  readonly #ejected = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: RoutingStateOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** The table in force, or null before the first one arrived. */
  get table(): RoutingTable | null {
    return this.#table;
  }

  get revision(): number | null {
    return this.#table === null ? null : this.#table.revision;
  }

  /**
   * Validates `candidate` and makes it the table in force. Throws an InputError (and keeps
   * the last good table) when it is invalid. Round-robin positions of routes that survive
   * the change are kept so a busy route does not restart at its first endpoint.
   */
  replace(candidate: unknown): RoutingTable {
    const table = validateTable(candidate);
    const hosts = new Map<string, HostEntry>();
    for (const vhost of table.hosts) {
      const previous = this.#hosts.get(vhost.host);
      const routes = vhost.routes
        .map((route) => {
          const entry = new RouteEntry(vhost, route, Object.freeze(route.endpoints.map(toUpstream)));
          const old = previous?.routes.find((r) => r.route.pathPrefix === route.pathPrefix);
          if (old !== undefined && entry.upstreams.length > 0) entry.cursor = old.cursor % entry.upstreams.length;
          return entry;
        })
        .sort((a, b) => b.route.pathPrefix.length - a.route.pathPrefix.length);
      hosts.set(vhost.host, { vhost, routes });
    }
    this.#table = table;
    this.#hosts = hosts;
    return table;
  }

  /** The virtual host for a Host header value (any case, with or without port). */
  lookupHost(host: string): VirtualHost | null {
    const entry = this.#hosts.get(host) ?? this.#hosts.get(normalizeHost(host));
    return entry === undefined ? null : entry.vhost;
  }

  /** The route serving `url` (a path, maybe with a query) at `host`; longest prefix wins. */
  match(host: string, url: string): RouteMatch | null {
    const entry = this.#hosts.get(host) ?? this.#hosts.get(normalizeHost(host));
    if (entry === undefined) return null;
    for (const route of entry.routes) {
      if (prefixMatches(route.route.pathPrefix, url)) return route;
    }
    return null;
  }

  /**
   * The next endpoint of a matched route in round-robin order, skipping ejected endpoints
   * and `avoidKey` (the one that just failed). When every endpoint is ejected it still
   * returns one (trying beats failing outright). Null only when the route has none.
   */
  pick(match: RouteMatch, avoidKey?: string): Upstream | null {
    if (!(match instanceof RouteEntry)) throw new TypeError('pick() needs a match returned by match()');
    const ups = match.upstreams;
    const n = ups.length;
    if (n === 0) return null;
    const start = match.cursor;
    let fallback: Upstream | null = null;
    for (let i = 0; i < n; i++) {
      const idx = (start + i) % n;
      const up = ups[idx];
      if (up === undefined) continue;
      if (up.key === avoidKey || (this.#ejected.size > 0 && this.isEjected(up.key))) {
        if (fallback === null && up.key !== avoidKey) fallback = up;
        continue;
      }
      match.cursor = (idx + 1) % n;
      return up;
    }
    // All ejected (or the only other choice is the one to avoid): still try one.
    const chosen = fallback ?? ups[start % n] ?? null;
    match.cursor = (start + 1) % n;
    return chosen;
  }

  /** Skips the endpoint for `ms` after a connection failure. */
  eject(endpoint: Endpoint | string, ms: number = DEFAULT_EJECT_MS): void {
    const key = typeof endpoint === 'string' ? endpoint : endpointKey(endpoint);
    this.#ejected.set(key, this.#now() + ms);
  }

  /** True while the endpoint (its `address:port` key or the endpoint) is ejected. */
  isEjected(endpoint: Endpoint | string): boolean {
    const key = typeof endpoint === 'string' ? endpoint : endpointKey(endpoint);
    const until = this.#ejected.get(key);
    if (until === undefined) return false;
    if (until <= this.#now()) {
      this.#ejected.delete(key);
      return false;
    }
    return true;
  }

  /** Every pool origin the current table uses, so the proxy can close the others. */
  origins(): Set<string> {
    const out = new Set<string>();
    for (const host of this.#hosts.values()) {
      for (const route of host.routes) for (const up of route.upstreams) out.add(up.origin);
    }
    return out;
  }
}
