/**
 * The access log: one JSON line per request, in the same shape pino writes
 * (`{"level":30,"time":"…",…,"msg":"request"}`), appended to a file. The line is built by
 * hand because this runs once per request (a pino call costs several times more: generic
 * serialisation and a fresh `Date` per line), and lines are gathered in a 64 KiB buffer
 * written with one asynchronous write when full or every second — a write per few lines
 * (as a stream destination does while its previous write is in flight) cost the gateway
 * about a tenth of its CPU under load.
 */
import { closeSync, mkdirSync, openSync, write } from 'node:fs';
import path from 'node:path';

const BUFFER_BYTES = 65_536;
const FLUSH_MS = 1_000;

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
/** Printable ASCII without `"` and `\`: a JSON string as it is. */
const PLAIN_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A JSON string literal, without the generic serialiser for the usual plain values. */
function str(s: string): string {
  return PLAIN_RE.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** Full buffers waiting for the disk before lines are dropped (and counted): 4 MiB. */
const MAX_QUEUED = 64;

export class AccessLog {
  #fd: number | null = null;
  /** The buffer lines are added to. */
  #buf: Buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  #used = 0;
  /** Filled buffers, oldest first, written one at a time. */
  readonly #queue: Array<{ buf: Buffer; n: number }> = [];
  #writing = false;
  /** Buffers back from the disk, for reuse. */
  readonly #free: Buffer[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  #lastMs = 0;
  #lastTime = '';
  #failed = false;
  /** Lines dropped because the disk could not keep up. */
  dropped = 0;

  /** Opens (creates) the file for appending; lines written before this are dropped. */
  async open(file: string): Promise<void> {
    mkdirSync(path.dirname(file), { recursive: true });
    this.#fd = openSync(file, 'a', 0o640);
    // Buffered for speed, but never more than a second behind for someone tailing it.
    this.#flushTimer = setInterval(() => this.#flush(), FLUSH_MS);
    this.#flushTimer.unref();
  }

  write(e: AccessEntry): void {
    if (this.#fd === null) return;
    const id = SAFE_ID_RE.test(e.requestId) ? `"${e.requestId}"` : JSON.stringify(e.requestId);
    const line =
      `{"level":30,"time":"${this.#time()}","requestId":${id},"client":${str(e.client)},"host":${str(e.host)},` +
      `"method":${str(e.method)},"path":${str(e.path)},"status":${e.status},"durationMs":${e.durationMs},` +
      `"upstream":${e.upstream === null ? 'null' : str(e.upstream)},"bytes":${e.bytes},"msg":"request"}\n`;
    // Worst case 3 bytes per UTF-16 unit; the usual line is plain ASCII.
    if (this.#used + line.length * 3 > BUFFER_BYTES) {
      this.#flush();
      if (line.length * 3 > BUFFER_BYTES) {
        this.#enqueue(Buffer.from(line, 'utf8'));
        return;
      }
    }
    this.#used += this.#buf.write(line, this.#used, 'utf8');
  }

  /** Moves the current buffer to the write queue and starts writing. */
  #flush(): void {
    if (this.#used === 0) return;
    const full = this.#buf;
    const n = this.#used;
    this.#buf = this.#free.pop() ?? Buffer.allocUnsafe(BUFFER_BYTES);
    this.#used = 0;
    this.#enqueue(full, n);
  }

  #enqueue(buf: Buffer, n = buf.length): void {
    if (this.#queue.length >= MAX_QUEUED) {
      this.dropped++;
      return;
    }
    this.#queue.push({ buf, n });
    this.#next();
  }

  #next(): void {
    const fd = this.#fd;
    if (fd === null || this.#writing) return;
    const item = this.#queue.shift();
    if (item === undefined) return;
    this.#writing = true;
    write(fd, item.buf, 0, item.n, null, (err) => {
      this.#writing = false;
      if (item.buf.length === BUFFER_BYTES && this.#free.length < 4) this.#free.push(item.buf);
      if (err && !this.#failed) {
        this.#failed = true;
        process.emitWarning(`access log write failed: ${err.message}`);
      }
      this.#next();
    });
  }

  /** Writes what is buffered and closes the file. */
  async close(): Promise<void> {
    if (this.#flushTimer !== null) clearInterval(this.#flushTimer);
    this.#flushTimer = null;
    const fd = this.#fd;
    if (fd === null) return;
    this.#flush();
    while (this.#writing || this.#queue.length > 0) {
      this.#next();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    this.#fd = null;
    closeSync(fd);
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
