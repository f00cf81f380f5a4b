/**
 * The edge proxy: the gateway's own HTTP/1.1 engine (connection.ts for clients, upstream.ts
 * for instances, http1.ts for the framing) with this request pipeline:
 *
 *   1. prepare   — one pass over the head: Host, X-Request-Id, body framing, the client
 *                  (forwarded.ts: the peer, or what a trusted proxy says) and the upstream
 *                  head with the gateway's own X-Forwarded-*, X-Real-IP and Forwarded;
 *                  hostile framing refused (access.ts checkFraming)
 *   2. guards    — access control / WAF stages (`GatewayOptions.guards`), may reject
 *   3. route     — Host → environment, longest path prefix → service route
 *   4. admit     — the environment's access control (allow/deny, connections, rates, body size)
 *   5. pick      — round robin or least outstanding, sticky cookie, skipping ejected and
 *                  checked-down instances
 *   6. exchange  — the head and body go up as they come, the answer comes down as it comes
 *                  (chunk framing passed through, backpressure both ways); on a connection
 *                  failure the instance is ejected and an idempotent bodiless request retried
 *                  once elsewhere
 *   7. log       — figures for /metrics and one JSON line in the access log
 *
 * Why not node:http and a client library: at the edge every request pays for two HTTP
 * parsers and two sets of message objects and streams. Reading the bytes once, checking
 * them strictly and writing them on costs a third of the CPU (bench/gateway.mjs; ADR 004),
 * and the strictness is what refuses request smuggling.
 *
 * The gateway serves the routing table it was last given (also read back from its state
 * directory at start), so it keeps working while the control plane is down.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type tls from 'node:tls';
import type { RoutingTable } from '@lanes/spec';
import { AccessLog } from './access-log.js';
import { checkFraming, EdgeAccess, isPlainHost, refuseAuthority } from './access.js';
import type { CidrMatcher, Refusal } from './access.js';
import { resolveLimits } from './config.js';
import type { GatewayLimits } from './config.js';
import { ClientConnection, RequestBody } from './connection.js';
import type { ConnectionContext, RequestSink } from './connection.js';
import { HealthChecker } from './checks.js';
import { compileTrustedProxies, forwardingHeaders, isForwardingAlias, resolveClient } from './forwarded.js';
import type { ClientChain } from './forwarded.js';
import { ChunkedDecoder, hasToken, parseContentLength, statusLine } from './http1.js';
import type { RequestHead, ResponseHead } from './http1.js';
import { silentLogger } from './logging.js';
import type { Logger } from './logging.js';
import { LatestWriter, readJsonFile } from '@lanes/runtime';
import { ACCESS_LOG_FILE, TABLE_FILE } from './persist.js';
import { normalizeHost, routeTimeoutMs, RoutingState, stickyCookie, stickyInstance } from './routing.js';
import type { EjectionEvent, Outcome, RouteMatch, Upstream } from './routing.js';
import { TcpRouter } from './tcp.js';
import { hstsOf, httpsRedirect, HttpsListener, NO_HTTPS } from './tls.js';
import type { HttpsPolicy } from './tls.js';
import { handleUpgrade } from './upgrade.js';
import type { UpgradeContext } from './upgrade.js';
import { BodyKind, Sweeper, UpstreamPool } from './upstream.js';
import type { UpstreamConnection, UpstreamHandler } from './upstream.js';

/** A guard's verdict that stops a request before routing. */
export interface Rejection {
  readonly status: number;
  /** One line, sent as the plain-text body. */
  readonly message: string;
}

/** What a guard sees of a request: its head as sent, and the client's socket. */
export interface GatewayRequest {
  /**
   * The client address: the socket's peer, or the right-most untrusted address of a trusted
   * proxy's X-Forwarded-For (forwarded.ts).
   */
  readonly client: string;
  readonly method: string;
  /** The request target as sent. */
  readonly url: string;
  readonly httpVersion: '1.0' | '1.1';
  /** `[name, value, …]` as sent. */
  readonly rawHeaders: readonly string[];
  readonly socket: net.Socket;
}

/**
 * An access-control or WAF stage. Guards run in order before routing; the first that
 * returns a Rejection answers the request. They must be synchronous and cheap.
 */
