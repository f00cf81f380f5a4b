/**
 * The access log: one JSON line per request, in the same shape pino writes
 * (`{"level":30,"time":"…",…,"msg":"request"}`), appended to a file through pino's
 * asynchronous, buffered destination (sonic-boom). The line is built by hand because this
 * runs once per request: a pino call costs several times more (generic serialisation and a
 * fresh `Date` per line), and the fields here are fixed.
 */
import { once } from 'node:events';
import { pino } from 'pino';

type Destination = ReturnType<typeof pino.destination>;

/** What one access-log line records. */
export interface AccessEntry {
  readonly requestId: string;
  readonly client: string;
  readonly host: string;
  readonly method: string;
  /** The path without the query (which may hold secrets). */
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  /** The instance that answered, or null when the gateway answered itself. */
  readonly upstream: string | null;
  readonly bytes: number;
}

/** A request id is either a UUID or matched /^[A-Za-z0-9._-]{1,128}$/: nothing to escape. */
const SAFE_ID_RE = /^[A-Za-z0-9._-]*$/;

export class AccessLog {
  #dest: Destination | null = null;
  #flushTimer: NodeJS.Timeout | null = null;
  #lastMs = 0;
  #lastTime = '';

  /** Opens (creates) the file; lines written before this are dropped. */
  async open(file: string): Promise<void> {
    const dest = pino.destination({ dest: file, sync: false, minLength: 4_096, mkdir: true });
    await once(dest, 'ready');
    this.#dest = dest;
    // Buffered for speed, but never more than a second behind for someone tailing it.
    this.#flushTimer = setInterval(() => dest.flush(), 1_000);
    this.#flushTimer.unref();
  }

  write(e: AccessEntry): void {
    const dest = this.#dest;
    if (dest === null) return;
    const id = SAFE_ID_RE.test(e.requestId) ? `"${e.requestId}"` : JSON.stringify(e.requestId);
    dest.write(
      `{"level":30,"time":"${this.#time()}","requestId":${id},"client":${JSON.stringify(e.client)},"host":${JSON.stringify(e.host)},` +
        `"method":${JSON.stringify(e.method)},"path":${JSON.stringify(e.path)},"status":${e.status},"durationMs":${e.durationMs},` +
        `"upstream":${e.upstream === null ? 'null' : JSON.stringify(e.upstream)},"bytes":${e.bytes},"msg":"request"}\n`,
    );
  }

  /** Writes what is buffered and closes the file. */
  async close(): Promise<void> {
    if (this.#flushTimer !== null) clearInterval(this.#flushTimer);
    this.#flushTimer = null;
    const dest = this.#dest;
    if (dest === null) return;
    this.#dest = null;
    dest.flushSync();
    const finished = once(dest, 'close');
    dest.end();
    await finished;
  }

  /** The ISO time, formatted once per millisecond rather than once per line. */
  #time(): string {
    const ms = Date.now();
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastTime = new Date(ms).toISOString();
    }
    return this.#lastTime;
  }
}
