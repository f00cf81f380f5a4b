/**
 * Platform TCP listeners: one net.Server per TCP route of the routing table (a platform
 * port per environment service), on the gateway's host, each accepted connection piped
 * byte for byte to an instance of the service.
 *
 * Without a primary check, connections go round robin over the route's endpoints (the
 * healthy instances), and a connect failure moves on to the next one. With a primary check
 * (a database or broker mirror), the router itself asks every endpoint's check
 * (`GET http://address:checkPort/path`) every interval; only the one that answered 200 at
 * the last check takes connections, and when that changes, connections to the demoted one
 * are cut at once, so a former primary never keeps clients. Without a primary, connections
 * are closed as soon as they are accepted (a client retries; it must not write to a
 * standby).
 *
 * Every connection has bounds: the listener's connection count, a connect timeout to the
 * instance, an idle timeout. Data flows through pipe() (backpressure both ways), a FIN from
 * either side is passed on while the other direction keeps flowing (half-close), and no
 * socket error reaches the process: each is logged with the route's names and ends only
 * its own connection.
 */
import http from 'node:http';
import net from 'node:net';
import type { Endpoint, TcpRoute } from '@lanes/spec';
import { silentLogger } from './logging.js';
import type { Logger } from './logging.js';

export interface TcpLimits {
  /** Client connections one listener holds at once; more are closed when accepted. @default 1000 */
  readonly maxConnections: number;
  /** A connection with no byte either way for this long is closed. @default 3600000 (1 h) */
  readonly idleTimeoutMs: number;
  /** Time to open the connection to an instance before the next one is tried. @default 2000 */
  readonly connectTimeoutMs: number;
  /** How soon a port that could not be opened (e.g. in use) is tried again. @default 5000 */
  readonly relistenMs: number;
}

export const DEFAULT_TCP_LIMITS: TcpLimits = Object.freeze({
  maxConnections: 1_000,
  idleTimeoutMs: 3_600_000,
  connectTimeoutMs: 2_000,
  relistenMs: 5_000,
});

export interface TcpRouterOptions {
  /** The address the platform ports are opened on (the gateway's host). @default "127.0.0.1" */
  readonly host?: string;
  readonly limits?: Partial<TcpLimits>;
  /** @default a silent logger */
  readonly logger?: Logger;
}

/** At most one "connection refused" line per listener in this period (a flood must not flood the log). */
const REFUSAL_LOG_MS = 5_000;

interface Connection {
  readonly client: net.Socket;
  upstream: net.Socket | null;
  /** `address:port` of the endpoint it is (being) connected to. */
  key: string | null;
  instance: string | null;
}

interface CheckState {
  timer: NodeJS.Timeout | null;
  running: boolean;
  /** Endpoints changed while a round ran: run another at once. */
  again: boolean;
}

/** One platform port and what the router knows of its route. */
class Listener {
  route: TcpRoute;
  readonly server: net.Server;
  readonly connections = new Set<Connection>();
  cursor = 0;
  /** With a primary check: the `address:port` that answered 200 at the last check; null: none. */
  primary: string | null = null;
  readonly check: CheckState = { timer: null, running: false, again: false };
  allow: net.BlockList | null = null;
  deny: net.BlockList | null = null;
  listening = false;
  relistenTimer: NodeJS.Timeout | null = null;
  closed = false;
  refused = 0;
  lastRefusalLogMs = 0;

  constructor(route: TcpRoute, server: net.Server) {
    this.route = route;
    this.server = server;
  }

  get scope(): { tenant: string; environment: string; service: string; port: number } {
    const r = this.route;
    return { tenant: r.tenant, environment: r.environment, service: r.service, port: r.port };
  }
}

function endpointKey(e: Endpoint): string {
  return `${e.address}:${e.port}`;
}

function sameIdentity(a: TcpRoute, b: TcpRoute): boolean {
  return a.tenant === b.tenant && a.environment === b.environment && a.service === b.service;
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => {
    const o = b[i];
    return o !== undefined && e.instance === o.instance && e.address === o.address && e.port === o.port && (e.checkPort ?? null) === (o.checkPort ?? null);
  });
}

