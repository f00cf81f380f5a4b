/**
 * The gateway's routing core, pure and in memory: validates a RoutingTable received from
 * the control plane (or read back from disk), compiles it into lookup structures, and
 * answers "which route serves this host and path" and "which endpoint gets the next
 * request" (round robin, skipping endpoints ejected locally after a connection failure).
 * No I/O; the proxy and the watch client build on it.
 */
import net from 'node:net';
import { InputError, isDefaultEdge, isValidName, OUTLIER_DEFAULTS, parseEdgeSettings } from '@lanes/spec';
import type { EdgeSettings } from '@lanes/spec';
import { StatsRegistry } from './stats.js';
import type { ServiceStats } from './stats.js';
import type { BalanceAlgorithm, Endpoint, HealthCheckSpec, OutlierSpec, Route, RoutingTable, StickySpec, VirtualHost } from '@lanes/spec';
import type { PrimaryCheckSpec, TcpRoute, TlsMaterial } from '@lanes/spec';

/** How long an endpoint is skipped after a connection failure. @default 5000 */
export const DEFAULT_EJECT_MS = 5_000;

export interface RouteMatch {
  readonly vhost: VirtualHost;
  readonly route: Route;
  /** The service's live figures, counted by the proxy. */
  readonly stats: ServiceStats;
}

/**
 * What the gateway learns about one endpoint while serving it: requests in flight (least
 * outstanding), consecutive failures and ejections (outlier detection), and the verdict of
 * its own active health check. One object per `address:port`, kept across table changes,
 * mutated in place so that the hot path needs no lookup.
 */
export class EndpointState {
  /** Requests sent to it and not finished. */
  outstanding = 0;
  /** Connection failures or 5xx answers in a row. */
  failures = 0;
  /** Ejected until this time (ms); 0: not ejected. */
  ejectedUntil = 0;
  /** Ejections so far; each one doubles the next period, decaying while it behaves. */
  ejections = 0;
  lastEjectionEnd = 0;
  /** The gateway's own health check says it is down. */
  checkDown = false;
  /** The instance behind the address: another instance on a recycled address:port starts afresh. */
  constructor(
    readonly key: string,
    readonly instance: string = '',
  ) {}
}

