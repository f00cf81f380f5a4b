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
 *   listener (header and request time, header size, connections): a finished handshake
 *   hands the socket to the same engine (connection.ts).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import type { RoutingTable, VirtualHost } from '@lanes/spec';
import type { GatewayLimits } from './config.js';
import type { Logger } from './logging.js';
import type { RoutingState } from './routing.js';

/** How long a TLS session (ticket) may be resumed, in seconds. */
export const TLS_SESSION_TIMEOUT_S = 300;
/** How often the session-ticket keys are replaced. */
const TICKET_KEY_ROTATION_MS = 3_600_000;
const MIN_VERSION = 'TLSv1.2';

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
 * Where a plain-HTTP request of an environment with `edge.httpsRedirect` goes: the same
 * host and target on the HTTPS port (answered 308, which keeps the method and body). Null
 * when there is no redirect: over HTTPS already, not asked for, or no certificate or
 * HTTPS listener to send the client to.
 */
export function httpsRedirect(policy: HttpsPolicy, vhost: VirtualHost, secure: boolean, target: string): string | null {
  const edge = vhost.edge;
  if (secure || edge === undefined || !edge.httpsRedirect) return null;
  const port = policy.redirectPort;
  if (port === null || vhost.tls == null) return null;
  return `https://${vhost.host}${port === 443 ? '' : `:${port}`}${target}`;
}

/** The Strict-Transport-Security value of an answer over HTTPS, when the environment asks for it. */
export function hstsOf(vhost: VirtualHost, secure: boolean): string | null {
  if (!secure) return null;
  const maxAge = vhost.edge?.hstsMaxAgeS ?? null;
  return maxAge === null ? null : hstsValue(maxAge);
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
  /** A connection finished its handshake: the same engine as the HTTP listener's takes it. */
  readonly onSecureConnection: (socket: tls.TLSSocket) => void;
  /** Connection accounting (connections per client), when a connection is accepted. */
  readonly onConnection?: (socket: net.Socket) => void;
}

/** The HTTPS listener of a Gateway. */
export class HttpsListener implements HttpsPolicy {
  readonly server: tls.Server;
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
    this.server = tls.createServer(
      {
        minVersion: MIN_VERSION,
        SNICallback: (servername, cb) => this.#sni(servername, cb),
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: limits.tlsHandshakeTimeoutMs,
        sessionTimeout: TLS_SESSION_TIMEOUT_S,
        allowHalfOpen: true,
        noDelay: true,
      },
      (socket) => opts.onSecureConnection(socket),
    );
    this.server.maxConnections = limits.maxConnections;
    if (opts.onConnection !== undefined) this.server.on('connection', opts.onConnection);
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

  /** Stops accepting; the gateway closes the connections (its own bookkeeping holds them). */
  async close(): Promise<void> {
    if (this.#ticketTimer !== null) clearInterval(this.#ticketTimer);
    const server = this.server;
    if (!server.listening) return;
    const closed = once(server, 'close');
    server.close();
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
