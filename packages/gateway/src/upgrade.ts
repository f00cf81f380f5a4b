/**
 * WebSocket (and any HTTP/1.1 Upgrade) pass-through. The request is routed like any
 * other — host, path rule, balancing, sticky cookie — then the gateway opens a plain TCP
 * connection to the chosen instance, sends the request head on (hop-by-hop headers
 * rewritten, the client's forwarding headers replaced by the gateway's as in forwarded.ts)
 * and splices the two sockets together: the instance's `101 Switching Protocols` (or its
 * refusal) and every frame after it flow through untouched. The tunnel is bounded by an
 * idle timeout and closed when either side ends.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { CidrMatcher } from './access.js';
import { FORWARDING_HEADERS, forwardingHeaders, isForwardingAlias, resolveClient } from './forwarded.js';
import type { ClientChain } from './forwarded.js';
import type { RequestHead } from './http1.js';
import type { Logger } from './logging.js';
import type { RouteMatch, RoutingState, Upstream } from './routing.js';
import { isPlainHost } from './access.js';
import { normalizeHost, stickyCookie, stickyInstance } from './routing.js';

export interface UpgradeContext {
  readonly routing: RoutingState;
  readonly log: Logger;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Access control for the matched host, as for plain requests; a message refuses. */
  readonly admit?: (client: string, socket: net.Socket, match: RouteMatch) => { status: number; message: string } | null;
  /** Peers whose X-Forwarded-For is believed (forwarded.ts); null or absent: none. */
  readonly trustedProxies?: CidrMatcher | null;
  /** Open tunnels (both sockets), so that a closing gateway can cut them. */
  readonly tunnels: Set<Duplex>;
}

/** Headers not sent on to the instance (the Upgrade/Connection pair and the forwarding headers are set afresh). */
const DROPPED = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', ...FORWARDING_HEADERS]);