/** An endpoint with the keys the proxy needs, computed once per table, not per request. */
export interface Upstream {
  readonly endpoint: Endpoint;
  /** `address:port`, the identity used for ejection. */
  readonly key: string;
  /** `http://address:port` (IPv6 in brackets), the identity of the connection pool. */
  readonly origin: string;
  readonly state: EndpointState;
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
  const balance = r['balance'] ?? 'round_robin';
  if (balance !== 'round_robin' && balance !== 'least_outstanding') fail(`${field}.balance`, balance, 'is not "round_robin" or "least_outstanding"');
  // Absent: the gateway's own upstream headers timeout applies.
  const timeoutMs = r['timeoutMs'];
  if (timeoutMs !== undefined && !isInt(timeoutMs, 10, 3_600_000)) fail(`${field}.timeoutMs`, timeoutMs, 'is not a timeout; use an integer 10-3600000');
  return Object.freeze({
    pathPrefix,
    service,
    endpoints: Object.freeze(endpoints),
    balance: balance as BalanceAlgorithm,
    sticky: validateSticky(`${field}.sticky`, r['sticky']),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    health: validateHealth(`${field}.health`, r['health']),
    outlier: validateOutlier(`${field}.outlier`, r['outlier']),
  });
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

const COOKIE_RE = /^[A-Za-z0-9_-]{1,64}$/;

function validateSticky(field: string, value: unknown): StickySpec | null {
  if (value === undefined || value === null) return null;
  const v = record(field, value);
  if (typeof v['cookie'] !== 'string' || !COOKIE_RE.test(v['cookie'])) fail(`${field}.cookie`, v['cookie'], 'is not a cookie name of letters, digits, _ and -');
  const ttlMs = v['ttlMs'] ?? null;
  if (ttlMs !== null && !isInt(ttlMs, 1000, 10 * 365 * 86_400_000)) fail(`${field}.ttlMs`, ttlMs, 'is not a lifetime in ms (at least 1000) or null');
  return Object.freeze({ cookie: v['cookie'], ttlMs: ttlMs as number | null });
}

function validateHealth(field: string, value: unknown): HealthCheckSpec | null {
  if (value === undefined || value === null) return null;
  const v = record(field, value);
  if (typeof v['path'] !== 'string' || !PREFIX_RE.test(v['path'])) fail(`${field}.path`, v['path'], 'is not an absolute path');
  const num = (k: string, min: number, max: number): number => {
    const x = v[k];
    if (!isInt(x, min, max)) fail(`${field}.${k}`, x, `is not an integer ${min}-${max}`);
    return x;
  };
  const expect = v['expectStatus'] ?? [200, 399];
  if (!Array.isArray(expect) || expect.length !== 2 || !isInt(expect[0], 100, 599) || !isInt(expect[1], expect[0] as number, 599)) {
    fail(`${field}.expectStatus`, expect, 'is not a status range [low, high]');
  }
  return Object.freeze({
    path: v['path'],
    intervalMs: num('intervalMs', 100, 3_600_000),
    timeoutMs: num('timeoutMs', 10, 600_000),
    healthyThreshold: num('healthyThreshold', 1, 100),
    unhealthyThreshold: num('unhealthyThreshold', 1, 100),
    expectStatus: Object.freeze([expect[0], expect[1]]) as readonly [number, number],
  });
}

function validateOutlier(field: string, value: unknown): OutlierSpec {
  if (value === undefined || value === null) return OUTLIER_DEFAULTS;
  const v = record(field, value);
  const num = (k: keyof OutlierSpec, min: number, max: number): number => {
    const x = v[k] ?? OUTLIER_DEFAULTS[k];
    if (!isInt(x, min, max)) fail(`${field}.${k}`, x, `is not an integer ${min}-${max}`);
    return x;
  };
  return Object.freeze({
    consecutiveFailures: num('consecutiveFailures', 1, 1000),
    baseEjectionMs: num('baseEjectionMs', 0, 3_600_000),
    maxEjectionMs: num('maxEjectionMs', 0, 3_600_000),
    maxEjectedPercent: num('maxEjectedPercent', 0, 100),
  });
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
  const edge = validateEdge(`${field}.edge`, h['edge']);
  return Object.freeze({ host, tenant, environment, routes: Object.freeze(routes), ...(edge === undefined ? {} : { edge }), tls: validateTls(`${field}.tls`, h['tls']) });
}

const PEM_MAX_CHARS = 65_536;

/**
 * The host's certificate and key (tls.ts builds the TLS context from them); absent: null,
 * the host is not served over HTTPS. Only the shape is checked here; whether the key fits
 * the certificate is found when the context is built. Errors never quote the PEMs.
 */
function validateTls(field: string, value: unknown): TlsMaterial | null {
  if (value === undefined || value === null) return null;
  const v = record(field, value);
  const { certPem, keyPem, source, notAfter } = v;
  if (typeof certPem !== 'string' || certPem.length > PEM_MAX_CHARS || !certPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new InputError(`${field}.certPem: is not a PEM certificate of at most ${PEM_MAX_CHARS} characters`, `${field}.certPem`);
  }
  if (typeof keyPem !== 'string' || keyPem.length > PEM_MAX_CHARS || !/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(keyPem)) {
    throw new InputError(`${field}.keyPem: is not an unencrypted PEM private key of at most ${PEM_MAX_CHARS} characters`, `${field}.keyPem`);
  }
  if (source !== 'platform' && source !== 'custom') fail(`${field}.source`, source, 'is not "platform" or "custom"');
  if (typeof notAfter !== 'string' || notAfter.length > 64 || Number.isNaN(Date.parse(notAfter))) fail(`${field}.notAfter`, notAfter, 'is not an ISO time');
  return Object.freeze({ certPem, keyPem, source, notAfter });
}

/** The environment's access control (access.ts applies it); absent or default: left out. */
function validateEdge(field: string, value: unknown): EdgeSettings | undefined {
  if (value === undefined || value === null) return undefined;
  const edge = parseEdgeSettings(value, field);
  return isDefaultEdge(edge) ? undefined : edge;
}

// TCP routes (tcp.ts serves them)

const MAX_CIDRS = 1_000;

function validateCidrs(field: string, value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const items = list(field, value);
  if (items.length > MAX_CIDRS) fail(field, `${items.length} entries`, `has more than ${MAX_CIDRS} entries`);
  return Object.freeze(
    items.map((c, i) => {
      const slash = typeof c === 'string' ? c.lastIndexOf('/') : -1;
      const address = typeof c === 'string' ? c.slice(0, slash) : '';
      const bits = typeof c === 'string' ? c.slice(slash + 1) : '';
      const family = net.isIP(address);
      if (typeof c !== 'string' || slash === -1 || family === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) {
        fail(`${field}[${i}]`, c, 'is not a CIDR such as "10.0.0.0/8" or "2001:db8::/32"');
      }
      return c;
    }),
  );
}

function validatePrimaryCheck(field: string, value: unknown): PrimaryCheckSpec | null {
  if (value === undefined || value === null) return null;
  const v = record(field, value);
  const path = v['path'];
  if (typeof path !== 'string' || !PREFIX_RE.test(path)) fail(`${field}.path`, path, 'is not an absolute path of visible ASCII such as "/primary"');
  const intervalMs = v['intervalMs'];
  if (typeof intervalMs !== 'number' || !Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 3_600_000) fail(`${field}.intervalMs`, intervalMs, 'is not an interval; use an integer 100-3600000');
  const timeoutMs = v['timeoutMs'];
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 10 || timeoutMs > intervalMs) fail(`${field}.timeoutMs`, timeoutMs, `is not a timeout; use an integer 10-${intervalMs} (at most the interval)`);
  return Object.freeze({ path, intervalMs, timeoutMs });
}

