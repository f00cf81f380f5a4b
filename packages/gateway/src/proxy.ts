/**
 * The edge proxy. A node:http listener for clients and one undici keep-alive pool per
 * instance endpoint. Each request runs through a fixed pipeline:
 *
 *   1. prepare   — read the headers once: Host, X-Request-Id, body or not, the upstream headers
 *   2. guards    — access control / WAF stages (`GatewayOptions.guards`), may reject
 *   3. route     — Host → environment, longest path prefix → service route
 *   4. pick      — round robin over the route's endpoints, skipping ejected ones
 *   5. exchange  — stream the request up and the response down; on a connection failure eject
 *                  the endpoint and retry once elsewhere (idempotent, bodiless, nothing sent yet)
 *   6. log       — one JSON line in the access log
 *
 * The hot path is written to cost little CPU per request, since the gateway shares the
 * machine with the instances it serves: undici at its lowest level (`Pool.dispatch` with
 * the exchange as the handler, so no response stream or promise per request), no closures
 * or URL parsing per request (the response class carries its exchange, so the listeners
 * are shared functions), headers copied once into flat arrays, and the access line built
 * by hand (access-log.ts).
 *
 * The gateway serves the routing table it was last given (also read back from its state
 * directory at start), so it keeps working while the control plane is down.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { RoutingTable } from '@lanes/spec';
import { AccessLog } from './access-log.js';
import { resolveLimits } from './config.js';
import type { GatewayLimits } from './config.js';
import { silentLogger } from './logging.js';
import type { Logger } from './logging.js';
import { HealthChecker } from './checks.js';
import { ACCESS_LOG_FILE, LatestWriter, readJsonFile, TABLE_FILE } from './persist.js';
import { handleUpgrade } from './upgrade.js';
import { applyHttpsPolicy, HttpsListener, NO_HTTPS } from './tls.js';
import type { HttpsPolicy } from './tls.js';
import { TcpRouter } from './tcp.js';
import type { UpgradeContext } from './upgrade.js';
import { BodyTooLargeError, checkFraming, EdgeAccess, isPlainHost, refuseAuthority } from './access.js';
import { normalizeHost, routeTimeoutMs, RoutingState, stickyCookie, stickyInstance } from './routing.js';
import type { EjectionEvent, Outcome, RouteMatch, Upstream } from './routing.js';

/** A guard's verdict that stops a request before routing. */
export interface Rejection {
  readonly status: number;
  /** One line, sent as the plain-text body. */
  readonly message: string;
}

/**
 * An access-control or WAF stage. Guards run in order before routing; the first that
 * returns a Rejection answers the request. They must be synchronous and cheap.
 */
export type RequestGuard = (req: http.IncomingMessage) => Rejection | null;

export interface GatewayOptions {
  /** Where the routing table, the access log and the ready file live. */
  readonly stateDir: string;
  /** Listen address. @default "127.0.0.1" */
  readonly host?: string;
  /** Listen port; 0 picks a free one. @default 0 */
  readonly httpPort?: number;
  /** HTTPS listen port (tls.ts); 0 picks a free one. @default undefined: no HTTPS */
  readonly httpsPort?: number;
  /** Timeouts and sizes; see GatewayLimits for the defaults. */
  readonly limits?: Partial<GatewayLimits>;
  /** Access control / WAF stages run before routing. @default [] */
  readonly guards?: readonly RequestGuard[];
  /** The process log. @default a silent logger */
  readonly logger?: Logger;
  /**
   * Run the routes' active health checks in this process. A worker of a multi-process
   * gateway turns this off and takes the verdicts from its primary (`setCheckDown`).
   * @default true
   */
  readonly activeChecks?: boolean;
  /**
   * Write each accepted table to the state directory (read back at start). A worker of a
   * multi-process gateway leaves that to its primary. @default true
   */
  readonly persistTable?: boolean;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
/** Failures where no request reached the application: safe to eject and retry. */
const CONNECTION_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  // undici: the connection closed before a response (e.g. an idle keep-alive one the
  // instance had just closed) or could not be opened in time.
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The error's code, or its class name for those undici gives none (HTTPParserError). */
function errorCode(err: Error): string {
  return 'code' in err && typeof err.code === 'string' ? err.code : err.name;
}

/** The reason given to undici when the client went away; never reported. */
class ClientClosedError extends Error {
  readonly code = 'LANES_CLIENT_CLOSED';
  constructor() {
    super('client closed the connection');
    this.name = 'ClientClosedError';
  }
}
/**
 * Response headers not forwarded: hop-by-hop ones (RFC 9110 §7.6.1), and X-Request-Id,
 * which the gateway sets itself.
 */
function isDroppedResponseHeader(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'proxy-authenticate':
    case 'te':
    case 'trailer':
    case 'transfer-encoding':
    case 'upgrade':
    case 'x-request-id':
      return true;
    default:
      return false;
  }
}

