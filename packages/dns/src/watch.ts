/**
 * The zone source: `GET {api}/v1/dns/watch` with the node token, read as NDJSON
 * (`DnsWatchMessage` per line). Each `zone` message replaces the zone, with the same
 * revision rule as the gateway's table watch: within one connection a zone with a lower
 * serial than the one in force is ignored, but the first zone after a (re)connect is taken
 * as it is, because the control plane may have restarted and counted again. Reconnects
 * with backoff (250 ms doubling to 5 s, with jitter); nothing here is ever fatal, and the
 * zone in force (persisted by the Authority) keeps answering meanwhile.
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { silentLogger, type Logger } from './logging.js';

/** Where accepted zones go; the Authority is one. */
export interface ZoneSink {
  /** The serial in force, or null when there is no zone yet. */
  readonly serial: number | null;
  /** Validates and installs a zone; throws (keeping the zone in force) when it is invalid. */
  applySnapshot(candidate: unknown): unknown;
}

export interface ZoneWatcherOptions {
  /** Control-plane base URL, e.g. `http://127.0.0.1:7070`. */
  readonly apiUrl: string;
  /** Returns the node token; called on every connect so a rotated token file is picked up. */
  readonly token: () => Promise<string>;
  readonly sink: ZoneSink;
  readonly logger?: Logger;
  /** First reconnect delay. @default 250 */
  readonly minBackoffMs?: number;
  /** Largest reconnect delay. @default 5000 */
  readonly maxBackoffMs?: number;
  /** Silence after which the stream is presumed dead (the server pings every 5 s). @default 15000 */
  readonly idleTimeoutMs?: number;
  /** Time to connect and get the response headers. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Longest line accepted; a longer one drops the connection. @default 16777216 */
  readonly maxLineBytes?: number;
}

/** Reads a token file (trimmed). */
export function tokenFromFile(file: string): () => Promise<string> {
  return async () => (await readFile(file, 'utf8')).trim();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The outcome of one `zone` message, for logs and tests. */
export type ZoneDecision = 'accepted' | 'stale' | 'invalid';

/**
 * The revision rule: after the first accepted zone of a connection, a zone with a lower
 * serial than the one in force is stale. Anything else is validated and installed.
 */
export function decideAndApply(sink: ZoneSink, candidate: unknown, acceptedOnThisConnection: boolean, log: Logger): ZoneDecision {
  const current = sink.serial;
  const serial = isRecord(candidate) ? candidate['serial'] : undefined;
  if (acceptedOnThisConnection && current !== null && typeof serial === 'number' && serial < current) {
    log.info({ serial, current }, 'stale zone ignored');
    return 'stale';
  }
  try {
    sink.applySnapshot(candidate);
    return 'accepted';
  } catch (err) {
    log.error({ err, serial }, 'invalid zone rejected; keeping the one in force');
    return 'invalid';
  }
}

export class ZoneWatcher {
  readonly #url: URL;
  readonly #opts: ZoneWatcherOptions;
  readonly #log: Logger;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  #current: http.ClientRequest | null = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #stopped = false;
  /** Connections opened so far (for tests and logs). */
  connections = 0;

  constructor(options: ZoneWatcherOptions) {
    this.#opts = options;
    this.#url = new URL(`${options.apiUrl.replace(/\/+$/, '')}/v1/dns/watch`);
    this.#log = options.logger ?? silentLogger();
    this.#minBackoffMs = options.minBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5_000;
  }

  start(): void {
    if (this.#loop !== null) return;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#current?.destroy();
    this.#wake?.();
    if (this.#loop !== null) await this.#loop;
  }

  async #run(): Promise<void> {
    let backoffMs = this.#minBackoffMs;
    while (!this.#stopped) {
      let gotMessage = false;
      try {
        gotMessage = await this.#connectOnce();
        if (!this.#stopped) this.#log.warn({ url: this.#url.href }, 'watch stream ended; reconnecting');
      } catch (err) {
        if (this.#stopped) break;
        this.#log.warn({ url: this.#url.href, err }, 'watch stream failed; reconnecting');
      }
      if (gotMessage) backoffMs = this.#minBackoffMs;
      if (this.#stopped) break;
      // Jitter (±20 %) so a fleet of servers does not reconnect in lockstep.
      await this.#sleep(Math.round(backoffMs * (0.8 + Math.random() * 0.4)));
      backoffMs = Math.min(backoffMs * 2, this.#maxBackoffMs);
    }
  }

  /** One connection: resolves when the stream ends (true if any message arrived), rejects on errors. */
  async #connectOnce(): Promise<boolean> {
    const token = await this.#opts.token();
    if (this.#stopped) return false;
    this.connections++;
    const connectTimeoutMs = this.#opts.connectTimeoutMs ?? 10_000;
    const idleTimeoutMs = this.#opts.idleTimeoutMs ?? 15_000;
    const maxLineBytes = this.#opts.maxLineBytes ?? 16 * 1024 * 1024;
    const lib = this.#url.protocol === 'https:' ? https : http;
    return new Promise<boolean>((resolve, reject) => {
      let gotMessage = false;
      let accepted = false;
      let settled = false;
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(headersTimer);
        this.#current = null;
        req.destroy();
        if (err === null) resolve(gotMessage);
        else reject(err);
      };
      const req = lib.request(this.#url, {
        method: 'GET',
        agent: false,
        headers: { authorization: `Bearer ${token}`, accept: 'application/x-ndjson' },
      });
      this.#current = req;
      const headersTimer = setTimeout(() => finish(new Error(`no response within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      req.on('error', (err) => finish(err));
      req.on('close', () => finish(null));
      req.on('response', (res) => {
        clearTimeout(headersTimer);
        if (res.statusCode !== 200) {
          res.resume();
          finish(Object.assign(new Error(`watch answered HTTP ${res.statusCode ?? '?'}`), { code: `HTTP_${res.statusCode ?? 0}` }));
          return;
        }
        this.#log.info({ url: this.#url.href }, 'watch stream connected');
        res.setTimeout(idleTimeoutMs, () => finish(new Error(`no message or ping for ${idleTimeoutMs} ms`)));
        // A multi-byte character may straddle two chunks; the decoder keeps it whole.
        const decoder = new StringDecoder('utf8');
        let partial = '';
        res.on('data', (raw: Buffer) => {
          const chunk = partial + decoder.write(raw);
          const lines = chunk.split('\n');
          partial = lines.pop() ?? '';
          if (partial.length > maxLineBytes) {
            finish(new Error(`watch line longer than ${maxLineBytes} characters`));
            return;
          }
          for (const l of lines) {
            const line = l.trim();
            if (line.length === 0) continue;
            gotMessage = true;
            if (this.#onLine(line, accepted) === 'accepted') accepted = true;
          }
        });
        res.on('error', (err) => finish(err));
        res.on('end', () => finish(null));
      });
      req.end();
    });
  }

  #onLine(line: string, acceptedOnThisConnection: boolean): ZoneDecision | 'other' {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#log.warn({ bytes: line.length }, 'watch line is not JSON; ignored');
      return 'other';
    }
    if (!isRecord(message) || message['type'] === 'ping') return 'other';
    if (message['type'] !== 'zone') {
      this.#log.debug({ type: message['type'] }, 'unknown watch message ignored');
      return 'other';
    }
    return decideAndApply(this.#opts.sink, message['zone'], acceptedOnThisConnection, this.#log);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) return resolve();
      const timer = setTimeout(done, ms);
      const wake = (): void => done();
      this.#wake = wake;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
