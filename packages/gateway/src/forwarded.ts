/**
 * Who the client is, and the forwarding headers the instance gets: X-Forwarded-For,
 * X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host and Forwarded (RFC 7239).
 *
 * The gateway writes all five itself; whatever the client sent under those names (or under
 * a spelling with underscores, which CGI-style servers read as the same name) is dropped.
 * The client address is the connection's peer — except when the peer is one of the
 * trusted proxies (`--trusted-proxies`): then the peer's X-Forwarded-For chain is kept and
 * the peer appended, and the client is the right-most address of the chain that is not a
 * trusted proxy (the left-most when all are; the last trusted hop when an entry cannot be
 * read, since nothing to the left of it can be believed). That address is what X-Real-IP
 * says and what the environment's access control and per-client limits see (access.ts).
 *
 * Forwarded mirrors the X-Forwarded-For chain, one `for=` element per hop; the gateway's own
 * element (for the peer) also says `proto` and `host`. IPv6 nodes are quoted and bracketed,
 * an entry that is not an address is `for=unknown`.
 *
 * Other headers that name a client address or make a forwarding claim some framework
 * believes (CLIENT_CLAIM_HEADERS: `True-Client-IP`, `CF-Connecting-IP`, `X-Forwarded-Port`,
 * `X-Forwarded-Ssl`, …) are dropped in every spelling, from every peer, trusted or not: the
 * gateway writes `X-Forwarded-Port` itself when its caller gives it the listener's port.
 */
import { parseCidrBlock, parseIpAddress } from '@lanes/spec';
import { CidrMatcher, unmappedAddress } from './access.js';

/** The client of a request as the gateway decided it, and the chain sent on. */
export interface ClientChain {
  /** The client address: for X-Real-IP, access control, rate limits and the access log. */
  readonly client: string;
  /** The X-Forwarded-For value sent upstream. */
  readonly forwardedFor: string;
  /** The Forwarded elements of the chain, without the gateway's `proto`/`host` (appended last). */
  readonly forwardedNodes: string;
}

/**
 * Compiles the trusted-proxy CIDR blocks; null for none (the fast path: the peer is the
 * client). Throws an InputError naming `field` and the bad block.
 */
export function compileTrustedProxies(cidrs: readonly string[] | undefined, field = 'trustedProxies'): CidrMatcher | null {
  if (cidrs === undefined || cidrs.length === 0) return null;
  cidrs.forEach((c, i) => parseCidrBlock(`${field}.${i}`, c));
  return new CidrMatcher(cidrs);
}

/** An address as a Forwarded node (RFC 7239 §6): IPv6 quoted and bracketed. */
function forwardedNode(address: string, port: string): string {
  const v6 = address.includes(':');
  if (port === '') return v6 ? `"[${address}]"` : address;
  return v6 ? `"[${address}]:${port}"` : `"${address}:${port}"`;
}

const PORT_RE = /^\d{1,5}$/;

/**
 * One X-Forwarded-For entry: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`
 * or `[2001:db8::1]:4711`. Null when it is none of these (`unknown`, a name, junk).
 */
export function parseForwardedFor(entry: string): { readonly address: string; readonly port: string } | null {
  const text = entry.trim();
  let address = text;
  let port = '';
  if (text.charCodeAt(0) === 91 /* [ */) {
    const close = text.indexOf(']');
    if (close === -1) return null;
    address = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (rest.charCodeAt(0) !== 58 /* : */ || !PORT_RE.test(rest.slice(1))) return null;
      port = rest.slice(1);
    }
    if (!address.includes(':')) return null;
  } else {
    const colon = text.indexOf(':');
    if (colon !== -1 && text.indexOf(':', colon + 1) === -1) {
      // One colon: IPv4 with a port.
      address = text.slice(0, colon);
      port = text.slice(colon + 1);
      if (!PORT_RE.test(port)) return null;
    }
  }
  if (parseIpAddress(address) === null) return null;
  return { address: unmappedAddress(address), port };
}

/**
 * Decides the client of a request from its connection's peer and the X-Forwarded-For
 * values it sent (joined with ", "; '' for none).
 */
