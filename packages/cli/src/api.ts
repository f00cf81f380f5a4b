/**
 * The HTTP client for the public API (docs/api.md) and the one place where its failures
 * become user-facing sentences: problem+json → its `detail`, network errors → "cannot
 * reach the control plane at URL: connection refused".
 */
import { readFile } from 'node:fs/promises';
import { CliError } from './errors.js';
import { homePaths, readContext, type CliConfig } from './home.js';

/** @default 30000 */
const REQUEST_TIMEOUT_MS = 30_000;

export interface RequestOptions {
  readonly json?: unknown;
  readonly body?: Uint8Array;
  readonly contentType?: string;
  /** Milliseconds until the request is given up; null for streams that run until stopped. */
  readonly timeoutMs?: number | null;
  readonly signal?: AbortSignal;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #token: string;

  constructor(baseUrl: string, token: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#token = token;
  }

  /** Sends a request; answers with the parsed JSON body (null for 204), throws CliError otherwise. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: unknown }> {
    const res = await this.raw(method, path, options);
    const text = await res.text().catch(() => '');
    if (!res.ok) throw new CliError(describeHttpError(res.status, res.statusText, res.headers.get('content-type'), text));
    if (res.status === 204 || text.trim() === '') return { status: res.status, body: null };
    try {
      return { status: res.status, body: JSON.parse(text) as unknown };
    } catch {
      throw new CliError(`the control plane answered ${method} ${path} with a body that is not JSON`);
    }
  }

  async get(path: string): Promise<unknown> {
    return (await this.request('GET', path)).body;
  }

  /** The raw response of a successful request (for streams); errors are thrown as for `request`. */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    const res = await this.raw('GET', path, { timeoutMs: null, ...(signal ? { signal } : {}) });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new CliError(describeHttpError(res.status, res.statusText, res.headers.get('content-type'), text));
    }
    return res;
  }

  private async raw(method: string, path: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    let body: Uint8Array | string | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/octet-stream';
      body = options.body;
    }
    const timeoutMs = options.timeoutMs === undefined ? REQUEST_TIMEOUT_MS : options.timeoutMs;
    const signals = [options.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = body;
    if (signals.length > 0) init.signal = signals.length === 1 ? (signals[0] as AbortSignal) : AbortSignal.any(signals);
    try {
      return await fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw new CliError(describeNetworkError(this.baseUrl, err, timeoutMs));
    }
  }
}

/** Renders a failed answer: problem+json's `detail`, or the status and the start of the body. */
export function describeHttpError(status: number, statusText: string, contentType: string | null, text: string): string {
  let detail: string | null = null;
  if (contentType?.includes('json')) {
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v === 'object' && v !== null) {
        const d = 'detail' in v ? v.detail : 'message' in v ? v.message : null;
        const t = 'title' in v ? v.title : null;
        detail = typeof d === 'string' && d !== '' ? d : typeof t === 'string' && t !== '' ? t : null;
      }
    } catch {
      /* not JSON after all */
    }
  }
  if (status === 401) {
    return `${detail ?? 'the token was not accepted'} (401); check LANES_HOME/admin.token or LANES_TOKEN`;
  }
  if (detail !== null) return detail;
  const snippet = text.trim().replace(/\s+/g, ' ').slice(0, 200);
  return `the control plane answered ${status} ${statusText}`.trim() + (snippet ? `: ${snippet}` : '');
}

const NETWORK_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'no answer in time',
};

/** "cannot reach the control plane at URL: connection refused" (one line, whatever fetch threw). */
export function describeNetworkError(baseUrl: string, err: unknown, timeoutMs: number | null): string {
  return `cannot reach the control plane at ${baseUrl}: ${networkReason(err, timeoutMs)}`;
}

function networkReason(err: unknown, timeoutMs: number | null): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return timeoutMs === null ? 'the request was aborted' : `no answer within ${Math.round(timeoutMs / 1000)}s`;
  }
  // fetch wraps the socket error: TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }),
  // sometimes an AggregateError of several attempts (IPv4 and IPv6).
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if (typeof e !== 'object') break;
    const code = 'code' in e && typeof e.code === 'string' ? e.code : null;
    if (code && NETWORK_CODES[code]) return NETWORK_CODES[code];
    if ('errors' in e && Array.isArray(e.errors) && e.errors.length > 0) {
      e = e.errors[0];
      continue;
    }
    e = 'cause' in e ? e.cause : null;
  }
  const message = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
  return message || 'network error';
}

/**
 * The client for commands other than up/down/help: LANES_API_URL/LANES_TOKEN win, else
 * context.json and LANES_HOME/admin.token.
 */
export async function connect(config: CliConfig): Promise<{ api: ApiClient; domain: string | null; httpPort: number | null }> {
  const paths = homePaths(config.home);
  let apiUrl = config.apiUrl;
  let domain: string | null = null;
  let httpPort: number | null = null;
  if (apiUrl === null) {
    const ctx = await readContext(config.home);
    if (ctx === null) {
      throw new CliError(`the platform is not running (no ${paths.context}); start it with lanes up`);
    }
    if (ctx.state === 'failed') {
      throw new CliError(`the platform failed to start: ${ctx.message ?? 'unknown reason'}; run lanes down, then lanes up`);
    }
    if (ctx.apiUrl === null) throw new CliError('the platform is still starting; try again in a moment');
    apiUrl = ctx.apiUrl;
    domain = ctx.domain;
    httpPort = ctx.httpPort;
  }
  let token = config.token;
  if (token === null) {
    try {
      token = (await readFile(paths.adminToken, 'utf8')).trim();
    } catch (err) {
      const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unreadable';
      throw new CliError(`cannot read the admin token at ${paths.adminToken} (${code}); set LANES_TOKEN or check LANES_HOME`);
    }
    if (token === '') throw new CliError(`the admin token file ${paths.adminToken} is empty`);
  }
  return { api: new ApiClient(apiUrl, token), domain, httpPort };
}
