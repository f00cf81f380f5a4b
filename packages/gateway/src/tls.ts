/**
 * The gateway's HTTPS side: a TLS listener in front of the same request pipeline as the
 * HTTP one, the certificate of each environment chosen by SNI, and the per-environment
 * HTTPS policy (redirect plain HTTP to HTTPS, Strict-Transport-Security).
 *
 * - TLS 1.2 and 1.3 only. A client that names no host (no SNI) or a host the table has no
 *   certificate for fails the handshake: the gateway has no default certificate to show.
 * - TLS contexts are built from the routing table once per table change (on the first
 *   handshake after it), cached by host and reused while the host's certificate and key
 *   stay the same; a handshake only looks one up. A certificate Node refuses (a key that
 *   does not fit it) is logged once and its host is not served over HTTPS.
 * - Limits: the handshake must finish within `tlsHandshakeTimeoutMs`; session tickets
 *   live 5 minutes and their keys are replaced every hour (forward secrecy); Node allows
 *   a client 3 renegotiations per 10 minutes (TLS 1.2); plus every limit of the HTTP
 *   listener (header and request time, header size, connections).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { RoutingTable, VirtualHost } from '@lanes/spec';
import type { GatewayLimits } from './config.js';
import type { Logger } from './logging.js';
import { GatewayResponse } from './proxy.js';
import type { RoutingState } from './routing.js';

/** How long a TLS session (ticket) may be resumed, in seconds. */
export const TLS_SESSION_TIMEOUT_S = 300;
/** How often the session-ticket keys are replaced. */
const TICKET_KEY_ROTATION_MS = 3_600_000;
const MIN_VERSION = 'TLSv1.2';

/** A response of the HTTPS listener: it can carry Strict-Transport-Security. */
export type TlsResponse = GatewayResponse & { hsts: string | null };
type TlsResponseClass = typeof GatewayResponse & (new (req: http.IncomingMessage) => TlsResponse);
let tlsResponse: TlsResponseClass | null = null;

/**
 * The response class of the HTTPS listener: adds Strict-Transport-Security to whatever
 * the pipeline answers when the environment asks for it, by adding it to the header list
 * the pipeline hands to writeHead (a setHeader would switch Node to merging headers one
 * by one, where two Set-Cookie entries of the list would overwrite each other). Made on
 * first use: proxy.ts and this module import each other, so GatewayResponse is not there
 * yet while this module loads.
 */
function tlsResponseClass(): TlsResponseClass {
  if (tlsResponse !== null) return tlsResponse;
  class HstsResponse extends GatewayResponse {
    /** The Strict-Transport-Security value, set by `applyHttpsPolicy`; null: none. */
    hsts: string | null = null;

    override writeHead(
      statusCode: number,
      messageOrHeaders?: string | http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
      headers?: http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
    ): this {
      const hsts = this.hsts;
      if (typeof messageOrHeaders === 'string') return super.writeHead(statusCode, messageOrHeaders, hsts === null ? headers : withHsts(headers, hsts));
      return super.writeHead(statusCode, hsts === null ? messageOrHeaders : withHsts(messageOrHeaders, hsts));
    }
  }
  tlsResponse = HstsResponse;
  return tlsResponse;
}

function withHsts(headers: http.OutgoingHttpHeaders | http.OutgoingHttpHeader[] | undefined, value: string): http.OutgoingHttpHeaders | http.OutgoingHttpHeader[] {
  if (headers === undefined) return ['strict-transport-security', value];
  if (Array.isArray(headers)) {
    headers.push('strict-transport-security', value);
    return headers;
  }
  return { ...headers, 'strict-transport-security': value };
}

/** What the request pipeline needs to know about HTTPS: where plain-HTTP requests are redirected. */
export interface HttpsPolicy {
  /** The gateway's public HTTPS port; null: no HTTPS listener, so no redirect. */
  readonly redirectPort: number | null;
}

export const NO_HTTPS: HttpsPolicy = Object.freeze({ redirectPort: null });

/** `max-age=N` strings, built once per value rather than per request. */
const hstsValues = new Map<number, string>();

function hstsValue(maxAgeS: number): string {
  let v = hstsValues.get(maxAgeS);
  if (v === undefined) {
    v = `max-age=${maxAgeS}`;
    if (hstsValues.size < 64) hstsValues.set(maxAgeS, v);
  }
  return v;
}

/**
 * The environment's HTTPS policy for one routed request. Over plain HTTP with
 * `edge.httpsRedirect` (and a certificate for the host and an HTTPS listener to send the
 * client to): sets Location to the same host and target on the HTTPS port and answers
 * true — the caller answers 308, which keeps the method and body. Over HTTPS with
 * `edge.hstsMaxAgeS`: marks the response for Strict-Transport-Security and answers false.
 */
export function applyHttpsPolicy(policy: HttpsPolicy, vhost: VirtualHost, req: http.IncomingMessage, res: http.ServerResponse, target: string): boolean {
  const edge = vhost.edge;
  if (edge === undefined) return false;
  if (isEncrypted(req)) {
    if (edge.hstsMaxAgeS !== null && isTlsResponse(res)) res.hsts = hstsValue(edge.hstsMaxAgeS);
    return false;
  }
  const port = policy.redirectPort;
  if (!edge.httpsRedirect || port === null || vhost.tls == null) return false;
  res.setHeader('location', `https://${vhost.host}${port === 443 ? '' : `:${port}`}${target}`);
  return true;
}

function isTlsResponse(res: http.ServerResponse): res is TlsResponse {
  return tlsResponse !== null && res instanceof tlsResponse;
}

