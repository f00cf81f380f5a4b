/**
 * The API's front door, as pure functions the hooks in api.ts and server.ts apply: which
 * routes are public (a short list, everything else needs a token), which request paths are
 * canonical (anything else is refused before routing decides anything), which query
 * parameters look like credentials, what a request log line may show, and how deep a
 * JSON body may nest.
 *
 * Authentication is decided by the route the router matched, never by the raw path: the
 * router decodes percent-escapes (`/%761/tenants` matches `/v1/tenants`), so a check on
 * the raw path can be walked around. Non-canonical paths are refused outright as well, so
 * one request has one spelling.
 */
import { InputError } from '@lanes/spec';

/** Routes that need no token: `METHOD pattern`, as the router registered them. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  'GET /healthz',
  'HEAD /healthz',
  'GET /openapi.json',
  'HEAD /openapi.json',
  // The CA certificate: clients need it before they have any token.
  'GET /v1/ca',
  'HEAD /v1/ca',
]);

/** Route patterns a node token may use: the data plane's watch streams, reports and packages. */
export function isDataPlaneRoute(pattern: string): boolean {
  return pattern.startsWith('/v1/agent/') || pattern.startsWith('/v1/gateway/') || pattern === '/v1/dns/watch';
}

/** True when `pattern` (undefined: no route matched) may be called without a token. */
export function isPublicRoute(method: string, pattern: string | undefined): boolean {
  return pattern !== undefined && PUBLIC_ROUTES.has(`${method} ${pattern}`);
}

// RFC 3986 pchar without percent-encoding: no route of this API has a name that needs an escape.
const SEGMENT_RE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;

/**
 * Why the request target is not in canonical form, or null when it is. Canonical: origin
 * form (starts with '/'), no percent-escapes, no empty, '.' or '..' segments (so no '//'
 * and no trailing '/'), no fragment or backslash. The query string is not looked at here.
 */
export function nonCanonicalReason(target: string): string | null {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!path.startsWith('/')) return 'must start with "/" (origin form)';
  if (path === '/') return null;
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') return 'has an empty segment ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return 'has a "." or ".." segment';
    if (segment.includes('%')) return 'has a percent-escape; write names as they are';
    if (!SEGMENT_RE.test(segment)) return 'has a character a path may not hold';
  }
  return null;
}

const TOKEN_PARAM_RE = /^(access[_-]?token|token|auth|authorization|bearer|api[_-]?key|key|secret|password)$/i;
const TOKEN_VALUE_RE = /lanes_(admin|node)_/i;

/** The first query parameter that looks like a credential (by name or by value), or null. */
export function tokenLikeQueryParam(target: string): string | null {
  const q = target.indexOf('?');
  if (q < 0) return null;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(target.slice(q + 1));
  } catch {
    return null;
  }
  for (const [name, value] of params) {
    if (TOKEN_PARAM_RE.test(name) || TOKEN_VALUE_RE.test(value) || TOKEN_VALUE_RE.test(name)) return name;
  }
  return null;
}

/**
 * The request target as a log line may show it: the path, and the query with the values
 * of credential-like parameters replaced by [redacted] (the whole query when it cannot be
 * parsed).
 */
export function loggableUrl(target: string): string {
  const q = target.indexOf('?');
  if (q < 0) return target;
  const path = target.slice(0, q);
  const query = target.slice(q + 1);
  if (query === '') return path;
  const out: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
    } catch {
      return `${path}?[redacted]`;
    }
    const secret = TOKEN_PARAM_RE.test(name) || TOKEN_VALUE_RE.test(value) || TOKEN_VALUE_RE.test(name);
    out.push(secret ? `${TOKEN_VALUE_RE.test(name) ? '[redacted]' : rawName}=[redacted]` : part);
  }
  return `${path}?${out.join('&')}`;
}

/** The request log serializer: an allow-list (method, redacted url, client address); never headers. */
export function serializeRequest(req: { method?: string; url?: string; ip?: string }): { method: string | undefined; url: string; remoteAddress: string | undefined } {
  return { method: req.method, url: loggableUrl(req.url ?? ''), remoteAddress: req.ip };
}

/** Deepest nesting of objects and arrays a JSON body may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * Throws an InputError when the JSON text nests objects or arrays deeper than `maxDepth`.
 * A linear scan before JSON.parse: a 100k-deep body would otherwise overflow the stack.
 */
export function checkJsonDepth(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > maxDepth) throw new InputError(`body: JSON nested deeper than ${maxDepth} levels`, 'body');
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** What a parsed body is, in words for an error message. */
export function kindOf(value: unknown): string {
  if (value === undefined) return 'no body';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'a binary body';
  return typeof value;
}

/** True for a JSON object (not null, not an array, not a Buffer). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}