export type RequestGuard = (req: GatewayRequest) => Rejection | null;

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
  /**
   * CIDR blocks (or single addresses) of proxies in front of the gateway: from these peers
   * the X-Forwarded-For chain is kept and the client taken from it (forwarded.ts). From any
   * other peer, the peer is the client and forwarding headers sent are replaced. @default []
   */
  readonly trustedProxies?: readonly string[];
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
const CONNECTION_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'UPSTREAM_CLOSED', 'CONNECT_TIMEOUT']);
/** Failures a connection that served before may show because the instance closed it while idle. */
const STALE_FAILURES = new Set(['ECONNRESET', 'EPIPE', 'UPSTREAM_CLOSED']);
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

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
  /** Peers whose X-Forwarded-For is believed; null: none. */
  readonly trustedProxies: CidrMatcher | null;
  readonly log: Logger;
  readonly access: AccessLog;
  /** Access control per environment and hostile-framing checks (access.ts). */
  readonly edge: EdgeAccess;
  /** Where plain-HTTP requests of environments that ask for it are redirected (tls.ts). */
  readonly https: HttpsPolicy;
  pool(upstream: Upstream): UpstreamPool;
  done(): void;
}

/**
 * Response headers not forwarded: hop-by-hop ones (RFC 9110 §7.6.1), and X-Request-Id,
 * which the gateway sets itself. Checked by length first: most names are none of these.
 */