/** A BlockList of CIDRs (validated by the table's checks); null for none. */
function blockList(cidrs: readonly string[] | undefined): net.BlockList | null {
  if (cidrs === undefined || cidrs.length === 0) return null;
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const slash = cidr.lastIndexOf('/');
    const address = cidr.slice(0, slash);
    list.addSubnet(address, Number(cidr.slice(slash + 1)), net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** A client address as the lists spell it: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as IPv4. */
function clientAddress(socket: net.Socket): { address: string; family: 'ipv4' | 'ipv6' } | null {
  let address = socket.remoteAddress;
  if (address === undefined) return null;
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) address = address.slice(7);
  return { address, family: net.isIPv6(address) ? 'ipv6' : 'ipv4' };
}

/**
 * The status of `GET http://address:port/path`, or null when there was no answer within
 * `timeoutMs` (refused, reset, timed out). Only the status line is waited for.
 */
export function checkStatus(address: string, port: number, path: string, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(status);
    };
    const req = http.request({ host: address, port, path, method: 'GET', agent: false, headers: { 'user-agent': 'lanes-gateway primary-check', connection: 'close' } }, (res) => {
      done(res.statusCode ?? null);
      res.destroy();
    });
    const timer = setTimeout(() => done(null), timeoutMs);
    req.on('error', () => done(null));
    req.end();
  });
}

/**
 * Opens, updates and closes the platform TCP listeners to match the routing table's `tcp`
 * list (`apply`), and routes their connections. Never throws from a socket event.
 */
export class TcpRouter {
  readonly limits: TcpLimits;
  readonly #host: string;
  readonly #log: Logger;
  readonly #listeners = new Map<number, Listener>();
  #closed = false;

  constructor(options: TcpRouterOptions = {}) {
    this.limits = Object.freeze({ ...DEFAULT_TCP_LIMITS, ...options.limits });
    this.#host = options.host ?? '127.0.0.1';
    this.#log = options.logger ?? silentLogger();
  }

