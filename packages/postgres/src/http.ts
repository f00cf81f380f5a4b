/**
 * The keeper's and arbiter's HTTP surface: a small router with bounded bodies and
 * timeouts, bearer-token authentication (compared in constant time) on everything but the
 * public probes, JSON in and out, and the one place where domain errors become HTTP
 * statuses (problem+json). Responses never carry a stack or a secret.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLanesError, TooLargeError, UnauthenticatedError, InputError, NotFoundError, type ErrorCode } from '@lanes/spec';
import type { Logger } from './logging.js';
import type { Secret } from './secret.js';

export const MAX_BODY_BYTES = 64 * 1024;

export interface HttpLimits {
  /** @default 64 KiB */
  readonly maxBodyBytes: number;
  /** Whole request (headers and body). @default 10000 */
  readonly requestTimeoutMs: number;
  /** @default 5000 */
  readonly headersTimeoutMs: number;
  /** @default 256 */
  readonly maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({ maxBodyBytes: MAX_BODY_BYTES, requestTimeoutMs: 10_000, headersTimeoutMs: 5_000, maxConnections: 256 });

export type Reply = { readonly status: number; readonly json: unknown } | { readonly status: number; readonly text: string };

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Public routes skip the bearer token (load-balancer and supervisor probes). */
  readonly public?: boolean;
  readonly handle: (body: unknown) => Promise<Reply> | Reply;
}

const STATUS: Readonly<Record<ErrorCode, number>> = {
  LANES_ERR_INPUT: 400,
  LANES_ERR_UNAUTHENTICATED: 401,
  LANES_ERR_NOT_ALLOWED: 403,
  LANES_ERR_NOT_FOUND: 404,
  LANES_ERR_CONFLICT: 409,
  LANES_ERR_TOO_LARGE: 413,
  LANES_ERR_UNAVAILABLE: 503,
};

/** The problem+json body and status for an error: domain errors by their code, the rest 500. */
export function problemFor(err: unknown): { status: number; body: Record<string, unknown> } {
  if (isLanesError(err)) {
    const status = STATUS[err.code];
    return { status, body: { type: `urn:lanes:error:${err.code}`, title: err.code, status, detail: err.message, code: err.code } };
  }
  return { status: 500, body: { type: 'urn:lanes:error:internal', title: 'internal error', status: 500, detail: 'internal error; see the process log' } };
}

function tokenMatches(header: string | undefined, token: Secret): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1] ?? '');
  const want = Buffer.from(token.reveal());
  return given.length === want.length && timingSafeEqual(given, want);
}

function readBody(req: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > maxBytes) {
      reject(new TooLargeError(`the request body is ${declared} bytes; at most ${maxBytes} are accepted`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        reject(new TooLargeError(`the request body is over ${maxBytes} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export interface ApiServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/** Starts the server on host:port (0: any free port). */
export async function startApiServer(opts: { host: string; port: number; routes: readonly Route[]; token: Secret; logger: Logger; limits?: HttpLimits }): Promise<ApiServer> {
  const limits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: string, type: string): void => {
      if (res.headersSent) return;
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://keeper');
      const route = opts.routes.find((r) => r.path === url.pathname && r.method === req.method);
      if (route === undefined) {
        if (opts.routes.some((r) => r.path === url.pathname)) throw new InputError(`${req.method ?? ''} is not allowed on ${url.pathname}`, 'method');
        throw new NotFoundError(`no route ${url.pathname}`);
      }
      if (route.public !== true && !tokenMatches(req.headers.authorization, opts.token)) {
        throw new UnauthenticatedError('a bearer token is required (Authorization: Bearer <token from the token file>)');
      }
      let body: unknown = undefined;
      if (req.method === 'POST') {
        const text = await readBody(req, limits.maxBodyBytes);
        if (text.length > 0) {
          try {
            body = JSON.parse(text);
          } catch {
            throw new InputError('the request body is not JSON', 'body');
          }
        }
      }
      const reply = await route.handle(body);
      if ('json' in reply) send(reply.status, `${JSON.stringify(reply.json)}\n`, 'application/json');
      else send(reply.status, reply.text, 'text/plain; charset=utf-8');
    } catch (err) {
      const { status, body } = problemFor(err);
      if (status === 500) opts.logger.error({ err, path: req.url }, 'request failed');
      send(status, `${JSON.stringify(body)}\n`, 'application/problem+json');
    }
  });
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    port: addr.port,
    host: addr.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
