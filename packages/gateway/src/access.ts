/**
 * Access control per environment at the edge (the environment's `EdgeSettings`), plus the
 * gateway's own checks of hostile HTTP framing. Everything that can be prepared is prepared
 * once per routing-table change: CIDR lists become sorted address ranges, rates become
 * token buckets. A request to an environment without settings costs one Map lookup.
 *
 * Per request, after the route is known (`admit`):
 *   1. deny list, then allow list (403)
 *   2. connections of this client to this environment (429, connection closed)
 *   3. rate per client IP, then per environment (429 with Retry-After)
 *   4. body size: a Content-Length over the limit is refused at once (413, connection
 *      closed); a chunked body is counted while it streams and cut at the limit (413 if the
 *      answer has not started, else the connection is closed)
 *
 * Connections per client are counted from the moment they are accepted, before the Host is
 * known: the gateway-wide limit (`--max-connections-per-client`, raised to the largest
 * environment limit when one is higher) closes a new connection at once. An environment's
 * own limit is applied when a connection first sends it a request: the connections a
 * client has open *to that environment* are counted, and one more is answered 429 and
 * closed. IPv6 clients are counted and rate-limited per /64 (one subscriber's prefix), so
 * that a client cannot dodge its limits by rotating addresses inside its own network.
 * Counters and buckets live in this process: a gateway with several workers applies each
 * limit per worker.
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatByteSize, formatRateLimit, isDefaultEdge, parseCidrBlock, parseIpAddress } from '@lanes/spec';
import type { EdgeSettings, RateLimit, RoutingTable, VirtualHost } from '@lanes/spec';
import type { GatewayLimits } from './config.js';
import type { Logger } from './logging.js';
import { readTransferEncoding } from './http1.js';
import type { RouteMatch, RoutingState } from './routing.js';

/** A refusal: the status and its one-line plain-text message. */
export interface Refusal {
  readonly status: number;
  readonly message: string;
  /** Seconds the client should wait (429): sent as Retry-After. */
  readonly retryAfterS?: number;
  /** The connection closes after the answer (framing that cannot be trusted, a body left unread). */
  readonly close?: boolean;
}

/** Clients tracked per environment by a per-client rate limit before old entries are dropped. @default 10000 */
export const MAX_TRACKED_CLIENTS = 10_000;

// ---------------------------------------------------------------------------------------
// Client addresses