function isEncrypted(req: http.IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true;
}

interface CachedContext {
  readonly certPem: string;
  readonly keyPem: string;
  /** null: Node refused the pair (logged once). */
  readonly context: tls.SecureContext | null;
}

export interface HttpsListenerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly routing: RoutingState;
  readonly limits: GatewayLimits;
  readonly log: Logger;
  /** The request pipeline (the same as the HTTP listener's). */
  readonly handle: (req: http.IncomingMessage, res: TlsResponse) => void;
  /** Connection accounting (connections per client). */
  readonly onConnection?: (socket: net.Socket) => void;
  /** WebSocket upgrades (wss). */
  readonly onUpgrade?: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/** The HTTPS listener of a Gateway. */
export class HttpsListener implements HttpsPolicy {
  readonly server: https.Server<typeof http.IncomingMessage, TlsResponseClass>;
  readonly #opts: HttpsListenerOptions;
  readonly #log: Logger;
  #contexts = new Map<string, CachedContext>();
  #builtFor: RoutingTable | null = null;
  #port: number | null = null;
  #url: string | null = null;
  #ticketTimer: NodeJS.Timeout | null = null;
  readonly #noCertificate = tls.createSecureContext({ minVersion: MIN_VERSION });

  constructor(opts: HttpsListenerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    const limits = opts.limits;
    this.server = https.createServer<typeof http.IncomingMessage, TlsResponseClass>(
      {
        minVersion: MIN_VERSION,
        SNICallback: (servername, cb) => this.#sni(servername, cb),
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: limits.tlsHandshakeTimeoutMs,
        sessionTimeout: TLS_SESSION_TIMEOUT_S,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        maxHeaderSize: limits.maxHeaderBytes,
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
        requireHostHeader: true,
        noDelay: true,
        ServerResponse: tlsResponseClass(),
      },
      (req, res) => opts.handle(req, res),
    );
    this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    this.server.maxConnections = limits.maxConnections;
    if (opts.onConnection !== undefined) this.server.on('connection', opts.onConnection);
    if (opts.onUpgrade !== undefined) this.server.on('upgrade', opts.onUpgrade);
    this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.#log.debug({ client: socket.remoteAddress, code: 'code' in err ? err.code : undefined, err }, 'TLS handshake failed');
      socket.destroy();
    });
  }

  /** The port plain-HTTP requests are redirected to: the listening port. */
  get redirectPort(): number | null {
    return this.#port;
  }

  /** `https://host:port` once listening. */
  get url(): string | null {
    return this.#url;
  }

  async listen(): Promise<string> {
    this.server.listen(this.#opts.port, this.#opts.host);
    await once(this.server, 'listening');
    const addr = this.server.address();
    this.#port = typeof addr === 'object' && addr !== null ? addr.port : this.#opts.port;
    const host = this.#opts.host.includes(':') ? `[${this.#opts.host}]` : this.#opts.host;
    this.#url = `https://${host}:${this.#port}`;
    this.#ticketTimer = setInterval(() => this.server.setTicketKeys(randomBytes(48)), TICKET_KEY_ROTATION_MS);
    this.#ticketTimer.unref();
    this.#log.info({ url: this.#url }, 'gateway listening for HTTPS');
    return this.#url;
  }

  /**
   * Stops accepting, closes idle keep-alive connections as their requests finish (while
   * `busy()` says requests are in flight, up to `graceMs`), then cuts what is left.
   */
  async close(graceMs: number, busy: () => boolean): Promise<void> {
    if (this.#ticketTimer !== null) clearInterval(this.#ticketTimer);
    const server = this.server;
    const closed = server.listening ? once(server, 'close') : Promise.resolve([]);
    if (server.listening) server.close();
    server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (busy() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      server.closeIdleConnections();
    }
    server.closeAllConnections();
    await closed;
  }

  /** Picks the host's context; builds the contexts first when the table changed. */
  #sni(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const table = this.#opts.routing.table;
    if (table !== this.#builtFor) this.#rebuild(table);
    const name = servername.toLowerCase().replace(/\.$/, '');
    const context = this.#contexts.get(name)?.context ?? null;
    if (context === null) {
      this.#log.debug({ servername: servername.slice(0, 253) }, 'TLS handshake refused: no certificate for this server name');
      // A context without a certificate: OpenSSL ends the handshake with an alert the
      // client can show ("handshake failure"), where an error here would only reset the socket.
      cb(null, this.#noCertificate);
      return;
    }
    cb(null, context);
  }

  /** One context per host with TLS material, reusing the previous table's where nothing changed. */
  #rebuild(table: RoutingTable | null): void {
    const next = new Map<string, CachedContext>();
    for (const vhost of table?.hosts ?? []) {
      const material = vhost.tls;
      if (material == null) continue;
      const prev = this.#contexts.get(vhost.host);
      if (prev !== undefined && prev.certPem === material.certPem && prev.keyPem === material.keyPem) {
        next.set(vhost.host, prev);
        continue;
      }
      let context: tls.SecureContext | null = null;
      try {
        context = tls.createSecureContext({ cert: material.certPem, key: material.keyPem, minVersion: MIN_VERSION });
      } catch (err) {
        this.#log.warn({ host: vhost.host, tenant: vhost.tenant, env: vhost.environment, source: material.source, err }, 'certificate not usable: host not served over HTTPS');
      }
      next.set(vhost.host, { certPem: material.certPem, keyPem: material.keyPem, context });
    }
    this.#contexts = next;
    this.#builtFor = table;
  }
}