function validateTcpRoute(field: string, value: unknown): TcpRoute {
  const r = record(field, value);
  const port = r['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) fail(`${field}.port`, port, 'is not a port; use an integer 1-65535');
  const endpoints = list(`${field}.endpoints`, r['endpoints']).map((e, i) => {
    const at = `${field}.endpoints[${i}]`;
    const endpoint = validateEndpoint(at, e);
    const checkPort = record(at, e)['checkPort'];
    if (checkPort === undefined) return endpoint;
    if (checkPort !== null && (typeof checkPort !== 'number' || !Number.isInteger(checkPort) || checkPort < 1 || checkPort > 65_535)) {
      fail(`${at}.checkPort`, checkPort, 'is not a port; use an integer 1-65535 or null');
    }
    return Object.freeze({ ...endpoint, checkPort });
  });
  const allow = validateCidrs(`${field}.allow`, r['allow']);
  const deny = validateCidrs(`${field}.deny`, r['deny']);
  return Object.freeze({
    port,
    tenant: name(`${field}.tenant`, r['tenant']),
    environment: name(`${field}.environment`, r['environment']),
    service: name(`${field}.service`, r['service']),
    endpoints: Object.freeze(endpoints),
    primaryCheck: validatePrimaryCheck(`${field}.primaryCheck`, r['primaryCheck']),
    ...(allow === undefined ? {} : { allow }),
    ...(deny === undefined ? {} : { deny }),
  });
}

/** The table's `tcp` list: absent (an older control plane) is none; a port appears once. */
export function validateTcpRoutes(value: unknown): readonly TcpRoute[] {
  if (value === undefined) return Object.freeze([]);
  const routes = list('table.tcp', value).map((r, i) => validateTcpRoute(`table.tcp[${i}]`, r));
  const seen = new Set<number>();
  routes.forEach((r, i) => {
    if (seen.has(r.port)) fail(`table.tcp[${i}].port`, r.port, 'appears twice in the table');
    seen.add(r.port);
  });
  return Object.freeze(routes);
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
  const tcp = validateTcpRoutes(t['tcp']);
  return Object.freeze({ revision, generatedAt, hosts: Object.freeze(hosts), tcp });
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
  readonly leastOutstanding: boolean;
  /** Cookie name for sticky sessions; null: not sticky. */
  readonly stickyCookie: string | null;
  /** `name=` as it appears in a Cookie header, found without parsing the header. */
  readonly stickyNeedle: string | null;
  /** The Set-Cookie attributes after the value, built once. */
  readonly stickyAttributes: string;
  readonly outlier: OutlierSpec;
  readonly timeoutMs: number | null;
  readonly byInstance: ReadonlyMap<string, Upstream>;
  constructor(
    readonly vhost: VirtualHost,
    readonly route: Route,
    readonly upstreams: readonly Upstream[],
    readonly stats: ServiceStats,
  ) {
    this.leastOutstanding = route.balance === 'least_outstanding';
    const sticky = route.sticky ?? null;
    this.stickyCookie = sticky === null ? null : sticky.cookie;
    this.stickyNeedle = sticky === null ? null : `${sticky.cookie}=`;
    const path = route.pathPrefix;
    this.stickyAttributes = `; Path=${path}; HttpOnly; SameSite=Lax${sticky?.ttlMs ? `; Max-Age=${Math.floor(sticky.ttlMs / 1000)}` : ''}`;
    this.outlier = route.outlier ?? OUTLIER_DEFAULTS;
    this.timeoutMs = route.timeoutMs ?? null;
    this.byInstance = new Map(upstreams.map((u) => [u.endpoint.instance, u]));
  }
}

/** The instance a Cookie header pins this route to, or null. */
export function stickyInstance(match: RouteMatch, cookieHeader: string): string | null {
  if (!(match instanceof RouteEntry) || match.stickyNeedle === null || cookieHeader === '') return null;
  const needle = match.stickyNeedle;
  let at = cookieHeader.indexOf(needle);
  // The name must start the header or follow "; " (a longer name ending in ours is another cookie).
  while (at > 0 && cookieHeader.charCodeAt(at - 1) !== 32 && cookieHeader.charCodeAt(at - 1) !== 59) at = cookieHeader.indexOf(needle, at + 1);
  if (at === -1) return null;
  const start = at + needle.length;
  const end = cookieHeader.indexOf(';', start);
  return cookieHeader.slice(start, end === -1 ? undefined : end).trim();
}

/** The Set-Cookie value pinning a client to `up` on a sticky route; null when not sticky. */
export function stickyCookie(match: RouteMatch, up: Upstream, secure: boolean): string | null {
  if (!(match instanceof RouteEntry) || match.stickyCookie === null) return null;
  return `${match.stickyCookie}=${up.endpoint.instance}${match.stickyAttributes}${secure ? '; Secure' : ''}`;
}

/** The route's response-headers timeout; null: the gateway's default. */
export function routeTimeoutMs(match: RouteMatch): number | null {
  return match instanceof RouteEntry ? match.timeoutMs : null;
}

interface HostEntry {
  readonly vhost: VirtualHost;
  /** Longest prefix first, so the first match is the best one. */
  readonly routes: readonly RouteEntry[];
}

export function endpointKey(endpoint: Endpoint): string {
  return `${endpoint.address}:${endpoint.port}`;
}

function toUpstream(endpoint: Endpoint, state: EndpointState): Upstream {
  const host = net.isIPv6(endpoint.address) ? `[${endpoint.address}]` : endpoint.address;
  return Object.freeze({ endpoint, key: state.key, origin: `http://${host}:${endpoint.port}`, state });
}

/** What the proxy tells the routing state about one finished attempt. */
export type Outcome = 'ok' | 'failed' | 'connect-failed';

/** Something worth logging that outlier detection did. */
export interface EjectionEvent {
  readonly key: string;
  readonly instance: string;
  readonly service: string;
  readonly tenant: string;
  readonly environment: string;
  readonly ms: number;
  readonly reason: string;
}

export interface RoutingStateOptions {
  /** Clock for ejection periods, replaceable in tests. @default Date.now */
  readonly now?: () => number;
  /** Told about each ejection outlier detection decides (for the log and metrics). */
  readonly onEject?: (event: EjectionEvent) => void;
}

/** One endpoint the gateway's active health checks watch, with the route's check. */
export interface CheckTarget {
  readonly key: string;
  readonly origin: string;
  readonly instance: string;
  readonly check: HealthCheckSpec;
}

/**
 * The current routing table and what the gateway learned locally about its endpoints.
 * `replace` swaps the table atomically (validated first); `match` and `pick` run on every
 * request and allocate nothing.
 */
export class RoutingState {
  #table: RoutingTable | null = null;
  #hosts = new Map<string, HostEntry>();
  /** What the gateway learned per endpoint (`address:port`), kept across tables. */
  #states = new Map<string, EndpointState>();
  /** Endpoints ejected or checked down right now (maybe expired): 0 lets pick skip the checks. */
  #unavailable = 0;
  /** Figures per service, kept across tables. */
  readonly stats = new StatsRegistry();
  readonly #now: () => number;
  readonly #onEject: ((event: EjectionEvent) => void) | null;

  constructor(options: RoutingStateOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#onEject = options.onEject ?? null;
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
   * the change are kept so a busy route does not restart at its first endpoint, and so is
   * what was learned about endpoints that stay (ejections, health, requests in flight).
   */
  replace(candidate: unknown): RoutingTable {
    const table = validateTable(candidate);
    const hosts = new Map<string, HostEntry>();
    const states = new Map<string, EndpointState>();
    const stateOf = (endpoint: Endpoint): EndpointState => {
      const key = endpointKey(endpoint);
      // What was learned about an endpoint stays with it across tables, but not with a new
      // instance that happens to get the same address and port (its ejection is not ours).
      const previous = this.#states.get(key);
      let st = states.get(key) ?? (previous !== undefined && previous.instance === endpoint.instance ? previous : undefined);
      if (st === undefined) st = new EndpointState(key, endpoint.instance);
      states.set(key, st);
      return st;
    };
    for (const vhost of table.hosts) {
      const previous = this.#hosts.get(vhost.host);
      const routes = vhost.routes
        .map((route) => {
          const stats = this.stats.of(vhost.tenant, vhost.environment, route.service);
          const entry = new RouteEntry(vhost, route, Object.freeze(route.endpoints.map((e) => toUpstream(e, stateOf(e)))), stats);
          const old = previous?.routes.find((r) => r.route.pathPrefix === route.pathPrefix);
          if (old !== undefined && entry.upstreams.length > 0) entry.cursor = old.cursor % entry.upstreams.length;
          return entry;
        })
        .sort((a, b) => b.route.pathPrefix.length - a.route.pathPrefix.length);
      hosts.set(vhost.host, { vhost, routes });
    }
    this.#table = table;
    this.#hosts = hosts;
    this.#states = states;
    let unavailable = 0;
    for (const st of states.values()) if (st.ejectedUntil !== 0 || st.checkDown) unavailable++;
    this.#unavailable = unavailable;
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

  /** True when the endpoint may take requests: not ejected (or its ejection ran out) and not checked down. */
  #available(st: EndpointState): boolean {
    if (st.checkDown) return false;
    if (st.ejectedUntil === 0) return true;
    if (st.ejectedUntil > this.#now()) return false;
    st.ejectedUntil = 0;
    this.#unavailable--;
    return true;
  }

  /**
   * The endpoint for the next request of a matched route: the pinned instance of a sticky
   * session when it is available, else by the route's algorithm — round robin, or the
   * fewest requests in flight (ties in round-robin order) — skipping ejected and
   * checked-down endpoints and `avoidKey` (the one that just failed). When none is
   * available it still returns one (trying beats failing outright). Null only when the
   * route has no endpoint.
   */
  pick(match: RouteMatch, avoidKey?: string, pinned?: string | null): Upstream | null {
    if (!(match instanceof RouteEntry)) throw new TypeError('pick() needs a match returned by match()');
    const ups = match.upstreams;
    const n = ups.length;
    if (n === 0) return null;
    const check = this.#unavailable > 0;
    if (pinned) {
      const up = match.byInstance.get(pinned);
      if (up !== undefined && up.key !== avoidKey && (!check || this.#available(up.state))) return up;
    }
    const start = match.cursor;
    if (match.leastOutstanding) {
      let best: Upstream | null = null;
      let bestIdx = start;
      for (let i = 0; i < n; i++) {
        const idx = (start + i) % n;
        const up = ups[idx] as Upstream;
        if (up.key === avoidKey || (check && !this.#available(up.state))) continue;
        if (best === null || up.state.outstanding < best.state.outstanding) {
          best = up;
          bestIdx = idx;
        }
      }
      if (best !== null) {
        match.cursor = (bestIdx + 1) % n;
        return best;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const idx = (start + i) % n;
        const up = ups[idx] as Upstream;
        if (up.key === avoidKey || (check && !this.#available(up.state))) continue;
        match.cursor = (idx + 1) % n;
        return up;
      }
    }
    // None available (or the only other choice is the one to avoid): still try one.
    let chosen: Upstream | null = null;
    for (let i = 0; i < n && chosen === null; i++) {
      const up = ups[(start + i) % n] as Upstream;
      if (up.key !== avoidKey) chosen = up;
    }
    match.cursor = (start + 1) % n;
    return chosen ?? (ups[start % n] as Upstream);
  }

  /**
   * Passive outlier detection, told the outcome of every attempt. A success clears the
   * failure count; `consecutiveFailures` failures in a row (a 5xx answer or a connection
   * failure) eject the endpoint for a period that doubles with each ejection (up to the
   * maximum, decaying by one step per base period without one) — unless that would take
   * more than `maxEjectedPercent` of the route's endpoints out, and never the last one.
   * A connection failure ejects at once: nothing listens there.
   */
  report(match: RouteMatch, up: Upstream, outcome: Outcome): void {
    const st = up.state;
    if (outcome === 'ok') {
      st.failures = 0;
      return;
    }
    st.failures++;
    if (!(match instanceof RouteEntry)) return;
    const o = match.outlier;
    if (outcome !== 'connect-failed' && st.failures < o.consecutiveFailures) return;
    if (st.ejectedUntil > this.#now()) return;
    const ups = match.upstreams;
    const now = this.#now();
    let out = 0;
    for (const u of ups) if (u !== up && (u.state.checkDown || u.state.ejectedUntil > now)) out++;
    // Never the last endpoint; for answers (not refusals) never beyond the allowed share.
    const limit = outcome === 'connect-failed' ? ups.length - 1 : Math.min(ups.length - 1, Math.floor((ups.length * o.maxEjectedPercent) / 100));
    if (out + 1 > limit) return;
    // Decay: one step back for every four base periods since the last ejection ended.
    if (st.ejections > 0 && o.baseEjectionMs > 0) {
      const steps = Math.floor((now - st.lastEjectionEnd) / (4 * o.baseEjectionMs));
      if (steps > 0) st.ejections = Math.max(0, st.ejections - steps);
    }
    const ms = Math.min(o.maxEjectionMs, o.baseEjectionMs * 2 ** Math.min(st.ejections, 20));
    if (ms <= 0) return;
    if (st.ejectedUntil === 0 && !st.checkDown) this.#unavailable++;
    st.ejectedUntil = now + ms;
    st.ejections++;
    st.lastEjectionEnd = now + ms;
    st.failures = 0;
    match.stats.ejections++;
    this.#onEject?.({
      key: up.key,
      instance: up.endpoint.instance,
      service: match.route.service,
      tenant: match.vhost.tenant,
      environment: match.vhost.environment,
      ms,
      reason: outcome === 'connect-failed' ? 'connection failed' : `${o.consecutiveFailures} failures in a row`,
    });
  }

  /** Skips the endpoint for `ms` (an operator's or a test's explicit ejection). */
  eject(endpoint: Endpoint | string, ms: number = DEFAULT_EJECT_MS): void {
    const key = typeof endpoint === 'string' ? endpoint : endpointKey(endpoint);
    const st = this.#states.get(key);
    if (st === undefined) return;
    if (st.ejectedUntil === 0 && !st.checkDown) this.#unavailable++;
    st.ejectedUntil = this.#now() + ms;
  }

  /** True while the endpoint (its `address:port` key or the endpoint) is ejected. */
  isEjected(endpoint: Endpoint | string): boolean {
    const key = typeof endpoint === 'string' ? endpoint : endpointKey(endpoint);
    const st = this.#states.get(key);
    if (st === undefined || st.ejectedUntil === 0) return false;
    if (st.ejectedUntil <= this.#now()) {
      st.ejectedUntil = 0;
      if (!st.checkDown) this.#unavailable--;
      return false;
    }
    return true;
  }

  /** The gateway's own health check verdict for an endpoint; true when it changed. */
  setCheckDown(key: string, down: boolean): boolean {
    const st = this.#states.get(key);
    if (st === undefined || st.checkDown === down) return false;
    const wasOut = st.checkDown || st.ejectedUntil !== 0;
    st.checkDown = down;
    const isOut = st.checkDown || st.ejectedUntil !== 0;
    if (wasOut !== isOut) this.#unavailable += isOut ? 1 : -1;
    return true;
  }

  /** Whether the gateway's own health check has the endpoint down. */
  isCheckedDown(key: string): boolean {
    return this.#states.get(key)?.checkDown ?? false;
  }

  /** Every endpoint of a route with an active health check, once per endpoint. */
  checkTargets(): CheckTarget[] {
    const out = new Map<string, CheckTarget>();
    for (const host of this.#hosts.values()) {
      for (const route of host.routes) {
        const check = route.route.health;
        if (!check) continue;
        for (const up of route.upstreams) if (!out.has(up.key)) out.set(up.key, { key: up.key, origin: up.origin, instance: up.endpoint.instance, check });
      }
    }
    return [...out.values()];
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