function isDroppedResponseHeader(name: string): boolean {
  switch (name.length) {
    case 2:
    case 7:
    case 10:
    case 12:
    case 16:
    case 17:
    case 18:
      switch (name.toLowerCase()) {
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
    default:
      return false;
  }
}

/** A head and the first body bytes as one buffer (one write instead of a gathered one). */
function joinHead(head: string, data: Buffer): Buffer {
  const n = head.length;
  const out = Buffer.allocUnsafe(n + data.length);
  out.write(head, 0, n, 'latin1');
  data.copy(out, n);
  return out;
}

/**
 * One client request and its upstream attempts: the client connection's sink for the
 * request body, the upstream connection's handler for the answer, and what guards see.
 */
class Exchange implements RequestSink, UpstreamHandler, GatewayRequest {
  readonly #ctx: ProxyContext;
  readonly #conn: ClientConnection;
  readonly #head: RequestHead;
  readonly #startMs = performance.now();
  #requestId = '';
  #host = '';
  /** The client (forwarded.ts); the peer until the head is read. */
  #client: ClientChain | null = null;
  #cookie = '';
  /** Set-Cookie pinning the client to the chosen instance (sticky routes), or null. */
  #setCookie: string | null = null;
  /** The upstream whose in-flight count holds this request. */
  #counted: Upstream | null = null;
  /** The instance the client's sticky cookie names, if any. */
  #pinned: string | null = null;
  #path = '/';
  /** The head sent upstream (built once; the same for a retry). */
  #upstreamHead = '';
  #body = RequestBody.None;
  #contentLength = 0;
  #expectContinue = false;
  #match: RouteMatch | null = null;
  #hsts: string | null = null;
  #upstream: Upstream | null = null;
  #pool: UpstreamPool | null = null;
  #uconn: UpstreamConnection | null = null;
  /** Body bytes received before the upstream connection was ready. */
  #pending: Buffer[] | null = null;
  #pendingBytes = 0;
  /** Bytes of body already written upstream (a request whose body went out is never retried). */
  #bodyWritten = 0;
  #maxBodyBytes = Infinity;
  #requestComplete = false;
  #retried = false;
  #staleRetried = false;
  #clientGone = false;
  #responded = false;
  #finished = false;
  /** The answer is chunked and the client speaks HTTP/1.0: only the chunk data goes down. */
  #dechunk: ChunkedDecoder | null = null;
  #status = 0;
  #bytes = 0;
  /** The answer's head, held for the body bytes of the same read. */
  #heldHead: string | null = null;

  constructor(ctx: ProxyContext, conn: ClientConnection, head: RequestHead) {
    this.#ctx = ctx;
    this.#conn = conn;
    this.#head = head;
  }

  // GatewayRequest: what guards see.
  get client(): string {
    return this.#client?.client ?? this.#conn.remoteAddress;
  }
  get method(): string {
    return this.#head.method;
  }
  get url(): string {
    return this.#head.url;
  }
  get httpVersion(): '1.0' | '1.1' {
    return this.#head.httpVersion;
  }
  get rawHeaders(): readonly string[] {
    return this.#head.rawHeaders;
  }
  get socket(): net.Socket {
    return this.#conn.socket;
  }

  /**
   * One pass over the head: finds Host, X-Request-Id, X-Forwarded-For, the cookie and the
   * body framing, and builds the upstream head without hop-by-hop headers and with the
   * gateway's own forwarding headers instead of the client's. Returns a
   * refusal (the connection then closes) or null, after telling the connection how the body
   * is framed.
   */
  prepare(): Refusal | null {
    const head = this.#head;
    const raw = head.rawHeaders;
    const out: string[] = [];
    let forwardedFor = '';
    let incomingId = '';
    let connectionTokens: string | null = null;
    let hostIndex = -1;
    let keepAlive = head.httpVersion === '1.1';
    // Framing: counted in the loop, decided after it.
    let hosts = 0;
    let lengths = 0;
    let badLength: string | null = null;
    let encodings = 0;
    let encoding = '';
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      switch (name.toLowerCase()) {
        case 'host':
          hosts++;
          this.#host = value;
          hostIndex = out.length;
          out.push(name, value);
          break;
        case 'content-length': {
          lengths++;
          const n = parseContentLength(value);
          if (n === null) badLength = value;
          else this.#contentLength = n;
          out.push(name, value);
          break;
        }
        case 'transfer-encoding':
          encodings++;
          encoding = value;
          out.push(name, value);
          break;
        case 'connection':
          if (hasToken(value, 'close')) keepAlive = false;
          else if (head.httpVersion === '1.0' && hasToken(value, 'keep-alive')) keepAlive = true;
          if (value.length !== 5 && value.length !== 10) connectionTokens = connectionTokens === null ? value : `${connectionTokens},${value}`;
          break;
        case 'expect':
          if (value.toLowerCase() === '100-continue') this.#expectContinue = true;
          break;
        case 'keep-alive':
        case 'proxy-connection':
        case 'proxy-authorization':
        case 'te':
        case 'trailer':
        case 'upgrade':
        case 'x-forwarded-proto':
        case 'x-forwarded-host':
        case 'x-real-ip':
        case 'forwarded':
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
          // `X_Real_IP` and the like: the same header to CGI-style servers, so dropped too.
          if (!isForwardingAlias(name)) out.push(name, value);
      }
    }
    this.#client = resolveClient(this.#conn.remoteAddress, forwardedFor, this.#ctx.trustedProxies);
    this.#requestId = REQUEST_ID_RE.test(incomingId) ? incomingId : randomUUID();
    if (hosts !== 1 || lengths > 1 || encodings !== 0 || badLength !== null || !isPlainHost(this.#host)) {
      const hostile = checkFraming(head.httpVersion, hosts, this.#host, lengths, badLength, encodings, encoding);
      if (hostile !== null) return hostile;
    }
    if (encodings === 1) this.#body = RequestBody.Chunked;
    else if (this.#contentLength > 0) this.#body = RequestBody.Length;
    if (connectionTokens !== null) removeConnectionTokens(out, connectionTokens);
    this.#conn.expectBody(this.#body, this.#contentLength, keepAlive);

    let target = head.url;
    if (target.charCodeAt(0) !== 47 /* / */) {
      // Absolute form (`GET http://host/path`): the URL's authority replaces Host.
      if (!/^https?:\/\//i.test(target)) return { status: 400, message: `request target ${JSON.stringify(target.slice(0, 100))} is not a path`, close: true };
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        return { status: 400, message: `request target ${JSON.stringify(target.slice(0, 100))} is not a valid URL`, close: true };
      }
      target = `${url.pathname}${url.search}`;
      // A Host naming another authority: two parsers could disagree on the target (access.ts).
      if (hostIndex >= 0 && normalizeHost(this.#host) !== normalizeHost(url.host)) return refuseAuthority(url.host, this.#host);
      this.#host = url.host;
      if (hostIndex >= 0) out[hostIndex + 1] = url.host;
      else out.push('Host', url.host);
    }
    this.#path = target;
    let text = `${head.method} ${target} HTTP/1.1\r\n`;
    for (let i = 0; i < out.length; i += 2) text += `${out[i] as string}: ${out[i + 1] as string}\r\n`;
    this.#upstreamHead = `${text}${forwardingHeaders(this.#client, this.#conn.secure, this.#host, this.#conn.socket.localPort)}X-Request-Id: ${this.#requestId}\r\n\r\n`;
    return null;
  }

  /** Routes, admits and sends the request on (the body bytes at hand were read without error). */
  run(): void {
    // Access control / WAF stages: the place for allow-lists, rate limits and rules.
    const guards = this.#ctx.guards;
    for (let i = 0; i < guards.length; i++) {
      const guard = guards[i];
      const rejection = guard === undefined ? null : guard(this);
      if (rejection !== null) return this.#refuse(rejection);
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
    this.#hsts = hstsOf(match.vhost, this.#conn.secure);
    // Access control per environment (access.ts): allow/deny, connections, rates, body size.
    const edge = this.#ctx.edge;
    const refused = edge.admit(match.vhost, this.client, this.#conn.socket, this.#body === RequestBody.Chunked ? -1 : this.#contentLength);
    if (refused !== null) return this.#refuse(refused);
    if (this.#body === RequestBody.Chunked) {
      this.#maxBodyBytes = edge.maxBodyBytes(match.vhost);
      if (this.#conn.chunkedBytes > this.#maxBodyBytes) return this.#refuse(edge.bodyTooLarge(match.vhost));
    }
    const location = httpsRedirect(this.#ctx.https, match.vhost, this.#conn.secure, this.#path);
    if (location !== null) return this.#answer(308, 'this environment is served over HTTPS', `location: ${location}\r\n`);
    const pinned = this.#cookie === '' ? null : stickyInstance(match, this.#cookie);
    this.#pinned = pinned;
    const upstream = routing.pick(match, undefined, pinned);
    if (upstream === null) {
      return this.#answer(503, `no healthy instance of service ${JSON.stringify(match.route.service)} in ${match.vhost.tenant}/${match.vhost.environment}`);
    }
    if (this.#expectContinue && !this.#requestComplete && this.#pendingBytes === 0) this.#conn.write(CONTINUE);
    this.#dispatch(upstream);
  }

  #dispatch(upstream: Upstream): void {
    this.#upstream = upstream;
    upstream.state.outstanding++;
    this.#counted = upstream;
    // Sticky route: (re)pin the client when it lands elsewhere than its cookie says.
    const match = this.#match;
    this.#setCookie = match !== null && upstream.endpoint.instance !== this.#pinned ? stickyCookie(match, upstream, this.#conn.secure) : null;
    const pool = this.#ctx.pool(upstream);
    this.#pool = pool;
    pool.acquire(this);
  }

  // ---------------------------------------------------------------------------------------
  // Upstream side

  onUpstreamReady(conn: UpstreamConnection): void {
    if (this.#clientGone || this.#finished) {
      conn.release(true);
      return;
    }
    this.#uconn = conn;
    const pending = this.#pending;
    if (pending === null) conn.write(this.#upstreamHead);
    else {
      // The head and the body bytes that came before the connection, in one write.
      this.#pending = null;
      const socket = conn.socket;
      socket.cork();
      conn.write(this.#upstreamHead);
      for (const chunk of pending) conn.write(chunk);
      socket.uncork();
      this.#bodyWritten += this.#pendingBytes;
      this.#pendingBytes = 0;
    }
    conn.expectResponse(this.#head.method === 'HEAD', (this.#match === null ? null : routeTimeoutMs(this.#match)) ?? this.#ctx.limits.upstreamHeadersTimeoutMs);
    this.#conn.resumeReading();
  }

  onUpstreamDrain(): void {
    this.#conn.resumeReading();
  }

  onResponseHead(_conn: UpstreamConnection, head: ResponseHead, body: BodyKind, more: boolean): void {
    const status = head.status;
    this.#outcome(status >= 500 ? 'failed' : 'ok');
    if (this.#clientGone) return;
    const raw = head.rawHeaders;
    // Headers the Connection header names are hop-by-hop too (`keep-alive` and `close` are
    // the usual values and name nothing else worth a lookup).
    let named: string[] | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
      for (const token of (raw[i + 1] as string).split(',')) {
        const t = token.trim().toLowerCase();
        if (t !== '' && t !== 'keep-alive' && t !== 'close') (named ??= []).push(t);
      }
    }
    const client = this.#conn;
    const oldClient = this.#head.httpVersion === '1.0';
    // How the body reaches the client: as it came, or without its chunk framing for an
    // HTTP/1.0 client, or until the connection closes.
    if (body === BodyKind.Chunked && oldClient) this.#dechunk = new ChunkedDecoder();
    if (body === BodyKind.Eof || this.#dechunk !== null || !this.#requestComplete) client.closeAfterAnswer();
    let text = statusLine(status, STATUS_CODES);
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (isDroppedResponseHeader(name) || (named !== null && named.includes(name.toLowerCase()))) continue;
      text += `${name}: ${raw[i + 1] as string}\r\n`;
    }
    text += `x-request-id: ${this.#requestId}\r\n`;
    if (this.#setCookie !== null) text += `set-cookie: ${this.#setCookie}\r\n`;
    if (this.#hsts !== null) text += `strict-transport-security: ${this.#hsts}\r\n`;
    if (body === BodyKind.Chunked && this.#dechunk === null) text += 'transfer-encoding: chunked\r\n';
    if (!client.willKeepAlive) text += 'connection: close\r\n';
    else if (oldClient) text += 'connection: keep-alive\r\n';
    this.#status = status;
    this.#responded = true;
    text += '\r\n';
    // With body bytes in the same read, the head waits for them: one write, one packet.
    if (more && this.#dechunk === null) this.#heldHead = text;
    else client.write(text);
  }

  onResponseData(conn: UpstreamConnection, data: Buffer): void {
    if (this.#clientGone) return;
    const dechunk = this.#dechunk;
    let ok = true;
    if (dechunk !== null) {
      const client = this.#conn;
      dechunk.execute(data, 0, (buf, start, end) => {
        this.#bytes += end - start;
        ok = client.write(buf.subarray(start, end)) && ok;
      });
    } else {
      this.#bytes = conn.bodyBytes;
      const held = this.#heldHead;
      if (held === null) ok = this.#conn.write(data);
      else {
        this.#heldHead = null;
        ok = this.#conn.write(joinHead(held, data));
      }
    }
    // The client is slower than the instance: hold the instance until it drains.
    if (!ok) conn.socket.pause();
  }

  onClientDrain(): void {
    const u = this.#uconn;
    if (u !== null) u.socket.resume();
  }

  onResponseEnd(conn: UpstreamConnection): void {
    this.#uconn = null;
    if (this.#heldHead !== null && !this.#clientGone) this.#conn.write(this.#heldHead);
    this.#heldHead = null;
    this.#releaseCount();
    conn.release(this.#requestComplete && this.#pending === null);
    if (this.#clientGone) return;
    this.#finish();
    this.#conn.answered();
  }

  onUpstreamError(conn: UpstreamConnection | null, code: string, err: Error | null): void {
    this.#uconn = null;
    this.#releaseCount();
    if (this.#clientGone || this.#finished) return;
    const upstream = this.#upstream;
    const log = this.#ctx.log;
    if (this.#responded) {
      // Bytes already went out: the only honest signal left is to cut the connection.
      this.#outcome('failed');
      log.warn({ requestId: this.#requestId, instance: upstream?.endpoint.instance, code }, 'upstream failed mid-response');
      this.#finish();
      this.#conn.destroy();
      return;
    }
    const replayable = this.#bodyWritten === 0 && this.#body === RequestBody.None && IDEMPOTENT.has(this.#head.method);
    // A kept-alive connection the instance closed while it was idle: not the instance's
    // fault; the request goes again on a fresh connection to the same instance.
    if (conn !== null && conn.reused && conn.responseBytes === 0 && STALE_FAILURES.has(code) && replayable && !this.#staleRetried && upstream !== null) {
      this.#staleRetried = true;
      this.#dispatch(upstream);
      return;
    }
    const connectionFailure = CONNECTION_FAILURES.has(code) && (conn === null || conn.responseBytes === 0);
    this.#outcome(connectionFailure ? 'connect-failed' : 'failed');
    if (upstream !== null && connectionFailure) {
      log.warn({ instance: upstream.endpoint.instance, endpoint: upstream.key, code }, 'connection to instance failed');
      const match = this.#match;
      if (!this.#retried && match !== null && replayable) {
        this.#retried = true;
        const next = this.#ctx.routing.pick(match, upstream.key);
        if (next !== null) {
          this.#dispatch(next);
          return;
        }
      }
    }
    const limits = this.#ctx.limits;
    switch (code) {
      case 'CONNECT_TIMEOUT':
        return this.#answer(504, `${this.#serviceRef()} did not answer within ${limits.upstreamConnectTimeoutMs} ms`);
      case 'HEADERS_TIMEOUT':
        return this.#answer(504, `${this.#serviceRef()} did not answer within ${(this.#match === null ? null : routeTimeoutMs(this.#match)) ?? limits.upstreamHeadersTimeoutMs} ms`);
      case 'BODY_TIMEOUT':
        return this.#answer(504, `${this.#serviceRef()} did not answer within ${limits.upstreamBodyTimeoutMs} ms`);
      default:
        if (!connectionFailure) log.warn({ requestId: this.#requestId, instance: upstream?.endpoint.instance, code, err }, 'upstream request failed');
        return this.#answer(502, `${this.#serviceRef()} failed to answer (${code})`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Client side

  onRequestData(data: Buffer): void {
    if (this.#finished) return;
    if (this.#body === RequestBody.Chunked && this.#conn.chunkedBytes > this.#maxBodyBytes && this.#match !== null) {
      this.#refuse(this.#ctx.edge.bodyTooLarge(this.#match.vhost));
      return;
    }
    const u = this.#uconn;
    if (u !== null) {
      this.#bodyWritten += data.length;
      if (!u.write(data)) this.#conn.pauseReading();
      return;
    }
    (this.#pending ??= []).push(data);
    this.#pendingBytes += data.length;
    // The instance is not connected yet: hold a little, then stop reading.
    if (this.#pendingBytes > 65_536) this.#conn.pauseReading();
  }

  onRequestEnd(): void {
    this.#requestComplete = true;
  }

  onRequestError(status: number, message: string): void {
    this.#refuse({ status, message, close: true });
  }

  onClientClose(): void {
    if (this.#finished) return;
    this.#clientGone = true;
    this.#abortUpstream();
    this.#finish();
  }

  /** Drops the upstream attempt in flight (the connection cannot be reused half-way). */
  #abortUpstream(): void {
    const u = this.#uconn;
    this.#uconn = null;
    if (u !== null) u.destroy();
    else if (this.#pool !== null) this.#pool.cancel(this);
    this.#releaseCount();
  }

  /** Tells outlier detection how the current attempt went. */
  #outcome(outcome: Outcome): void {
    const up = this.#upstream;
    const match = this.#match;
    if (up !== null && match !== null) this.#ctx.routing.report(match, up, outcome);
  }

  /** The current attempt no longer counts as outstanding at its instance. */
  #releaseCount(): void {
    const up = this.#counted;
    if (up !== null) {
      up.state.outstanding--;
      this.#counted = null;
    }
  }

  #serviceRef(): string {
    const m = this.#match;
    return m === null ? 'the service' : `service ${JSON.stringify(m.route.service)} in ${m.vhost.tenant}/${m.vhost.environment}`;
  }

  #refuse(r: Refusal): void {
    if (r.close === true) this.#conn.closeAfterAnswer();
    this.#answer(r.status, r.message, r.retryAfterS === undefined ? '' : `retry-after: ${r.retryAfterS}\r\n`);
  }

  /** A gateway-made answer: plain text, one line (or a cut connection when an answer already started). */
  answer(status: number, message: string): void {
    this.#answer(status, message);
  }

  #answer(status: number, message: string, extra = ''): void {
    if (this.#finished) return;
    this.#abortUpstream();
    const conn = this.#conn;
    if (this.#responded || this.#clientGone) {
      this.#finish();
      conn.destroy();
      return;
    }
    const body = Buffer.from(`${message}\n`, 'utf8');
    this.#status = status;
    this.#bytes = body.length;
    // An answer before the whole body was read leaves the rest unread: the connection closes.
    if (!this.#requestComplete) conn.closeAfterAnswer();
    const hsts = this.#hsts === null ? '' : `strict-transport-security: ${this.#hsts}\r\n`;
    const connection = conn.willKeepAlive ? (this.#head.httpVersion === '1.0' ? 'connection: keep-alive\r\n' : '') : 'connection: close\r\n';
    const head = `${statusLine(status, STATUS_CODES)}content-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\ncache-control: no-store\r\nx-request-id: ${this.#requestId}\r\n${extra}${hsts}${connection}\r\n`;
    conn.write(this.#head.method === 'HEAD' ? head : joinHead(head, body));
    this.#finish();
    conn.answered();
  }

  /** The request is over (answered, or the client went away): figures and the access log. */
  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#pending = null;
    const upstream = this.#upstream;
    const durationMs = performance.now() - this.#startMs;
    const match = this.#match;
    if (match !== null) {
      match.stats.inFlight--;
      match.stats.record(this.#clientGone ? 0 : this.#status, durationMs);
    }
    this.#ctx.access.write({
      requestId: this.#requestId,
      client: this.client,
      host: this.#host,
      method: this.#head.method,
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

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Removes the headers a Connection header names (they are hop-by-hop by declaration). */
function removeConnectionTokens(headers: string[], tokens: string): void {
  const names = new Set(tokens.split(',').map((t) => t.trim().toLowerCase()));
  names.delete('keep-alive');
  names.delete('close');
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.has((headers[i] ?? '').toLowerCase())) headers.splice(i, 2);
  }
}

/** How often deadlines are checked: a quarter of the shortest timeout, within 10-250 ms. */
function sweepIntervalMs(limits: GatewayLimits, table: RoutingTable | null): number {
  let min = Math.min(limits.headersTimeoutMs, limits.keepAliveTimeoutMs, limits.upstreamConnectTimeoutMs, limits.upstreamHeadersTimeoutMs, limits.upstreamBodyTimeoutMs);
  for (const h of table?.hosts ?? []) for (const r of h.routes) if (r.timeoutMs != null && r.timeoutMs < min) min = r.timeoutMs;
  return Math.max(10, Math.min(250, Math.floor(min / 4)));
}

/**
 * The edge gateway: listeners, routing state, upstream pools, access log and the persisted
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
  readonly #trustedProxies: CidrMatcher | null;
  readonly #log: Logger;
  readonly #pools = new Map<string, UpstreamPool>();
  readonly #tableWriter: LatestWriter;
  readonly #server: net.Server;
  readonly #access = new AccessLog();
  readonly #sweeper: Sweeper;
  readonly #clients = new Set<ClientConnection>();
  #inFlight = 0;
  #onIdle: (() => void) | null = null;
  #url: string | null = null;
  #closing: Promise<void> | null = null;
  readonly #ctx: ProxyContext;
  readonly #connCtx: ConnectionContext;
  readonly #checker: HealthChecker | null;
  readonly #persistTable: boolean;
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
    this.#trustedProxies = compileTrustedProxies(options.trustedProxies);
    this.#log = options.logger ?? silentLogger();
    this.tcp = new TcpRouter({ host: this.#host, logger: this.#log, limits: { connectTimeoutMs: this.limits.upstreamConnectTimeoutMs } });
    const log = this.#log;
    this.routing = new RoutingState({
      onEject: (e: EjectionEvent) => log.warn({ tenant: e.tenant, env: e.environment, service: e.service, instance: e.instance, endpoint: e.key, ejectMs: e.ms, reason: e.reason }, 'instance ejected'),
    });
    this.traffic = new TrafficCounter(this.routing);
    this.#persistTable = options.persistTable ?? true;
    this.edge = new EdgeAccess({ routing: this.routing, limits: this.limits, log });
    this.#sweeper = new Sweeper(sweepIntervalMs(this.limits, null));
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
    this.#server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.#accept(socket, false));
    this.#server.maxConnections = limits.maxConnections;
    this.#upgradeCtx = {
      routing: this.routing,
      log: this.#log,
      connectTimeoutMs: limits.upstreamConnectTimeoutMs,
      idleTimeoutMs: limits.upgradeIdleTimeoutMs,
      admit: (client, socket, match) => this.edge.admitUpgrade(client, socket, match),
      trustedProxies: this.#trustedProxies,
      tunnels: new Set(),
    };
    this.#https =
      options.httpsPort === undefined
        ? null
        : new HttpsListener({
            host: this.#host,
            port: options.httpsPort,
            routing: this.routing,
            limits,
            log: this.#log,
            onSecureConnection: (socket: tls.TLSSocket) => this.#accept(socket, true),
            onConnection: (socket) => this.edge.onConnection(socket),
          });
    this.#ctx = {
      routing: this.routing,
      limits,
      guards: this.#guards,
      trustedProxies: this.#trustedProxies,
      log: this.#log,
      access: this.#access,
      edge: this.edge,
      https: this.#https ?? NO_HTTPS,
      pool: (upstream) => this.#pool(upstream),
      done: () => this.#requestDone(),
    };
    this.#connCtx = {
      limits,
      sweeper: this.#sweeper,
      onRequest: (conn, head) => this.#request(conn, head),
      startRequest: (sink) => this.#start(sink as Exchange),
      onUpgrade: (conn, head, rest) => this.#upgrade(conn, head, rest),
      refuse: (conn, status, message) => this.#refuseRaw(conn, status, message),
      onClose: (conn) => this.#clients.delete(conn),
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

  /** Client connections open (HTTP and HTTPS). */
  get connections(): number {
    return this.#clients.size;
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
    this.#sweeper.setInterval(sweepIntervalMs(this.limits, table));
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
    if (server.listening) server.close();
    const httpsClosed = this.#https?.close();
    // Idle keep-alive connections close now; busy ones after their answer.
    for (const c of [...this.#clients]) c.shutdown();
    if (this.#inFlight > 0) {
      const idle = new Promise<void>((resolve) => {
        this.#onIdle = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([idle, deadline]);
      clearTimeout(timer);
      if (this.#inFlight > 0) this.#log.warn({ inFlight: this.#inFlight, graceMs }, 'shutdown grace over; cutting requests');
    }
    for (const c of [...this.#clients]) c.destroy();
    for (const t of [...this.#upgradeCtx.tunnels]) t.destroy();
    this.#checker?.close();
    await closed;
    await httpsClosed;
    await this.tcp.close();
    for (const pool of this.#pools.values()) pool.destroy();
    this.#pools.clear();
    this.#sweeper.close();
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
      this.#sweeper.setInterval(sweepIntervalMs(this.limits, table));
      this.#log.info({ revision: table.revision, hosts: table.hosts.length }, 'persisted routing table loaded');
    } catch (err) {
      // A broken file is not fatal: the watch stream brings a fresh table.
      this.#log.warn({ err, file }, 'persisted routing table ignored');
    }
  }

  /** A verdict of the primary's active health checks (multi-process gateway). */
  setCheckDown(key: string, down: boolean): void {
    this.routing.setCheckDown(key, down);
  }

  #accept(socket: net.Socket, secure: boolean): void {
    // Connections per client (access.ts): counted when accepted, one too many closed at once.
    if (!secure) this.edge.onConnection(socket);
    if (socket.destroyed) return;
    if (this.#closing !== null) {
      socket.destroy();
      return;
    }
    this.#clients.add(new ClientConnection(socket, secure, this.#connCtx));
  }

  #request(conn: ClientConnection, head: RequestHead): RequestSink | null {
    this.#inFlight++;
    const exchange = new Exchange(this.#ctx, conn, head);
    let refusal: Refusal | null;
    try {
      refusal = exchange.prepare();
    } catch (err) {
      this.#log.error({ err }, 'request pipeline failed');
      refusal = { status: 500, message: 'internal gateway error', close: true };
    }
    if (refusal === null) return exchange;
    conn.closeAfterAnswer();
    exchange.answer(refusal.status, refusal.message);
    return null;
  }

  #start(exchange: Exchange): void {
    try {
      exchange.run();
    } catch (err) {
      // A bug (or a throwing guard) must cost one request, never the process.
      this.#log.error({ err }, 'request pipeline failed');
      exchange.answer(500, 'internal gateway error');
    }
  }

  /** An Upgrade request (WebSocket): routed, then tunnelled to the instance. */
  #upgrade(conn: ClientConnection, head: RequestHead, rest: Buffer): void {
    try {
      handleUpgrade(this.#upgradeCtx, head, conn.socket, rest, conn.secure, conn.remoteAddress);
    } catch (err) {
      this.#log.error({ err }, 'upgrade pipeline failed');
      conn.socket.destroy();
    }
  }

  /** The answer to a request that failed before the pipeline (malformed, too large, too slow). */
  #refuseRaw(conn: ClientConnection, status: number, message: string): void {
    const body = `${message}\n`;
    conn.write(
      `${statusLine(status, STATUS_CODES)}content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  #requestDone(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#onIdle !== null) {
      const resolve = this.#onIdle;
      this.#onIdle = null;
      resolve();
    }
  }

  #pool(upstream: Upstream): UpstreamPool {
    let pool = this.#pools.get(upstream.origin);
    if (pool === undefined) {
      pool = new UpstreamPool(upstream.endpoint.address, upstream.endpoint.port, this.limits, this.#sweeper);
      this.#pools.set(upstream.origin, pool);
    }
    return pool;
  }

  /** Retires the pools of endpoints the new table no longer has (their requests finish). */
  #prunePools(): void {
    const keep = this.routing.origins();
    for (const [origin, pool] of this.#pools) {
      if (keep.has(origin)) continue;
      this.#pools.delete(origin);
      pool.retire();
    }
  }
}
