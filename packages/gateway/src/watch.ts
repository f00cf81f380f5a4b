/**
 * The gateway's table source: `GET {api}/v1/gateway/watch` with the node token, read as
 * NDJSON (`GatewayWatchMessage` per line). Each `table` message replaces the routing
 * table, with one revision rule: within one connection a table older than the current one
 * is ignored, but the first table after a (re)connect is taken as it is, because the
 * control plane may have restarted and counted again. Reconnects with backoff
 * (250 ms doubling to 5 s, with jitter); nothing here is ever fatal.
 */
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { Agent } from 'undici';
import type { RoutingTable } from '@lanes/spec';
import { silentLogger } from './logging.js';
import type { Logger } from './logging.js';

/** Where accepted tables go; the Gateway is one. */
export interface TableSink {
  /** The revision in force, or null when there is no table yet. */
  readonly routing: { readonly revision: number | null };
  /** Validates and installs a table; throws (keeping the last good one) when it is invalid. */
  applyTable(candidate: unknown): RoutingTable;
}

export interface TableWatcherOptions {
  /** Control-plane base URL, e.g. `http://127.0.0.1:7070`. */
  readonly apiUrl: string;
  /** Returns the node token; called on every connect so a rotated token file is picked up. */
  readonly token: () => Promise<string>;
  readonly sink: TableSink;
  readonly logger?: Logger;
  /** First reconnect delay. @default 250 */
  readonly minBackoffMs?: number;
  /** Largest reconnect delay. @default 5000 */
  readonly maxBackoffMs?: number;
  /** Silence after which the stream is presumed dead (the server pings every 5 s). @default 15000 */
  readonly idleTimeoutMs?: number;
  /** Time to connect and get the response headers. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Longest line accepted; a longer one drops the connection. @default 33554432 */
  readonly maxLineBytes?: number;
}

/** Reads a token file (trimmed). */
export function tokenFromFile(file: string): () => Promise<string> {
  return async () => (await readFile(file, 'utf8')).trim();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The outcome of one `table` message, for logs and tests. */
export type TableDecision = 'accepted' | 'stale' | 'invalid';

export class TableWatcher {
  readonly #url: string;
  readonly #origin: string;
  readonly #path: string;
  readonly #opts: TableWatcherOptions;
  readonly #log: Logger;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #agent: Agent;
  #abort = new AbortController();
  #loop: Promise<void> | null = null;
  #stopped = false;
  /** Connections opened so far (for tests and logs). */
  connections = 0;

  constructor(options: TableWatcherOptions) {
    this.#opts = options;
    this.#url = `${options.apiUrl.replace(/\/+$/, '')}/v1/gateway/watch`;
    const url = new URL(this.#url);
    this.#origin = url.origin;
    this.#path = url.pathname;
    this.#log = options.logger ?? silentLogger();
    this.#minBackoffMs = options.minBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5_000;
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#agent = new Agent({
      connect: { timeout: connectTimeoutMs },
      headersTimeout: connectTimeoutMs,
      bodyTimeout: options.idleTimeoutMs ?? 15_000,
    });
  }

  start(): void {
    if (this.#loop !== null) return;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    if (this.#loop !== null) await this.#loop;
    await this.#agent.close().catch(() => undefined);
  }

  async #run(): Promise<void> {
    let backoffMs = this.#minBackoffMs;
    while (!this.#stopped) {
      let gotMessage = false;
      try {
        gotMessage = await this.#connectOnce();
        if (!this.#stopped) this.#log.warn({ url: this.#url }, 'watch stream ended; reconnecting');
      } catch (err) {
        if (this.#stopped) break;
        this.#log.warn({ url: this.#url, err }, 'watch stream failed; reconnecting');
      }
      if (gotMessage) backoffMs = this.#minBackoffMs;
      if (this.#stopped) break;
      // Jitter (±20 %) so a fleet of gateways does not reconnect in lockstep.
      const delayMs = Math.round(backoffMs * (0.8 + Math.random() * 0.4));
      await this.#sleep(delayMs);
      backoffMs = Math.min(backoffMs * 2, this.#maxBackoffMs);
    }
  }

  /** One connection: resolves when the stream ends; true if any message arrived. */
  async #connectOnce(): Promise<boolean> {
    const token = await this.#opts.token();
    this.connections++;
    const { statusCode, body } = await this.#agent.request({
      origin: this.#origin,
      path: this.#path,
      method: 'GET',
      headers: { authorization: `Bearer ${token}`, accept: 'application/x-ndjson' },
      signal: this.#abort.signal,
    });
    if (statusCode !== 200) {
      body.resume();
      throw Object.assign(new Error(`watch answered HTTP ${statusCode}`), { code: `HTTP_${statusCode}` });
    }
    this.#log.info({ url: this.#url }, 'watch stream connected');
    const maxLineBytes = this.#opts.maxLineBytes ?? 32 * 1024 * 1024;
    let acceptedOnThisConnection = false;
    let gotMessage = false;
    // Lines can be large (a whole table); collect parts and join once per line.
    let parts: string[] = [];
    let partsLength = 0;
    // A multi-byte character may straddle two chunks; the decoder keeps it whole.
    const decoder = new StringDecoder('utf8');
    for await (const raw of body) {
      const chunk = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? decoder.write(raw) : '';
      let start = 0;
      let newline = chunk.indexOf('\n');
      while (newline !== -1) {
        parts.push(chunk.slice(start, newline));
        const line = parts.join('').trim();
        parts = [];
        partsLength = 0;
        start = newline + 1;
        newline = chunk.indexOf('\n', start);
        if (line.length === 0) continue;
        gotMessage = true;
        if (this.#onLine(line, acceptedOnThisConnection) === 'accepted') acceptedOnThisConnection = true;
      }
      if (start < chunk.length) {
        parts.push(chunk.slice(start));
        partsLength += chunk.length - start;
        if (partsLength > maxLineBytes) {
          body.destroy();
          throw new Error(`watch line longer than ${maxLineBytes} characters`);
        }
      }
    }
    return gotMessage;
  }

  #onLine(line: string, acceptedOnThisConnection: boolean): TableDecision | 'other' {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#log.warn({ bytes: line.length }, 'watch line is not JSON; ignored');
      return 'other';
    }
    if (!isRecord(message)) return 'other';
    if (message['type'] === 'ping') return 'other';
    if (message['type'] !== 'table') {
      this.#log.debug({ type: message['type'] }, 'unknown watch message ignored');
      return 'other';
    }
    return decideAndApply(this.#opts.sink, message['table'], acceptedOnThisConnection, this.#log);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#abort.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      const signal = this.#abort.signal;
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * The revision rule: after the first accepted table of a connection, a table older than
 * the one in force is stale. Anything else is validated and installed by the sink.
 */
export function decideAndApply(sink: TableSink, candidate: unknown, acceptedOnThisConnection: boolean, log: Logger): TableDecision {
  const current = sink.routing.revision;
  const revision = isRecord(candidate) ? candidate['revision'] : undefined;
  if (acceptedOnThisConnection && current !== null && typeof revision === 'number' && revision < current) {
    log.info({ revision, current }, 'stale routing table ignored');
    return 'stale';
  }
  try {
    sink.applyTable(candidate);
    return 'accepted';
  } catch (err) {
    log.error({ err, revision }, 'invalid routing table rejected; keeping the last good one');
    return 'invalid';
  }
}