/** An IPv4 address as an unsigned 32-bit number, or -1 when `s` is not one (no allocation). */
export function ipv4ToNumber(s: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** `::ffff:192.0.2.7` (an IPv4 client on a dual-stack listener) as `192.0.2.7`. */
export function unmappedAddress(address: string): string {
  return address.length > 7 && address.charCodeAt(0) === 58 /* : */ && address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function ipv6ToBigInt(address: string): bigint | null {
  const ip = parseIpAddress(address);
  if (ip === null || ip.family !== 6) return null;
  let n = 0n;
  for (const part of ip.parts) n = (n << 16n) | BigInt(part);
  return n;
}

/**
 * The identity limits are counted by: an IPv4 address as it is, an IPv6 address by its
 * /64 (`2001:db8:1:2::/64`).
 */
export function clientKey(address: string): string {
  const a = unmappedAddress(address);
  if (!a.includes(':')) return a;
  const ip = parseIpAddress(a);
  if (ip === null) return a;
  return `${ip.parts.slice(0, 4).map((p) => p.toString(16)).join(':')}::/64`;
}

// ---------------------------------------------------------------------------------------
// CIDR matching

/**
 * A compiled CIDR list: IPv4 blocks as merged, sorted [start, end] ranges searched by
 * bisection (no parsing per block at request time), IPv6 blocks likewise as BigInts.
 * IPv4-mapped IPv6 blocks (`::ffff:10.0.0.0/104`) count as IPv4.
 */
export class CidrMatcher {
  readonly #v4: Float64Array;
  readonly #v6: readonly bigint[];
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    const v4: Array<[number, number]> = [];
    const v6: Array<[bigint, bigint]> = [];
    cidrs.forEach((text, i) => {
      const block = parseCidrBlock(`cidrs.${i}`, text);
      const parts = block.parts;
      if (block.family === 4) {
        const start = (((parts[0] ?? 0) * 256 + (parts[1] ?? 0)) * 256 + (parts[2] ?? 0)) * 256 + (parts[3] ?? 0);
        v4.push([start, start + 2 ** (32 - block.prefix) - 1]);
        return;
      }
      const mapped = block.prefix >= 96 && parts.slice(0, 5).every((p) => p === 0) && parts[5] === 0xffff;
      if (mapped) {
        const start = (parts[6] ?? 0) * 65_536 + (parts[7] ?? 0);
        v4.push([start, start + 2 ** (128 - block.prefix) - 1]);
        return;
      }
      let start = 0n;
      for (const p of parts) start = (start << 16n) | BigInt(p);
      v6.push([start, start + (1n << BigInt(128 - block.prefix)) - 1n]);
    });
    this.#v4 = Float64Array.from(merge(v4, (a, b) => a - b, (end, start) => end + 1 >= start).flat());
    this.#v6 = merge(v6, (a, b) => (a < b ? -1 : a > b ? 1 : 0), (end, start) => end + 1n >= start).flat();
    this.size = cidrs.length;
  }

  /** True when the client address (as Node reports it) lies in one of the blocks. */
  has(address: string): boolean {
    const a = unmappedAddress(address);
    const n = ipv4ToNumber(a);
    if (n !== -1) return inRanges(this.#v4, n);
    if (this.#v6.length === 0) return false;
    const big = ipv6ToBigInt(a);
    return big !== null && inRanges(this.#v6, big);
  }
}

/** Sorts ranges by start and merges overlapping or adjacent ones. */
function merge<T>(ranges: Array<[T, T]>, compare: (a: T, b: T) => number, touches: (end: T, start: T) => boolean): Array<[T, T]> {
  ranges.sort((x, y) => compare(x[0], y[0]));
  const out: Array<[T, T]> = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && touches(last[1], r[0])) {
      if (compare(r[1], last[1]) > 0) last[1] = r[1];
    } else {
      out.push([r[0], r[1]]);
    }
  }
  return out;
}

/** Bisection over flat [start0, end0, start1, end1, …] pairs. */
function inRanges<T extends number | bigint>(flat: ArrayLike<T>, x: T): boolean {
  let lo = 0;
  let hi = flat.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const start = flat[mid * 2] as T;
    if (x < start) hi = mid - 1;
    else if (x > (flat[mid * 2 + 1] as T)) lo = mid + 1;
    else return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Rate limiting

/** A token bucket: `rps` tokens a second, holding at most `burst`; a request takes one. */
export class TokenBucket {
  readonly rate: RateLimit;
  #tokens: number;
  #atMs: number;

  constructor(rate: RateLimit, nowMs: number) {
    this.rate = rate;
    this.#tokens = rate.burst;
    this.#atMs = nowMs;
  }

  #refill(nowMs: number): void {
    if (nowMs > this.#atMs) {
      this.#tokens = Math.min(this.rate.burst, this.#tokens + ((nowMs - this.#atMs) * this.rate.rps) / 1000);
      this.#atMs = nowMs;
    }
  }

  /** Takes a token: 0 when granted, else the whole seconds until one is there (at least 1). */
  take(nowMs: number): number {
    this.#refill(nowMs);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.rate.rps));
  }

  /** Refilled to its burst: forgetting it loses nothing. */
  full(nowMs: number): boolean {
    this.#refill(nowMs);
    return this.#tokens >= this.rate.burst;
  }
}

/**
 * One token bucket per client, in a bounded map: a flood of new addresses cannot grow it
 * past `maxClients`. When full, buckets that have refilled completely are dropped first (no
 * information lost); if that frees too little, the oldest quarter goes too, so the sweep
 * cost is shared by many insertions.
 */
export class ClientRateLimiter {
  readonly rate: RateLimit;
  readonly maxClients: number;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(rate: RateLimit, maxClients: number = MAX_TRACKED_CLIENTS) {
    this.rate = rate;
    this.maxClients = Math.max(4, maxClients);
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** As TokenBucket.take, for the client's own bucket. */
  take(client: string, nowMs: number): number {
    let bucket = this.#buckets.get(client);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.maxClients) this.#evict(nowMs);
      bucket = new TokenBucket(this.rate, nowMs);
      this.#buckets.set(client, bucket);
    }
    return bucket.take(nowMs);
  }

  #evict(nowMs: number): void {
    for (const [client, bucket] of this.#buckets) if (bucket.full(nowMs)) this.#buckets.delete(client);
    if (this.#buckets.size <= (this.maxClients * 3) / 4) return;
    const target = this.maxClients / 2;
    for (const client of this.#buckets.keys()) {
      if (this.#buckets.size <= target) break;
      this.#buckets.delete(client);
    }
  }
}

function sameRate(a: RateLimit | null, b: RateLimit | null): boolean {
  return a === b || (a !== null && b !== null && a.rps === b.rps && a.burst === b.burst);
}

// ---------------------------------------------------------------------------------------
// Policies

/** Connections of clients to one environment, counted from their first request to it. */
class EnvironmentConnections {
  readonly counts = new Map<string, number>();
  readonly sockets = new WeakSet<net.Socket>();
}

/** Rate and connection state of one environment, kept across table changes. */
interface EnvironmentState {
  readonly clientRate: ClientRateLimiter | null;
  readonly environmentRate: TokenBucket | null;
  readonly connections: EnvironmentConnections;
}

/** One environment's settings compiled for the hot path. */
interface Policy {
  readonly ref: string;
  readonly deny: CidrMatcher | null;
  readonly allow: CidrMatcher | null;
  readonly state: EnvironmentState;
  readonly clientRateText: string;
  readonly environmentRateText: string;
  /** Per-environment connection limit to check at request time; null: the accept-time check is enough. */
  readonly maxConnections: number | null;
  readonly maxBodyBytes: number;
}

export interface EdgeAccessOptions {
  readonly routing: RoutingState;
  readonly limits: GatewayLimits;
  readonly log: Logger;
  /** Clock in ms, replaceable in tests. @default performance.now */
  readonly now?: () => number;
  /** @default MAX_TRACKED_CLIENTS */
  readonly maxTrackedClients?: number;
}

/**
 * The access-control stage of one gateway. It follows the routing state's table by
 * identity (recompiled when it changes), counts connections per client from the
 * listener's 'connection' event, and answers per request with a Refusal or null.
 */
export class EdgeAccess {
  readonly #routing: RoutingState;
  readonly #limits: GatewayLimits;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #maxTracked: number;
  #compiledFor: RoutingTable | null = null;
  #policies = new Map<VirtualHost, Policy>();
  #states = new Map<string, EnvironmentState>();
  /** The per-client limit applied when a connection is accepted. */
  #acceptLimit: number;
  readonly #connections = new Map<string, number>();
  #refusedConnections = 0;

  constructor(options: EdgeAccessOptions) {
    this.#routing = options.routing;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#now = options.now ?? (() => performance.now());
    this.#maxTracked = options.maxTrackedClients ?? MAX_TRACKED_CLIENTS;
    this.#acceptLimit = options.limits.maxConnectionsPerClient;
  }

  /** Open connections per client key right now (for tests and metrics). */
  connectionsOf(address: string): number {
    return this.#connections.get(clientKey(address)) ?? 0;
  }

  /** Connections closed at accept time because their client had too many. */
  get refusedConnections(): number {
    return this.#refusedConnections;
  }

  /** The listener's 'connection' hook: counts the client's connections, closes one too many. */
  onConnection(socket: net.Socket): void {
    const address = socket.remoteAddress;
    if (address === undefined) return;
    this.#sync();
    const key = clientKey(address);
    const n = (this.#connections.get(key) ?? 0) + 1;
    if (n > this.#acceptLimit) {
      this.#refusedConnections++;
      // Once per 100 refusals: a flood must not flood the log too.
      if (this.#refusedConnections % 100 === 1) this.#log.warn({ client: key, limit: this.#acceptLimit, refused: this.#refusedConnections }, 'connection refused: too many from one client');
      socket.destroy();
      return;
    }
    this.#connections.set(key, n);
    socket.once('close', () => this.#release(this.#connections, key));
  }

  #release(counts: Map<string, number>, key: string): void {
    const n = (counts.get(key) ?? 1) - 1;
    if (n <= 0) counts.delete(key);
    else counts.set(key, n);
  }

  /**
   * The checks of a routed request (see the module comment). `contentLength` is the
   * declared body size; -1 for a chunked body (counted against `maxBodyBytes` as it streams).
   */
  admit(vhost: VirtualHost, client: string, socket: net.Socket, contentLength: number): Refusal | null {
    if (this.#routing.table !== this.#compiledFor) this.#sync();
    const policy = this.#policies.get(vhost);
    if (policy !== undefined) {
      const refusal = this.#checkPolicy(policy, client, socket);
      if (refusal !== null) return refusal;
    }
    if (contentLength > 0) {
      const maxBytes = policy?.maxBodyBytes ?? this.#limits.maxBodyBytes;
      if (contentLength > maxBytes) {
        return { status: 413, message: `request body of ${contentLength} bytes is over the limit of ${formatByteSize(maxBytes)} for ${vhost.tenant}/${vhost.environment}`, close: true };
      }
    }
    return null;
  }

  /** The body limit of a routed request's environment (a chunked body is cut past it). */
  maxBodyBytes(vhost: VirtualHost): number {
    if (this.#routing.table !== this.#compiledFor) this.#sync();
    return this.#policies.get(vhost)?.maxBodyBytes ?? this.#limits.maxBodyBytes;
  }

  /** The refusal of a chunked body that went over its environment's limit. */
  bodyTooLarge(vhost: VirtualHost): Refusal {
    return { status: 413, message: `request body is over the limit of ${formatByteSize(this.maxBodyBytes(vhost))} for ${vhost.tenant}/${vhost.environment}`, close: true };
  }

  /** Allow/deny, connections and rates for an Upgrade (WebSocket) request. */
  admitUpgrade(client: string, socket: net.Socket, match: RouteMatch): Refusal | null {
    if (this.#routing.table !== this.#compiledFor) this.#sync();
    const policy = this.#policies.get(match.vhost);
    return policy === undefined ? null : this.#checkPolicy(policy, client, socket);
  }

  #checkPolicy(policy: Policy, client: string, socket: net.Socket): Refusal | null {
    if (policy.deny !== null && policy.deny.has(client)) return { status: 403, message: `client ${client} is denied access to ${policy.ref}` };
    if (policy.allow !== null && !policy.allow.has(client)) return { status: 403, message: `client ${client} is not on the allow-list of ${policy.ref}` };
    const state = policy.state;
    if (policy.maxConnections !== null) {
      const refused = this.#countConnection(policy, state.connections, socket, client);
      if (refused !== null) return refused;
    }
    if (state.clientRate === null && state.environmentRate === null) return null;
    const now = this.#now();
    if (state.clientRate !== null) {
      const wait = state.clientRate.take(clientKey(client), now);
      if (wait > 0) {
        return { status: 429, message: `too many requests from ${client} to ${policy.ref} (limit ${policy.clientRateText} per client); retry in ${wait} s`, retryAfterS: wait };
      }
    }
    if (state.environmentRate !== null) {
      const wait = state.environmentRate.take(now);
      if (wait > 0) return { status: 429, message: `too many requests to ${policy.ref} (limit ${policy.environmentRateText}); retry in ${wait} s`, retryAfterS: wait };
    }
    return null;
  }

  /** Counts the socket once for the environment; refuses it when the client has too many. */
  #countConnection(policy: Policy, conns: EnvironmentConnections, socket: net.Socket, client: string): Refusal | null {
    if (conns.sockets.has(socket)) return null;
    const key = clientKey(client);
    const n = (conns.counts.get(key) ?? 0) + 1;
    const limit = policy.maxConnections ?? Infinity;
    if (n > limit) return { status: 429, message: `client ${client} has more than ${limit} connections open to ${policy.ref}; reuse one or close some`, close: true };
    conns.sockets.add(socket);
    conns.counts.set(key, n);
    socket.once('close', () => this.#release(conns.counts, key));
    return null;
  }

  /** Recompiles the policies when the routing table changed. */
  #sync(): void {
    const table = this.#routing.table;
    if (table === this.#compiledFor) return;
    this.#compiledFor = table;
    const hosts = table?.hosts ?? [];
    const defaultMax = this.#limits.maxConnectionsPerClient;
    let acceptLimit = defaultMax;
    for (const vhost of hosts) {
      const max = vhost.edge?.maxConnectionsPerClient ?? null;
      if (max !== null && max > acceptLimit) acceptLimit = max;
    }
    const policies = new Map<VirtualHost, Policy>();
    const states = new Map<string, EnvironmentState>();
    for (const vhost of hosts) {
      const edge = vhost.edge;
      // When some environment raised the accept-time limit, the others' (the default) is
      // checked per request instead.
      const needsConnectionCheck = (edge?.maxConnectionsPerClient ?? defaultMax) < acceptLimit;
      if ((edge === undefined || isDefaultEdge(edge)) && !needsConnectionCheck) continue;
      const ref = `${vhost.tenant}/${vhost.environment}`;
      const state = states.get(ref) ?? this.#stateFor(ref, edge ?? null);
      states.set(ref, state);
      policies.set(vhost, this.#compile(vhost, ref, edge ?? null, state, needsConnectionCheck ? (edge?.maxConnectionsPerClient ?? defaultMax) : null));
    }
    this.#policies = policies;
    this.#states = states;
    this.#acceptLimit = acceptLimit;
  }

  /** The environment's state, kept from the previous table when its rates are unchanged. */
  #stateFor(ref: string, edge: EdgeSettings | null): EnvironmentState {
    const old = this.#states.get(ref);
    const clientRate = edge?.clientRate ?? null;
    const environmentRate = edge?.environmentRate ?? null;
    const now = this.#now();
    return {
      clientRate: clientRate === null ? null : old?.clientRate != null && sameRate(old.clientRate.rate, clientRate) ? old.clientRate : new ClientRateLimiter(clientRate, this.#maxTracked),
      environmentRate:
        environmentRate === null ? null : old?.environmentRate != null && sameRate(old.environmentRate.rate, environmentRate) ? old.environmentRate : new TokenBucket(environmentRate, now),
      connections: old?.connections ?? new EnvironmentConnections(),
    };
  }

  #compile(vhost: VirtualHost, ref: string, edge: EdgeSettings | null, state: EnvironmentState, maxConnections: number | null): Policy {
    const matcher = (cidrs: readonly string[] | undefined): CidrMatcher | null => {
      if (cidrs === undefined || cidrs.length === 0) return null;
      try {
        return new CidrMatcher(cidrs);
      } catch (err) {
        // The table was validated; a block that still fails denies everyone rather than no one.
        this.#log.error({ err, host: vhost.host }, 'edge CIDR list not compiled; refusing every client of the host');
        return new CidrMatcher(['0.0.0.0/0', '::/0']);
      }
    };
    return {
      ref,
      deny: matcher(edge?.deny),
      allow: matcher(edge?.allow),
      state,
      clientRateText: edge?.clientRate ? formatRateLimit(edge.clientRate) : '',
      environmentRateText: edge?.environmentRate ? formatRateLimit(edge.environmentRate) : '',
      maxConnections,
      maxBodyBytes: edge?.maxBodyBytes ?? this.#limits.maxBodyBytes,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Hostile framing

/** Host header characters: letters, digits, `-._~` and, for IP literals and ports, `[]:`. */
function hostCharOk(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 58) || c === 45 || c === 46 || c === 95 || c === 126 || c === 91 || c === 93;
}

/** True when a Host value is a plain `name[:port]` or `[v6][:port]` (no spaces, no junk). */
export function isPlainHost(host: string): boolean {
  for (let i = 0; i < host.length; i++) if (!hostCharOk(host.charCodeAt(i))) return false;
  return true;
}

/**
 * The framing checks the header pass makes after counting (called only when something is
 * unusual): anything two HTTP parsers could read differently is refused, with the
 * connection closed, since what follows on it cannot be trusted. http1.ts has already
 * refused what is malformed line by line (obs-fold, bare CR/LF, control characters).
 */
export function checkFraming(
  httpVersion: string,
  hosts: number,
  host: string,
  lengths: number,
  badLength: string | null,
  encodings: number,
  encoding: string,
): Refusal | null {
  let message: string | null = null;
  let status = 400;
  if (hosts > 1) message = `the request has ${hosts} Host headers; send exactly one`;
  else if (hosts === 0 && httpVersion === '1.1') message = 'the request has no Host header; send exactly one';
  else if (hosts === 1 && !isPlainHost(host)) message = `Host ${JSON.stringify(host.slice(0, 100))} has characters a host name cannot have`;
  else if (lengths > 1) message = `the request has ${lengths} Content-Length headers; send exactly one`;
  else if (badLength !== null) message = `Content-Length ${JSON.stringify(badLength.slice(0, 40))} is not a number of bytes`;
  else if (lengths === 1 && encodings > 0) message = 'the request has both Content-Length and Transfer-Encoding; send one of them';
  else if (encodings > 1) message = `the request has ${encodings} Transfer-Encoding headers; send one, chunked`;
  else if (encodings === 1 && httpVersion === '1.0') message = 'an HTTP/1.0 request cannot have a Transfer-Encoding; send a Content-Length';
  else if (encodings === 1) {
    const te = readTransferEncoding(encoding);
    if (te === 'not-last') message = `Transfer-Encoding ${JSON.stringify(encoding.slice(0, 100))} does not end in chunked, so the body's end cannot be found`;
    else if (te === 'unsupported') {
      status = 501;
      message = `Transfer-Encoding ${JSON.stringify(encoding.slice(0, 100))} is not supported; send the body chunked or with a Content-Length`;
    }
  }
  return message === null ? null : { status, message, close: true };
}

/**
 * An absolute-form target (`GET http://a/ HTTP/1.1`) whose authority is not the Host: the
 * gateway and the instance could each route by a different one. Refused, connection closed.
 */
export function refuseAuthority(authority: string, host: string): Refusal {
  return { status: 400, message: `request target authority ${JSON.stringify(authority.slice(0, 100))} differs from Host ${JSON.stringify(host.slice(0, 100))}`, close: true };
}