function refuse(socket: Duplex, status: number, reason: string, message: string): void {
  const body = `${message}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** One header's value (the first), or ''. */
function headerOf(req: RequestHead, lower: string): string {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === lower) return raw[i + 1] as string;
  return '';
}

/**
 * An Upgrade request (the client connection hands its socket over, with the bytes that
 * followed the head): routed, admitted, then tunnelled to the instance. `peer` is the
 * connection's remote address; the client is decided from it as for plain requests.
 */
export function handleUpgrade(ctx: UpgradeContext, req: RequestHead, socket: net.Socket, head: Buffer, secure: boolean, peer: string): void {
  socket.on('error', () => undefined);
  const host = headerOf(req, 'host');
  const url = req.url;
  if (url.charCodeAt(0) !== 47) return refuse(socket, 400, 'Bad Request', 'an upgrade request needs a path as its target');
  // Smuggling guard, as for plain requests (access.ts checkFraming): one plain Host, and no
  // body — an upgrade handshake has none, and bytes after the head belong to the tunnel.
  let hosts = 0;
  let framed = false;
  let forwardedFor = '';
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (name === 'host') hosts++;
    else if (name === 'transfer-encoding' || (name === 'content-length' && raw[i + 1] !== '0')) framed = true;
    else if (name === 'x-forwarded-for') forwardedFor = forwardedFor === '' ? (raw[i + 1] as string) : `${forwardedFor}, ${raw[i + 1] as string}`;
  }
  if (hosts !== 1 || !isPlainHost(host)) return refuse(socket, 400, 'Bad Request', 'an upgrade request needs exactly one Host header with a host name');
  if (framed) return refuse(socket, 400, 'Bad Request', 'an upgrade request cannot have a body');
  const match = ctx.routing.match(host, url);
  if (match === null) return refuse(socket, 404, 'Not Found', `no route serves ${JSON.stringify(normalizeHost(host))} ${JSON.stringify(url.split('?')[0])}`);
  const chain = resolveClient(peer, forwardedFor, ctx.trustedProxies ?? null);
  const refusal = ctx.admit?.(chain.client, socket, match) ?? null;
  if (refusal !== null) return refuse(socket, refusal.status, REASONS[refusal.status] ?? 'Refused', refusal.message);
  const cookie = headerOf(req, 'cookie');
  const pinned = cookie === '' ? null : stickyInstance(match, cookie);
  const up = ctx.routing.pick(match, undefined, pinned);
  if (up === null) return refuse(socket, 503, 'Service Unavailable', `no healthy instance of service ${JSON.stringify(match.route.service)}`);
  match.stats.requests++;
  match.stats.inFlight++;
  const started = performance.now();
  let finished = false;
  const finish = (status: number): void => {
    if (finished) return;
    finished = true;
    match.stats.inFlight--;
    match.stats.record(status, performance.now() - started);
  };
  tunnel(ctx, req, socket, head, match, up, up.endpoint.instance !== pinned ? stickyCookie(match, up, secure) : null, finish, secure, chain, host, socket.localPort);
}

function tunnel(
  ctx: UpgradeContext,
  req: RequestHead,
  client: Duplex,
  head: Buffer,
  match: RouteMatch,
  up: Upstream,
  setCookie: string | null,
  finish: (status: number) => void,
  secure: boolean,
  remote: ClientChain,
  host: string,
  localPort: number | undefined,
): void {
  const lines = [`${req.method} ${req.url} HTTP/1.1`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (DROPPED.has(name.toLowerCase()) || isForwardingAlias(name)) continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push('Connection: Upgrade', `Upgrade: ${headerOf(req, 'upgrade') || 'websocket'}`);
  const upstream = net.connect({ host: up.endpoint.address, port: up.endpoint.port });
  upstream.setNoDelay(true);
  ctx.tunnels.add(client);
  ctx.tunnels.add(upstream);
  const connectTimer = setTimeout(() => upstream.destroy(new Error('connect timeout')), ctx.connectTimeoutMs);
  let connected = false;
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(connectTimer);
    if (!connected) {
      ctx.routing.report(match, up, 'connect-failed');
      ctx.log.warn({ instance: up.endpoint.instance, code: err.code ?? err.message }, 'upgrade: connection to instance failed');
      finish(502);
      refuse(client, 502, 'Bad Gateway', `service ${JSON.stringify(match.route.service)} could not be reached`);
      return;
    }
    client.destroy();
  });
  upstream.once('connect', () => {
    clearTimeout(connectTimer);
    connected = true;
    ctx.routing.report(match, up, 'ok');
    upstream.write(`${lines.join('\r\n')}\r\n${forwardingHeaders(remote, secure, host, localPort)}\r\n`);
    if (head.length > 0) upstream.write(head);
    // The Set-Cookie of a sticky route rides on the instance's answer: inserted after its status line.
    if (setCookie !== null) {
      let pending = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        pending = Buffer.concat([pending, chunk]);
        const eol = pending.indexOf('\r\n');
        if (eol === -1 && pending.length < 8192) return;
        upstream.off('data', onData);
        upstream.pause();
        const at = eol === -1 ? 0 : eol + 2;
        client.write(pending.subarray(0, at));
        if (at > 0) client.write(`Set-Cookie: ${setCookie}\r\n`);
        client.write(pending.subarray(at));
        upstream.pipe(client);
      };
      upstream.on('data', onData);
    } else {
      upstream.pipe(client);
    }
    client.pipe(upstream);
    finish(101);
  });
  const idle = (): void => {
    upstream.destroy();
    client.destroy();
  };
  upstream.setTimeout(ctx.idleTimeoutMs, idle);
  if (client instanceof net.Socket) client.setTimeout(ctx.idleTimeoutMs, idle);
  client.on('close', () => {
    ctx.tunnels.delete(client);
    upstream.destroy();
  });
  upstream.on('close', () => {
    ctx.tunnels.delete(upstream);
    clearTimeout(connectTimer);
    if (connected) client.end();
  });
}