/** Requests routed per service since the last `take` (the autoscaler's traffic report). */
export class TrafficCounter {
  readonly #routing: RoutingState;
  constructor(routing: RoutingState) {
    this.#routing = routing;
  }

  take(): { tenant: string; environment: string; service: string; requests: number }[] {
    return this.#routing.stats.takeRequests();
  }
}

/** What an exchange needs from its gateway; kept narrow so the hot path stays obvious. */
interface ProxyContext {
  readonly routing: RoutingState;
  readonly limits: GatewayLimits;
  readonly guards: readonly RequestGuard[];
  readonly log: Logger;
  readonly access: AccessLog;
  /** Access control per environment and hostile-framing checks (access.ts). */
  readonly edge: EdgeAccess;
  /** Where plain-HTTP requests of environments that ask for it are redirected (tls.ts). */
  readonly https: HttpsPolicy;
  pool(upstream: Upstream): Pool;
  done(): void;
}

/**
 * The server's response class. It carries its exchange so that the close and drain
 * listeners are two shared functions instead of two closures per request.
 */
export class GatewayResponse extends http.ServerResponse {
  exchange: Exchange | null = null;
}

function onResponseClose(this: GatewayResponse): void {
  this.exchange?.closed();
}

function onResponseDrain(this: GatewayResponse): void {
  this.exchange?.drained();
}

