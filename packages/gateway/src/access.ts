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
import type http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { formatByteSize, formatRateLimit, isDefaultEdge, parseCidrBlock, parseIpAddress } from '@lanes/spec';
import type { EdgeSettings, RateLimit, RoutingTable, VirtualHost } from '@lanes/spec';
import type { GatewayLimits } from './config.js';
import type { Logger } from './logging.js';
import type { RouteMatch, RoutingState } from './routing.js';

/** A refusal: the status and its one-line plain-text message. */
export interface Refusal {
  readonly status: number;
  readonly message: string;
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
function unmapped(address: string): string {
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
  const a = unmapped(address);
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
    const a = unmapped(address);
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
// Body size

/** A streamed request body went over its limit (mapped to 413 by the proxy). */
export class BodyTooLargeError extends Error {
  readonly code = 'LANES_BODY_TOO_LARGE';
  constructor(message: string) {
    super(message);
    this.name = 'BodyTooLargeError';
  }
}

function ignore(): void {}

/**
 * Sits between a chunked request body and the upstream: passes chunks on while the total
 * stays within `maxBytes`, then fails the upstream request with BodyTooLargeError, marks the
 * answer `Connection: close` and lets the rest of the client's body drain unread.
 */
class BodyLimiter extends Transform {
  readonly #maxBytes: number;
  readonly #message: string;
  readonly #req: http.IncomingMessage;
  readonly #res: http.ServerResponse;
  #bytes = 0;

  constructor(req: http.IncomingMessage, res: http.ServerResponse, maxBytes: number, message: string) {
    super();
    this.#req = req;
    this.#res = res;
    this.#maxBytes = maxBytes;
    this.#message = message;
    // The failure reaches the proxy through undici; it must never be an uncaught 'error'.
    this.on('error', ignore);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes <= this.#maxBytes) {
      callback(null, chunk);
      return;
    }
    if (!this.#res.headersSent) this.#res.setHeader('connection', 'close');
    this.#req.unpipe(this);
    this.#req.resume();
    callback(new BodyTooLargeError(this.#message));
  }
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
  /** Chunked requests admitted with a body limit, until their body is sent upstream. */
  readonly #chunked = new WeakMap<http.IncomingMessage, { readonly res: http.ServerResponse; readonly maxBytes: number; readonly message: string }>();

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
   * The checks of a routed request (see the module comment). Sets the answer's
   * Retry-After or `Connection: close` itself; the caller answers with the refusal.
   */
  admit(vhost: VirtualHost, client: string, hasBody: boolean, req: http.IncomingMessage, res: http.ServerResponse): Refusal | null {
    if (this.#routing.table !== this.#compiledFor) this.#sync();
    const policy = this.#policies.get(vhost);
    if (policy === undefined) return hasBody ? this.#checkBody(req, res, this.#limits.maxBodyBytes, vhost) : null;
    const refusal = this.#checkPolicy(policy, client, req, res);
    if (refusal !== null) return refusal;
    return hasBody ? this.#checkBody(req, res, policy.maxBodyBytes, vhost) : null;
  }

  /** Allow/deny, connections and rates for an Upgrade (WebSocket) request. */
  admitUpgrade(req: http.IncomingMessage, match: RouteMatch): Refusal | null {
    if (this.#routing.table !== this.#compiledFor) this.#sync();
    const policy = this.#policies.get(match.vhost);
    return policy === undefined ? null : this.#checkPolicy(policy, req.socket.remoteAddress ?? '', req, null);
  }

  /**
   * The body undici sends upstream: the request itself, or for a chunked body with a limit
   * a counting stage in front of it (made here, at dispatch, so that a request refused after
   * admit leaves its body alone).
   */
  body(req: http.IncomingMessage): http.IncomingMessage | Transform {
    const pending = this.#chunked.get(req);
    if (pending === undefined) return req;
    this.#chunked.delete(req);
    return req.pipe(new BodyLimiter(req, pending.res, pending.maxBytes, pending.message));
  }

  #checkPolicy(policy: Policy, client: string, req: http.IncomingMessage, res: http.ServerResponse | null): Refusal | null {
    if (policy.deny !== null && policy.deny.has(client)) return { status: 403, message: `client ${client} is denied access to ${policy.ref}` };
    if (policy.allow !== null && !policy.allow.has(client)) return { status: 403, message: `client ${client} is not on the allow-list of ${policy.ref}` };
    const state = policy.state;
    if (policy.maxConnections !== null) {
      const refused = this.#countConnection(policy, state.connections, req.socket, client);
      if (refused !== null) {
        res?.setHeader('connection', 'close');
        return refused;
      }
    }
    if (state.clientRate === null && state.environmentRate === null) return null;
    const now = this.#now();
    if (state.clientRate !== null) {
      const wait = state.clientRate.take(clientKey(client), now);
      if (wait > 0) {
        res?.setHeader('retry-after', String(wait));
        return { status: 429, message: `too many requests from ${client} to ${policy.ref} (limit ${policy.clientRateText} per client); retry in ${wait} s` };
      }
    }
    if (state.environmentRate !== null) {
      const wait = state.environmentRate.take(now);
      if (wait > 0) {
        res?.setHeader('retry-after', String(wait));
        return { status: 429, message: `too many requests to ${policy.ref} (limit ${policy.environmentRateText}); retry in ${wait} s` };
      }
    }
    return null;
  }

  /** Counts the socket once for the environment; refuses it when the client has too many. */
  #countConnection(policy: Policy, conns: EnvironmentConnections, socket: net.Socket, client: string): Refusal | null {
    if (conns.sockets.has(socket)) return null;
    const key = clientKey(client);
    const n = (conns.counts.get(key) ?? 0) + 1;
    const limit = policy.maxConnections ?? Infinity;
    if (n > limit) return { status: 429, message: `client ${client} has more than ${limit} connections open to ${policy.ref}; reuse one or close some` };
    conns.sockets.add(socket);
    conns.counts.set(key, n);
    socket.once('close', () => this.#release(conns.counts, key));
    return null;
  }

  /** Content-Length over the limit: refused now; a chunked body: counted as it streams. */
  #checkBody(req: http.IncomingMessage, res: http.ServerResponse, maxBytes: number, vhost: VirtualHost): Refusal | null {
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] ?? '';
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        const length = Number(raw[i + 1]);
        if (length <= maxBytes) return null;
        res.setHeader('connection', 'close');
        return { status: 413, message: `request body of ${length} bytes is over the limit of ${formatByteSize(maxBytes)} for ${vhost.tenant}/${vhost.environment}` };
      }
    }
    // No Content-Length with a body: chunked (Node refuses every other framing, and so
    // does checkFraming).
    this.#chunked.set(req, { res, maxBytes, message: `request body is over the limit of ${formatByteSize(maxBytes)} for ${vhost.tenant}/${vhost.environment}` });
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
 * What Node's parser (llhttp, strict) lets through but a proxy must not: it already refuses
 * Content-Length with Transfer-Encoding, two Content-Lengths, obs-fold, control characters
 * and bare LF. Called after the header loop with its counts, only when they are unusual.
 * Framing refusals close the connection: what follows on it cannot be trusted.
 */
export function checkFraming(
  res: http.ServerResponse,
  httpVersion: string,
  hosts: number,
  host: string,
  lengths: number,
  encodings: number,
  encoding: string,
): Refusal | null {
  let refusal: Refusal | null = null;
  if (hosts > 1) refusal = { status: 400, message: `the request has ${hosts} Host headers; send exactly one` };
  else if (hosts === 1 && !isPlainHost(host)) refusal = { status: 400, message: `Host ${JSON.stringify(host.slice(0, 100))} has characters a host name cannot have` };
  else if (lengths > 1) refusal = { status: 400, message: `the request has ${lengths} Content-Length headers; send exactly one` };
  else if (encodings > 1) refusal = { status: 400, message: `the request has ${encodings} Transfer-Encoding headers; send one, chunked` };
  else if (encodings === 1 && httpVersion === '1.0') refusal = { status: 400, message: 'an HTTP/1.0 request cannot have a Transfer-Encoding; send a Content-Length' };
  else if (encodings === 1 && encoding.toLowerCase() !== 'chunked') {
    refusal = { status: 501, message: `Transfer-Encoding ${JSON.stringify(encoding.slice(0, 100))} is not supported; send the body chunked or with a Content-Length` };
  }
  if (refusal !== null) res.setHeader('connection', 'close');
  return refusal;
}

/**
 * An absolute-form target (`GET http://a/ HTTP/1.1`) whose authority is not the Host: the
 * gateway and the instance could each route by a different one. Refused, connection closed.
 */
export function refuseAuthority(res: http.ServerResponse, authority: string, host: string): Refusal {
  res.setHeader('connection', 'close');
  return { status: 400, message: `request target authority ${JSON.stringify(authority.slice(0, 100))} differs from Host ${JSON.stringify(host.slice(0, 100))}` };
}