  /**
   * Makes the listeners match `routes` (already validated): new ports are opened, gone ones
   * closed with their connections, and the others take the new endpoints in place.
   */
  apply(routes: readonly TcpRoute[]): void {
    if (this.#closed) return;
    const wanted = new Map(routes.map((r) => [r.port, r]));
    for (const [port, l] of this.#listeners) {
      if (!wanted.has(port)) this.#remove(l, 'the port is no longer in the routing table');
    }
    for (const route of routes) {
      const l = this.#listeners.get(route.port);
      if (l === undefined) this.#add(route);
      else this.#update(l, route);
    }
  }

  /** The ports open right now. */
  ports(): number[] {
    return [...this.#listeners.values()].filter((l) => l.listening).map((l) => l.route.port).sort((a, b) => a - b);
  }

  /** The instance that takes new connections on `port` under a primary check; null: none (or no such port). */
  primaryOf(port: number): string | null {
    const l = this.#listeners.get(port);
    if (l === undefined || l.primary === null) return null;
    return l.route.endpoints.find((e) => endpointKey(e) === l.primary)?.instance ?? null;
  }

  /** Open client connections on `port`. */
  connectionsOf(port: number): number {
    return this.#listeners.get(port)?.connections.size ?? 0;
  }

  /** Closes every listener and cuts every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    const closing = [...this.#listeners.values()].map((l) => this.#remove(l, 'the gateway is stopping'));
    await Promise.all(closing);
  }

  // ---- listeners ----

  #add(route: TcpRoute): void {
    // pauseOnConnect: nothing is read from a client before its instance is connected.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    const l = new Listener(route, server);
    this.#setAccess(l);
    server.maxConnections = this.limits.maxConnections;
    server.on('connection', (socket) => {
      try {
        this.#accept(l, socket);
      } catch (err) {
        // A bug must cost one connection, never the process.
        this.#log.error({ ...l.scope, err }, 'tcp connection handling failed');
        socket.destroy();
      }
    });
    server.on('drop', () => this.#refused(l, `the listener holds its maximum of ${this.limits.maxConnections} connections`));
    server.on('error', (err) => {
      l.listening = false;
      this.#log.error({ ...l.scope, host: this.#host, err, retryMs: this.limits.relistenMs }, 'tcp listener failed; retrying');
      if (!l.closed && l.relistenTimer === null) {
        l.relistenTimer = setTimeout(() => {
          l.relistenTimer = null;
          if (!l.closed && !l.server.listening) this.#listen(l);
        }, this.limits.relistenMs);
        l.relistenTimer.unref();
      }
    });
    server.on('listening', () => {
      l.listening = true;
      this.#log.info({ ...l.scope, host: this.#host, endpoints: l.route.endpoints.length, primaryCheck: l.route.primaryCheck !== null }, 'tcp listener open');
    });
    this.#listeners.set(route.port, l);
    this.#listen(l);
    this.#scheduleCheck(l, 0);
  }

  #listen(l: Listener): void {
    try {
      l.server.listen({ port: l.route.port, host: this.#host });
    } catch (err) {
      this.#log.error({ ...l.scope, host: this.#host, err }, 'tcp listener could not be opened');
    }
  }

  #update(l: Listener, route: TcpRoute): void {
    const before = l.route;
    if (!sameIdentity(before, route)) {
      // The port now belongs to another service: nothing of the old one's survives.
      this.#cutWhere(l, () => true, `port ${route.port} now serves ${route.tenant}/${route.environment} ${route.service}`);
      l.cursor = 0;
      l.primary = null;
    }
    l.route = route;
    this.#setAccess(l);
    if (l.cursor >= route.endpoints.length) l.cursor = 0;
    const pc = route.primaryCheck;
    if (pc === null) {
      this.#stopCheck(l);
      l.primary = null;
      return;
    }
    if (l.primary !== null && !route.endpoints.some((e) => endpointKey(e) === l.primary)) {
      // The primary left the table (unhealthy, stopped): nobody is primary until a check says so.
      this.#setPrimary(l, null, 'the primary is no longer a healthy instance of the service');
    }
    const checkChanged = before.primaryCheck === null || before.primaryCheck.path !== pc.path || before.primaryCheck.intervalMs !== pc.intervalMs || before.primaryCheck.timeoutMs !== pc.timeoutMs;
    if (checkChanged || !sameEndpoints(before.endpoints, route.endpoints)) this.#checkNow(l);
  }

  #remove(l: Listener, reason: string): Promise<void> {
    l.closed = true;
    this.#listeners.delete(l.route.port);
    this.#stopCheck(l);
    if (l.relistenTimer !== null) clearTimeout(l.relistenTimer);
    l.relistenTimer = null;
    const closed = new Promise<void>((resolve) => {
      if (!l.server.listening) return resolve();
      l.server.close(() => resolve());
    });
    this.#cutWhere(l, () => true, reason);
    if (l.listening) this.#log.info({ ...l.scope, reason }, 'tcp listener closed');
    l.listening = false;
    return closed;
  }

  #setAccess(l: Listener): void {
    l.allow = blockList(l.route.allow);
    l.deny = blockList(l.route.deny);
  }

  // ---- connections ----

  #accept(l: Listener, client: net.Socket): void {
    client.on('error', (err) => this.#log.debug({ ...l.scope, err }, 'tcp client connection error'));
    if (l.closed) {
      client.destroy();
      return;
    }
    const from = clientAddress(client);
    if (from === null || l.deny?.check(from.address, from.family) === true || (l.allow !== null && !l.allow.check(from.address, from.family))) {
      this.#refused(l, `client ${from?.address ?? 'unknown'} is not allowed by the environment's access rules`);
      client.destroy();
      return;
    }
    const candidates = this.#candidates(l);
    if (candidates.length === 0) {
      this.#refused(l, l.route.primaryCheck !== null ? 'no instance answers its primary check' : 'the service has no healthy instance');
      client.destroy();
      return;
    }
    const conn: Connection = { client, upstream: null, key: null, instance: null };
    l.connections.add(conn);
    client.once('close', (hadError) => {
      l.connections.delete(conn);
      const up = conn.upstream;
      if (up === null || up.destroyed) return;
      // The client is gone both ways: what it sent is already on its way up (if connected).
      if (hadError || up.connecting) up.destroy();
      else up.end(() => up.destroy());
    });
    this.#connect(l, conn, candidates, 0);
  }

  /** The endpoints to try for a new connection, in order. */
  #candidates(l: Listener): Endpoint[] {
    const endpoints = l.route.endpoints;
    if (l.route.primaryCheck !== null) {
      const primary = l.primary === null ? undefined : endpoints.find((e) => endpointKey(e) === l.primary);
      return primary === undefined ? [] : [primary];
    }
    const n = endpoints.length;
    if (n === 0) return [];
    const start = l.cursor % n;
    l.cursor = (start + 1) % n;
    const out: Endpoint[] = [];
    for (let i = 0; i < n; i++) {
      const e = endpoints[(start + i) % n];
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  #connect(l: Listener, conn: Connection, candidates: readonly Endpoint[], index: number): void {
    const { client } = conn;
    if (client.destroyed || l.closed) return;
    const e = candidates[index];
    if (e === undefined) {
      this.#log.warn({ ...l.scope, tried: candidates.map((c) => c.instance) }, 'tcp connection closed: no instance accepted it');
      client.destroy();
      return;
    }
    const key = endpointKey(e);
    const upstream = net.connect({ host: e.address, port: e.port, allowHalfOpen: true, noDelay: true });
    conn.upstream = upstream;
    conn.key = key;
    conn.instance = e.instance;
    let connected = false;
    upstream.setTimeout(this.limits.connectTimeoutMs);
    const onTimeout = (): void => {
      if (connected) {
        this.#log.debug({ ...l.scope, instance: e.instance, idleTimeoutMs: this.limits.idleTimeoutMs }, 'tcp connection idle; closed');
        upstream.destroy();
        client.destroy();
      } else {
        upstream.destroy(Object.assign(new Error(`no connection within ${this.limits.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }
    };
    upstream.on('timeout', onTimeout);
    upstream.on('error', (err) => {
      if (connected) {
        this.#log.debug({ ...l.scope, instance: e.instance, err }, 'tcp upstream connection error');
        return; // 'close' (with hadError) ends the client side
      }
      conn.upstream = null;
      const next = l.route.primaryCheck === null ? candidates[index + 1] : undefined;
      this.#log.warn({ ...l.scope, instance: e.instance, address: key, err, next: next?.instance ?? null }, 'tcp upstream connect failed');
      this.#connect(l, conn, candidates, index + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      // The primary may have changed while this connection was being opened.
      if (l.route.primaryCheck !== null && l.primary !== key) {
        this.#log.info({ ...l.scope, instance: e.instance }, 'tcp connection closed: its instance stopped being the primary while connecting');
        upstream.destroy();
        client.destroy();
        return;
      }
      upstream.setTimeout(this.limits.idleTimeoutMs);
      client.setTimeout(this.limits.idleTimeoutMs, onTimeout);
      upstream.once('close', (hadError) => {
        if (client.destroyed) return;
        if (hadError) client.destroy();
        else client.end(() => client.destroy());
      });
      // pipe(): backpressure both ways, and each side's FIN ends the other's writable only.
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  /** Logs a refused connection, at most once per REFUSAL_LOG_MS per listener, with the count since the last line. */
  #refused(l: Listener, reason: string): void {
    l.refused += 1;
    const now = Date.now();
    if (now - l.lastRefusalLogMs < REFUSAL_LOG_MS) return;
    l.lastRefusalLogMs = now;
    this.#log.warn({ ...l.scope, reason, refused: l.refused }, 'tcp connection refused');
    l.refused = 0;
  }

  #cutWhere(l: Listener, which: (conn: Connection) => boolean, reason: string): void {
    let cut = 0;
    const instances = new Set<string>();
    for (const conn of [...l.connections]) {
      if (!which(conn)) continue;
      cut += 1;
      if (conn.instance !== null) instances.add(conn.instance);
      l.connections.delete(conn);
      conn.upstream?.destroy();
      conn.client.destroy();
    }
    if (cut > 0) this.#log.info({ ...l.scope, connections: cut, instances: [...instances], reason }, 'tcp connections cut');
  }

  // ---- primary checks ----

  #setPrimary(l: Listener, key: string | null, reason: string): void {
    if (l.primary === key) return;
    const from = l.primary === null ? null : (l.route.endpoints.find((e) => endpointKey(e) === l.primary)?.instance ?? l.primary);
    const to = key === null ? null : (l.route.endpoints.find((e) => endpointKey(e) === key)?.instance ?? key);
    l.primary = key;
    const decision = to === null ? `no primary: ${reason}` : `${to} is the primary: ${reason}`;
    if (to === null) this.#log.warn({ ...l.scope, from, to, decision }, 'tcp primary changed');
    else this.#log.info({ ...l.scope, from, to, decision }, 'tcp primary changed');
    // A demoted primary keeps no clients: they reconnect and reach the new one.
    this.#cutWhere(l, (c) => c.key !== key, to === null ? 'no instance is the primary' : `the primary moved to ${to}`);
  }

  #scheduleCheck(l: Listener, delayMs: number): void {
    if (l.closed || l.route.primaryCheck === null || l.check.running) return;
    if (l.check.timer !== null) clearTimeout(l.check.timer);
    l.check.timer = setTimeout(() => {
      l.check.timer = null;
      void this.#checkRound(l);
    }, delayMs);
    l.check.timer.unref();
  }

  /** A check round at once (or right after the one running). */
  #checkNow(l: Listener): void {
    if (l.check.running) l.check.again = true;
    else this.#scheduleCheck(l, 0);
  }

  #stopCheck(l: Listener): void {
    if (l.check.timer !== null) clearTimeout(l.check.timer);
    l.check.timer = null;
    l.check.again = false;
  }

  /**
   * Asks every endpoint's primary check at once. The current primary stays while it answers
   * 200 (two claiming it must not make connections flap); otherwise the first endpoint that
   * answered 200 becomes the primary, or none.
   */
  async #checkRound(l: Listener): Promise<void> {
    const route = l.route;
    const pc = route.primaryCheck;
    if (pc === null || l.closed) return;
    l.check.running = true;
    l.check.again = false;
    const startedMs = Date.now();
    try {
      const answers = await Promise.all(
        route.endpoints.map(async (e) => {
          const status = e.checkPort === undefined || e.checkPort === null ? null : await checkStatus(e.address, e.checkPort, pc.path, pc.timeoutMs);
          return { endpoint: e, status };
        }),
      );
      if (l.closed) return;
      // Answers for a table that changed meanwhile are stale: a fresh round follows.
      if (l.route !== route && !sameEndpoints(l.route.endpoints, route.endpoints)) {
        l.check.again = true;
        return;
      }
      const primaries = answers.filter((a) => a.status === 200).map((a) => endpointKey(a.endpoint));
      if (primaries.length > 1) {
        this.#log.warn({ ...l.scope, instances: answers.filter((a) => a.status === 200).map((a) => a.endpoint.instance) }, 'more than one instance answers its primary check; keeping one');
      }
      const next = l.primary !== null && primaries.includes(l.primary) ? l.primary : (primaries[0] ?? null);
      const reason =
        next === null
          ? `no instance answered 200 on ${pc.path} (${answers.map((a) => `${a.endpoint.instance}: ${a.status ?? 'no answer'}`).join(', ') || 'no healthy instance'})`
          : `it answered 200 on ${pc.path}`;
      this.#setPrimary(l, next, reason);
    } catch (err) {
      this.#log.error({ ...l.scope, err }, 'tcp primary check failed');
    } finally {
      l.check.running = false;
      const elapsed = Date.now() - startedMs;
      if (!l.closed && l.route.primaryCheck !== null) {
        const interval = l.route.primaryCheck.intervalMs;
        this.#scheduleCheck(l, l.check.again ? 0 : Math.max(0, interval - elapsed));
      }
    }
  }
}