/**
 * One client request and its upstream attempts. It is its own undici dispatch handler, so
 * a request costs this object, its header list and its dispatch options (built once for
 * every attempt), however many chunks it streams. (undici's older onConnect/onHeaders/…
 * handler form skips the controller and the parsed header object, but measured no
 * faster, and it is deprecated.)
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #ctx: ProxyContext;
  readonly #req: http.IncomingMessage;
  readonly #res: GatewayResponse;
  readonly #startMs = performance.now();
  #requestId = '';
  #client = '';
  #host = '';
  #cookie = '';
  /** Set-Cookie pinning the client to the chosen instance (sticky routes), or null. */
  #setCookie: string | null = null;
  /** The upstream whose in-flight count holds this request. */
  #counted: Upstream | null = null;
  /** The instance the client's sticky cookie names, if any. */
  #pinned: string | null = null;
  #path = '/';
  #headers: string[] = [];
  /** What undici sends upstream; the same object for a retry. */
  #opts: Dispatcher.DispatchOptions | null = null;
  #hasBody = false;
  #match: RouteMatch | null = null;
  #upstream: Upstream | null = null;
  #controller: Dispatcher.DispatchController | null = null;
  /** The current attempt ended (completed or failed): nothing more to abort or report. */
  #upstreamDone = false;
  #retried = false;
  #clientGone = false;
  #responded = false;
  #drainHooked = false;
  #status = 0;
  #bytes = 0;

  constructor(ctx: ProxyContext, req: http.IncomingMessage, res: GatewayResponse) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
  }

  run(): void {
    const res = this.#res;
    res.exchange = this;
    res.on('close', onResponseClose);
    const badTarget = this.#prepare();
    if (badTarget !== null) return typeof badTarget === 'string' ? this.#answer(400, badTarget) : this.#answer(badTarget.status, badTarget.message);

    // Access control / WAF stages: the place for allow-lists, rate limits and rules.
    const guards = this.#ctx.guards;
    for (let i = 0; i < guards.length; i++) {
      const guard = guards[i];
      const rejection = guard === undefined ? null : guard(this.#req);
      if (rejection !== null) return this.#answer(rejection.status, rejection.message);
    }

    const routing = this.#ctx.routing;
    const match = routing.match(this.#host, this.#path);
    if (match === null) {
      const vhost = routing.lookupHost(this.#host);
      if (vhost === null) return this.#answer(404, `no environment is served at host ${JSON.stringify(normalizeHost(this.#host))}`);
      return this.#answer(404, `no route of ${vhost.tenant}/${vhost.environment} serves path ${JSON.stringify(pathOnly(this.#path))}`);
    }
    this.#match = match;
    match.stats.requests++;
    match.stats.inFlight++;
    // Access control per environment (access.ts): allow/deny, connections, rates, body size.
    const refused = this.#ctx.edge.admit(match.vhost, this.#client, this.#hasBody, this.#req, res);
    if (refused !== null) return this.#answer(refused.status, refused.message);
    if (applyHttpsPolicy(this.#ctx.https, match.vhost, this.#req, res, this.#path)) return this.#answer(308, 'this environment is served over HTTPS');
    const pinned = this.#cookie === '' ? null : stickyInstance(match, this.#cookie);
    this.#pinned = pinned;
    const upstream = routing.pick(match, undefined, pinned);
    if (upstream === null) {
      return this.#answer(503, `no healthy instance of service ${JSON.stringify(match.route.service)} in ${match.vhost.tenant}/${match.vhost.environment}`);
    }
    this.#dispatch(upstream);
  }

  /**
   * One pass over the raw headers: finds Host, X-Request-Id, X-Forwarded-For and whether a
   * body follows, and builds the upstream header list without hop-by-hop headers. Returns
   * an error message when the request target is unusable, or a refusal of hostile framing.
   */
  #prepare(): Rejection | string | null {
    const req = this.#req;
    const raw = req.rawHeaders;
    const out: string[] = [];
    let forwardedFor = '';
    let incomingId = '';
    let connectionTokens: string | null = null;
    let hostIndex = -1;
    let lengthIndex = -1;
    let chunked = false;
    // Hostile framing (access.ts checkFraming): counted in the loop, decided after it.
    let hosts = 0;
    let lengths = 0;
    let encodings = 0;
    let encoding = '';
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] ?? '';
      const value = raw[i + 1] ?? '';
      switch (name.toLowerCase()) {
        case 'host':
          hosts++;
          this.#host = value;
          hostIndex = out.length;
          out.push(name, value);
          break;
        case 'content-length':
          lengths++;
          if (value !== '0') this.#hasBody = true;
          lengthIndex = out.length;
          out.push(name, value);
          break;
        case 'transfer-encoding':
          encodings++;
          encoding = value;
          this.#hasBody = true;
          chunked = true;
          break;
        case 'connection':
          if (value !== 'keep-alive' && value !== 'close') connectionTokens = connectionTokens === null ? value : `${connectionTokens},${value}`;
          break;
        case 'keep-alive':
        case 'proxy-connection':
        case 'proxy-authorization':
        case 'te':
        case 'trailer':
        case 'upgrade':
        case 'expect':
        case 'x-forwarded-proto':
        case 'x-forwarded-host':
          break;
        case 'x-forwarded-for':
          forwardedFor = forwardedFor === '' ? value : `${forwardedFor}, ${value}`;
          break;
        case 'x-request-id':
          incomingId = value;
          break;
        case 'cookie':
          this.#cookie = this.#cookie === '' ? value : `${this.#cookie}; ${value}`;
          out.push(name, value);
          break;
        default:
          out.push(name, value);
      }
    }
    if (hosts !== 1 || lengths > 1 || encodings !== 0 || !isPlainHost(this.#host)) {
      const hostile = checkFraming(this.#res, req.httpVersion, hosts, this.#host, lengths, encodings, encoding);
      if (hostile !== null) {
        this.#client = req.socket.remoteAddress ?? '';
        this.#requestId = randomUUID();
        return hostile;
      }
    }
    // Node decodes a chunked body; undici sends it up re-chunked, so a Content-Length
    // beside it (which Node would have refused anyway) must not go.
    if (chunked && lengthIndex >= 0) out.splice(lengthIndex, 2);
    if (connectionTokens !== null) removeConnectionTokens(out, connectionTokens);

    let target = req.url ?? '/';
    if (target.charCodeAt(0) !== 47 /* / */) {
      // Absolute form (`GET http://host/path`): the URL's authority replaces Host.
      if (!/^https?:\/\//i.test(target)) return `request target ${JSON.stringify(target.slice(0, 100))} is not a path`;
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        return `request target ${JSON.stringify(target.slice(0, 100))} is not a valid URL`;
      }
      target = `${url.pathname}${url.search}`;
      // A Host naming another authority: two parsers could disagree on the target (access.ts).
      if (hostIndex >= 0 && normalizeHost(this.#host) !== normalizeHost(url.host)) return refuseAuthority(this.#res, url.host, this.#host);
      this.#host = url.host;
      if (hostIndex >= 0) out[hostIndex + 1] = url.host;
      else out.push('host', url.host);
    }
    this.#path = target;

    this.#requestId = REQUEST_ID_RE.test(incomingId) ? incomingId : randomUUID();
    // Read now: the socket is detached from the request once the response is done.
    const client = req.socket.remoteAddress ?? '';
    this.#client = client;
    out.push(
      'x-forwarded-for',
      forwardedFor === '' ? client : `${forwardedFor}, ${client}`,
      'x-forwarded-proto',
      this.#secure() ? 'https' : 'http',
      'x-forwarded-host',
      this.#host,
      'x-request-id',
      this.#requestId,
    );
    this.#headers = out;
    return null;
  }

  #dispatch(upstream: Upstream): void {
    this.#upstream = upstream;
    this.#controller = null;
    this.#upstreamDone = false;
    upstream.state.outstanding++;
    this.#counted = upstream;
    // Sticky route: (re)pin the client when it lands elsewhere than its cookie says.
    const match = this.#match;
    this.#setCookie = match !== null && upstream.endpoint.instance !== this.#pinned ? stickyCookie(match, upstream, this.#secure()) : null;
    const req = this.#req;
    this.#opts ??= {
      path: this.#path,
      method: req.method ?? 'GET',
      headers: this.#headers,
      body: this.#hasBody ? this.#ctx.edge.body(req) : null, // access.ts: a chunked body counted against its limit
      headersTimeout: this.#match === null ? null : routeTimeoutMs(this.#match),
    };
    // Errors (a destroyed pool, bad options) come back through onResponseError.
    this.#ctx.pool(upstream).dispatch(this.#opts, this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client left while the request waited for a connection.
    if (this.#clientGone) controller.abort(new ClientClosedError());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx answers (103 Early Hints, 100 Continue) are not forwarded; the final one follows.
    if (statusCode < 200) return;
    this.#outcome(statusCode >= 500 ? 'failed' : 'ok');
    if (this.#clientGone) return;
    // Headers the Connection header names are hop-by-hop too (`keep-alive` and `close` are
    // the usual values and name nothing else worth a lookup).
    let named: string[] | null = null;
    const connection = headers['connection'];
    if (connection !== undefined) {
      for (const value of typeof connection === 'string' ? [connection] : connection) {
        for (const token of value.split(',')) {
          const name = token.trim().toLowerCase();
          if (name !== '' && name !== 'keep-alive' && name !== 'close') (named ??= []).push(name);
        }
      }
    }
    // A flat [name, value, …] list: one copy, and writeHead takes it as it is (a value may
    // be a list, as for Set-Cookie). undici gives the names in lower case.
    const out: Array<string | string[]> = [];
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || isDroppedResponseHeader(name) || (named !== null && named.includes(name))) continue;
      out.push(name, value);
    }
    out.push('x-request-id', this.#requestId);
    const sticky = this.#setCookie;
    if (sticky !== null) {
      // One set-cookie entry holding the instance's cookies and ours: a second entry would
      // replace the first wherever Node merges the list by name (setHeader on the response).
      const theirs = headers['set-cookie'];
      if (theirs === undefined) out.push('set-cookie', sticky);
      else {
        for (let i = 0; i < out.length; i += 2) {
          if (out[i] === 'set-cookie') out[i + 1] = [...(typeof theirs === 'string' ? [theirs] : theirs), sticky];
        }
      }
    }
    try {
      this.#res.writeHead(statusCode, out);
    } catch (err) {
      // The instance sent a header Node refuses to forward (e.g. a control character).
      this.#ctx.log.warn({ requestId: this.#requestId, instance: this.#upstream?.endpoint.instance, err }, 'invalid upstream response header');
      this.#upstreamDone = true;
      controller.abort(err instanceof Error ? err : new Error(String(err)));
      this.#answer(502, `${this.#serviceRef()} answered with an invalid header`);
      return;
    }
    this.#status = statusCode;
    this.#responded = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#clientGone) return;
    this.#bytes += chunk.length;
    const res = this.#res;
    if (res.write(chunk)) return;
    // The client is slower than the instance: hold the upstream until it drains.
    controller.pause();
    if (!this.#drainHooked) {
      this.#drainHooked = true;
      res.on('drain', onResponseDrain);
    }
  }

  onResponseEnd(): void {
    this.#upstreamDone = true;
    this.#controller = null;
    this.#release();
    if (!this.#clientGone) this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.#upstreamDone) return;
    this.#upstreamDone = true;
    this.#controller = null;
    this.#release();
    if (this.#clientGone || err instanceof ClientClosedError) return;
    // A chunked body over its limit (access.ts): the client's fault, not the instance's.
    if (err instanceof BodyTooLargeError) return this.#answer(413, err.message);
    const code = errorCode(err);
    const upstream = this.#upstream;
    const log = this.#ctx.log;
    if (!this.#responded) this.#outcome(CONNECTION_FAILURES.has(code) ? 'connect-failed' : 'failed');
    if (this.#responded) {
      // Bytes already went out: the only honest signal left is to cut the connection.
      log.warn({ requestId: this.#requestId, instance: upstream?.endpoint.instance, code }, 'upstream failed mid-response');
      this.#res.destroy();
      return;
    }
    if (upstream !== null && CONNECTION_FAILURES.has(code)) {
      log.warn({ instance: upstream.endpoint.instance, endpoint: upstream.key, code }, 'connection to instance failed');
      const match = this.#match;
      if (!this.#retried && match !== null && !this.#hasBody && IDEMPOTENT.has(this.#req.method ?? '')) {
        this.#retried = true;
        const next = this.#ctx.routing.pick(match, upstream.key);
        if (next !== null) {
          // A fresh tick: undici is still unwinding the failed attempt.
          process.nextTick(retry, this, next);
          return;
        }
      }
    }
    if (TIMEOUTS.has(code)) {
      const waitedMs =
        code === 'UND_ERR_CONNECT_TIMEOUT'
          ? this.#ctx.limits.upstreamConnectTimeoutMs
          : code === 'UND_ERR_HEADERS_TIMEOUT'
            ? ((this.#match === null ? null : routeTimeoutMs(this.#match)) ?? this.#ctx.limits.upstreamHeadersTimeoutMs)
            : this.#ctx.limits.upstreamBodyTimeoutMs;
      this.#answer(504, `${this.#serviceRef()} did not answer within ${waitedMs} ms`);
      return;
    }
    log.warn({ requestId: this.#requestId, instance: upstream?.endpoint.instance, code, err }, 'upstream request failed');
    this.#answer(502, `${this.#serviceRef()} failed to answer (${code})`);
  }

  /** Answers with a gateway error, or cuts the connection when an answer already started. */
  fail(status: number, message: string): void {
    this.#answer(status, message);
  }

  retry(next: Upstream): void {
    if (!this.#clientGone) this.#dispatch(next);
  }

  /** Tells outlier detection how the current attempt went. */
  #outcome(outcome: Outcome): void {
    const up = this.#upstream;
    const match = this.#match;
    if (up !== null && match !== null) this.#ctx.routing.report(match, up, outcome);
  }

  /** The current attempt no longer counts as outstanding at its instance. */
  #release(): void {
    const up = this.#counted;
    if (up !== null) {
      up.state.outstanding--;
      this.#counted = null;
    }
  }

  /** Whether the client talks to the gateway over TLS. */
  #secure(): boolean {
    return (this.#req.socket as { encrypted?: boolean }).encrypted === true;
  }

  #serviceRef(): string {
    const m = this.#match;
    return m === null ? 'the service' : `service ${JSON.stringify(m.route.service)} in ${m.vhost.tenant}/${m.vhost.environment}`;
  }

  /** A gateway-made answer: plain text, one line. */
  #answer(status: number, message: string): void {
    const res = this.#res;
    if (res.headersSent || this.#clientGone) {
      res.destroy();
      return;
    }
    const body = `${message}\n`;
    this.#status = status;
    this.#bytes = Buffer.byteLength(body);
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': this.#bytes,
      'cache-control': 'no-store',
      'x-request-id': this.#requestId,
    });
    res.end(this.#req.method === 'HEAD' ? undefined : body);
  }

  /** The client caught up: let the paused upstream response flow again. */
  drained(): void {
    const c = this.#controller;
    if (c !== null && c.paused) c.resume();
  }

  /** The response is over (sent, or the client went away): abort what is left and log. */
  closed(): void {
    const res = this.#res;
    res.exchange = null;
    if (!res.writableFinished) {
      this.#clientGone = true;
      if (!this.#upstreamDone && this.#controller !== null) this.#controller.abort(new ClientClosedError());
    }
    // Aborted while waiting for a connection: undici may never call back for it.
    if (!this.#upstreamDone) this.#release();
    const upstream = this.#upstream;
    const durationMs = performance.now() - this.#startMs;
    const match = this.#match;
    if (match !== null) {
      match.stats.inFlight--;
      match.stats.record(this.#clientGone ? 0 : this.#status, durationMs);
    }
    this.#ctx.access.write({
      requestId: this.#requestId,
      client: this.#client,
      host: this.#host,
      method: this.#req.method ?? '',
      path: pathOnly(this.#path),
      // 499: the client went away before the answer was complete (nginx's convention).
      status: this.#clientGone ? 499 : this.#status,
      durationMs: Math.round(durationMs * 10) / 10,
      upstream: upstream === null ? null : upstream.endpoint.instance,
      bytes: this.#bytes,
    });
    this.#ctx.done();
  }
}

function retry(exchange: Exchange, next: Upstream): void {
  exchange.retry(next);
}

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Removes the headers a Connection header names (they are hop-by-hop by declaration). */
function removeConnectionTokens(headers: string[], tokens: string): void {
  const names = new Set(tokens.split(',').map((t) => t.trim().toLowerCase()));
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.has((headers[i] ?? '').toLowerCase())) headers.splice(i, 2);
  }
}

/**
 * The edge gateway: listener, routing state, upstream pools, access log and the persisted
 * table. `applyTable` is how a new table arrives (from the watch stream or a test).
 */
export class Gateway {
  readonly routing: RoutingState;
  /** Requests routed per service since the last report (the autoscaler's input). */
  readonly traffic: TrafficCounter;
  readonly limits: GatewayLimits;
  readonly stateDir: string;
  readonly #host: string;
  readonly #port: number;
  readonly #guards: readonly RequestGuard[];
  readonly #log: Logger;
  readonly #pools = new Map<string, Pool>();
  readonly #tableWriter: LatestWriter;
  readonly #server: http.Server<typeof http.IncomingMessage, typeof GatewayResponse>;
  readonly #access = new AccessLog();
  #inFlight = 0;
  #onIdle: (() => void) | null = null;
  #url: string | null = null;
  #closing: Promise<void> | null = null;
  readonly #ctx: ProxyContext;
  readonly #checker: HealthChecker | null;
  readonly #persistTable: boolean;
  #connections = 0;
  readonly #upgradeCtx: UpgradeContext;
  /** Access control per environment and connections per client (access.ts). */
  readonly edge: EdgeAccess;
  /** The platform TCP listeners (the table's `tcp` routes). */
  readonly tcp: TcpRouter;
  /** The HTTPS listener (tls.ts); null without `httpsPort`. */
  readonly #https: HttpsListener | null;

  constructor(options: GatewayOptions) {
    this.limits = resolveLimits(options.limits);
    this.stateDir = path.resolve(options.stateDir);
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.httpPort ?? 0;
    this.#guards = Object.freeze([...(options.guards ?? [])]);
    this.#log = options.logger ?? silentLogger();
    this.tcp = new TcpRouter({ host: this.#host, logger: this.#log, limits: { connectTimeoutMs: this.limits.upstreamConnectTimeoutMs } });
    const log = this.#log;
    this.routing = new RoutingState({
      onEject: (e: EjectionEvent) => log.warn({ tenant: e.tenant, env: e.environment, service: e.service, instance: e.instance, endpoint: e.key, ejectMs: e.ms, reason: e.reason }, 'instance ejected'),
    });
    this.traffic = new TrafficCounter(this.routing);
    this.#persistTable = options.persistTable ?? true;
    this.edge = new EdgeAccess({ routing: this.routing, limits: this.limits, log });
    this.#checker =
      options.activeChecks === false
        ? null
        : new HealthChecker({
            onChange: (key, down, target, detail) => {
              this.routing.setCheckDown(key, down);
              log.warn({ instance: target.instance, endpoint: key, detail }, down ? 'instance failed its health checks: out of rotation' : 'instance passes its health checks again: back in rotation');
            },
          });
    mkdirSync(this.stateDir, { recursive: true });
    this.#tableWriter = new LatestWriter(path.join(this.stateDir, TABLE_FILE), (err) =>
      this.#log.error({ err, file: TABLE_FILE }, 'routing table not persisted'),
    );
    const limits = this.limits;
    this.#server = http.createServer(
      {
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        maxHeaderSize: limits.maxHeaderBytes,
        // How often Node checks the two timeouts above; its 30 s default would stretch them.
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
        requireHostHeader: true,
        noDelay: true,
        ServerResponse: GatewayResponse,
      },
      (req, res) => this.#handle(req, res),
    );
    this.#server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    this.#upgradeCtx = {
      routing: this.routing,
      log: this.#log,
      connectTimeoutMs: limits.upstreamConnectTimeoutMs,
      idleTimeoutMs: limits.upgradeIdleTimeoutMs,
      admit: (req, match) => this.edge.admitUpgrade(req, match),
      tunnels: new Set(),
    };
    // Connections per client (access.ts): counted when accepted, one too many closed at once.
    this.#server.on('connection', (socket: net.Socket) => this.edge.onConnection(socket));
    this.#server.on('connection', (socket: net.Socket) => {
      this.#connections++;
      socket.once('close', () => this.#connections--);
    });
    this.#server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
    this.#server.maxConnections = limits.maxConnections;
    this.#https =
      options.httpsPort === undefined
        ? null
        : new HttpsListener({
            host: this.#host,
            port: options.httpsPort,
            routing: this.routing,
            limits,
            log: this.#log,
            handle: (req, res) => this.#handle(req, res),
            onConnection: (socket) => this.edge.onConnection(socket),
            onUpgrade: (req, socket, head) => this.handleUpgrade(req, socket, head),
          });
    this.#ctx = {
      routing: this.routing,
      limits,
      guards: this.#guards,
      log: this.#log,
      access: this.#access,
      edge: this.edge,
      https: this.#https ?? NO_HTTPS,
      pool: (upstream) => this.#pool(upstream),
      done: () => this.#requestDone(),
    };
  }

  /** `http://host:port` once listening. */
  get url(): string {
    if (this.#url === null) throw new Error('gateway is not listening; call start() first');
    return this.#url;
  }

  /** `https://host:port` once listening; null without an HTTPS listener. */
  get httpsUrl(): string | null {
    return this.#https?.url ?? null;
  }

  /** Client connections open on the HTTP listener. */
  get connections(): number {
    return this.#connections;
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Opens the access log, loads the persisted routing table (serving it immediately, with
   * or without a control plane) and starts listening. Resolves to the URL.
   */
  async start(): Promise<string> {
    await this.#access.open(path.join(this.stateDir, ACCESS_LOG_FILE));

    await this.#loadPersisted();

    this.#server.listen(this.#port, this.#host);
    await once(this.#server, 'listening');
    const addr = this.#server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : this.#port;
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host;
    this.#url = `http://${host}:${port}`;
    this.#log.info({ url: this.#url, revision: this.routing.revision }, 'gateway listening');
    if (this.#https !== null) await this.#https.listen();
    return this.#url;
  }

  /**
   * Validates and installs a routing table, then persists it (atomically, in the
   * background). Throws an InputError naming the bad field and keeps the last good table.
   */
  applyTable(candidate: unknown): RoutingTable {
    const table = this.routing.replace(candidate);
    this.tcp.apply(table.tcp ?? []);
    this.#checker?.sync(this.routing.checkTargets());
    if (this.#persistTable) this.#tableWriter.write(JSON.stringify(table));
    this.#prunePools();
    this.#log.info({ revision: table.revision, hosts: table.hosts.length }, 'routing table applied');
    return table;
  }

  /** Resolves when every accepted table is on disk. */
  async persisted(): Promise<void> {
    await this.#tableWriter.idle();
  }

  /**
   * Stops accepting connections, lets in-flight requests finish for up to `graceMs`, then
   * cuts what is left, closes the upstream pools and flushes the access log.
   */
  close(graceMs: number = this.limits.shutdownGraceMs): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const server = this.#server;
    const closed = server.listening ? once(server, 'close') : Promise.resolve([]);
    const httpsClosed = this.#https?.close(graceMs, () => this.#inFlight > 0);
    if (server.listening) server.close();
    server.closeIdleConnections();
    if (this.#inFlight > 0) {
      const idle = new Promise<void>((resolve) => {
        this.#onIdle = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      // Keep-alive connections become idle as their responses finish; close them then.
      const sweeper = setInterval(() => server.closeIdleConnections(), 50);
      await Promise.race([idle, deadline]);
      clearTimeout(timer);
      clearInterval(sweeper);
      if (this.#inFlight > 0) this.#log.warn({ inFlight: this.#inFlight, graceMs }, 'shutdown grace over; cutting requests');
    }
    server.closeAllConnections();
    this.#checker?.close();
    await closed;
    await httpsClosed;
    await this.tcp.close();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
    await this.#tableWriter.idle();
    await this.#access.close();
    this.#log.info('gateway stopped');
  }

  async #loadPersisted(): Promise<void> {
    const file = path.join(this.stateDir, TABLE_FILE);
    try {
      const saved = await readJsonFile(file);
      if (saved === null) return;
      const table = this.routing.replace(saved);
      this.tcp.apply(table.tcp ?? []);
      this.#checker?.sync(this.routing.checkTargets());
      this.#log.info({ revision: table.revision, hosts: table.hosts.length }, 'persisted routing table loaded');
    } catch (err) {
      // A broken file is not fatal: the watch stream brings a fresh table.
      this.#log.warn({ err, file }, 'persisted routing table ignored');
    }
  }

  /** An Upgrade request (WebSocket): routed, then tunnelled to the instance. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      handleUpgrade(this.#upgradeCtx, req, socket, head);
    } catch (err) {
      this.#log.error({ err }, 'upgrade pipeline failed');
      socket.destroy();
    }
  }

  /** A verdict of the primary's active health checks (multi-process gateway). */
  setCheckDown(key: string, down: boolean): void {
    this.routing.setCheckDown(key, down);
  }

  #handle(req: http.IncomingMessage, res: GatewayResponse): void {
    this.#inFlight++;
    const exchange = new Exchange(this.#ctx, req, res);
    try {
      exchange.run();
    } catch (err) {
      // A bug (or a throwing guard) must cost one request, never the process.
      this.#log.error({ err, req }, 'request pipeline failed');
      exchange.fail(500, 'internal gateway error');
    }
  }

  #requestDone(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#onIdle !== null) {
      const resolve = this.#onIdle;
      this.#onIdle = null;
      resolve();
    }
  }

  #pool(upstream: Upstream): Pool {
    let pool = this.#pools.get(upstream.origin);
    if (pool === undefined) {
      const l = this.limits;
      pool = new Pool(upstream.origin, {
        connections: l.upstreamConnections,
        // One request per connection at a time: a slow answer never holds up another's.
        pipelining: 1,
        keepAliveTimeout: l.upstreamKeepAliveTimeoutMs,
        // The instance's Keep-Alive hint may shorten the idle time, never lengthen it.
        keepAliveMaxTimeout: l.upstreamKeepAliveTimeoutMs,
        headersTimeout: l.upstreamHeadersTimeoutMs,
        bodyTimeout: l.upstreamBodyTimeoutMs,
        maxHeaderSize: l.maxHeaderBytes,
        connect: { timeout: l.upstreamConnectTimeoutMs },
      });
      this.#pools.set(upstream.origin, pool);
    }
    return pool;
  }

  /** Closes (gracefully) the pools of endpoints the new table no longer has. */
  #prunePools(): void {
    const keep = this.routing.origins();
    for (const [origin, pool] of this.#pools) {
      if (keep.has(origin)) continue;
      this.#pools.delete(origin);
      pool.close().catch((err: unknown) => this.#log.debug({ err, origin }, 'upstream pool close failed'));
    }
  }
}