export function resolveClient(peerAddress: string, sentForwardedFor: string, trusted: CidrMatcher | null): ClientChain {
  const peer = unmappedAddress(peerAddress);
  const peerNode = peer === '' ? 'unknown' : forwardedNode(peer, '');
  if (trusted === null || sentForwardedFor === '' || peer === '' || !trusted.has(peer)) {
    return { client: peer, forwardedFor: peer, forwardedNodes: `for=${peerNode}` };
  }
  const entries = sentForwardedFor.split(',');
  const parsed = entries.map(parseForwardedFor);
  let client = peer;
  for (let i = parsed.length - 1; i >= 0; i--) {
    const hop = parsed[i];
    // An entry that is not an address: nothing left of it can be believed.
    if (hop === null || hop === undefined) break;
    client = hop.address;
    if (!trusted.has(hop.address)) break;
  }
  let nodes = '';
  for (const hop of parsed) nodes += `for=${hop === null || hop === undefined ? 'unknown' : forwardedNode(hop.address, hop.port)}, `;
  return { client, forwardedFor: `${sentForwardedFor}, ${peer}`, forwardedNodes: `${nodes}for=${peerNode}` };
}

/** A Forwarded `host` value: a token as it is, quoted when it has a port or brackets. */
function forwardedHost(host: string): string {
  return /^[A-Za-z0-9._~-]+$/.test(host) ? host : `"${host}"`;
}

/**
 * The forwarding header lines sent upstream (each ending in CRLF). `host` is the request's
 * Host (already checked to hold host-name characters only; '' when the request had none).
 * `localPort` is the port of the listener the request arrived on (the connection's local
 * port), sent as X-Forwarded-Port; without it (or when the socket has none) no such line.
 */
export function forwardingHeaders(chain: ClientChain, secure: boolean, host: string, localPort?: number): string {
  const proto = secure ? 'https' : 'http';
  const forwarded = host === '' ? `${chain.forwardedNodes};proto=${proto}` : `${chain.forwardedNodes};proto=${proto};host=${forwardedHost(host)}`;
  const port = localPort === undefined || !Number.isInteger(localPort) || localPort <= 0 || localPort > 65_535 ? '' : `X-Forwarded-Port: ${localPort}\r\n`;
  return (
    `X-Forwarded-For: ${chain.forwardedFor}\r\nX-Real-IP: ${chain.client}\r\n` +
    `X-Forwarded-Proto: ${proto}\r\nX-Forwarded-Host: ${host}\r\n${port}Forwarded: ${forwarded}\r\n`
  );
}

/**
 * The request headers the gateway sets itself (lower case), which are never passed on as
 * the client sent them.
 */
export const FORWARDING_HEADERS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-real-ip', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/**
 * Other request headers that carry a client address or a forwarding claim which some server,
 * framework or CDN library believes (lower case): dropped in every spelling and from every
 * peer, since the gateway cannot vouch for them. X-Forwarded-Port is the gateway's own
 * (forwardingHeaders); X-Forwarded-Ssl and X-Forwarded-Scheme are read for the scheme by
 * Rack and others, so they would contradict X-Forwarded-Proto.
 */
export const CLIENT_CLAIM_HEADERS: ReadonlySet<string> = new Set([
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'x-original-forwarded-for',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
]);

/**
 * True for a request header the caller drops besides FORWARDING_HEADERS themselves (which
 * it handles by name): any spelling of CLIENT_CLAIM_HEADERS, and the spellings with
 * underscores of FORWARDING_HEADERS — CGI, WSGI and Rack map `X_Real_IP` and `X-Real-IP`
 * both to `HTTP_X_REAL_IP`. Checked by length and first letter first: few names get further.
 */
export function isForwardingAlias(name: string): boolean {
  if (name.length < 9 || name.length > 24) return false;
  const first = name.charCodeAt(0) | 0x20;
  if (first !== 120 /* x */ && first !== 99 /* c */ && first !== 102 /* f */ && first !== 116 /* t */) return false;
  const lower = name.toLowerCase();
  if (lower.indexOf('_') === -1) return CLIENT_CLAIM_HEADERS.has(lower);
  const dashed = lower.replace(/_/g, '-');
  return FORWARDING_HEADERS.has(dashed) || CLIENT_CLAIM_HEADERS.has(dashed);
}
