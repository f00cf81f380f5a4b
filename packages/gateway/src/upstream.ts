/**
 * Connections to instances: one keep-alive pool per instance endpoint, each connection
 * carrying one request at a time (no pipelining: a slow answer never holds up another),
 * its response read by the strict framing of http1.ts. The pool hands a connection to
 * whoever asks (an idle one first, the most recently used, whose socket is warmest), opens
 * a new one up to its limit, and queues the rest in order.
 *
 * Timeouts (connect, response headers, silence within a body, idle keep-alive) are not
 * timers per request: each connection keeps one deadline that the gateway's sweeper checks
 * a few times a second (`Sweeper`), so a request costs an assignment, not a timer.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ChunkedDecoder, findHeadEnd, hasToken, HttpParseError, parseContentLength, parseResponseHead, readTransferEncoding } from './http1.js';
import type { ResponseHead } from './http1.js';

/** How a response body ends. */
export const enum BodyKind {
  None,
  Length,
  Chunked,
  /** Until the instance closes the connection. */
  Eof,
}

/** What a request in flight on a connection hears from it. */
export interface UpstreamHandler {
  /** The connection is the handler's: write the request. */
  onUpstreamReady(conn: UpstreamConnection): void;
  /**
   * A final response head (1xx answers are skipped). `more`: body bytes follow in the same
   * read, so the handler may hold the head and send both in one write.
   */
  onResponseHead(conn: UpstreamConnection, head: ResponseHead, body: BodyKind, more: boolean): void;
  /** Body bytes as the instance framed them (chunk framing included for a chunked body). */
  onResponseData(conn: UpstreamConnection, data: Buffer): void;
  onResponseEnd(conn: UpstreamConnection): void;
  /**
   * The attempt failed: `code` is a socket error code (ECONNREFUSED, ECONNRESET…),
   * UPSTREAM_CLOSED, CONNECT_TIMEOUT, HEADERS_TIMEOUT, BODY_TIMEOUT or an HPE_ parse code.
   */
  onUpstreamError(conn: UpstreamConnection | null, code: string, err: Error | null): void;
  /** The instance took what was written: more of the request body may go. */
  onUpstreamDrain(conn: UpstreamConnection): void;
}

export interface PoolLimits {
  readonly upstreamConnections: number;
  readonly upstreamConnectTimeoutMs: number;
  readonly upstreamHeadersTimeoutMs: number;
  readonly upstreamBodyTimeoutMs: number;
  readonly upstreamKeepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
}

/** Things with a deadline, checked together a few times a second. */
export interface Expiring {
  /** performance.now() ms after which `expire` is called; 0: none. */
  deadline: number;
  expire(now: number): void;
}

/** One timer for every deadline of a gateway: connections, not requests, register. */
export class Sweeper {
  readonly #items = new Set<Expiring>();
  #timer: NodeJS.Timeout | null = null;
  #intervalMs: number;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  add(item: Expiring): void {
    this.#items.add(item);
    if (this.#timer === null) this.#start();
  }

  delete(item: Expiring): void {
    this.#items.delete(item);
  }

  /** Checks more often when a shorter timeout appears (a route's own, say). */
  setInterval(ms: number): void {
    if (ms === this.#intervalMs) return;
    this.#intervalMs = ms;
    if (this.#timer !== null) {
      clearInterval(this.#timer);
      this.#start();
    }
  }

  #start(): void {
    this.#timer = setInterval(() => this.sweep(performance.now()), this.#intervalMs);
    this.#timer.unref();
  }

  sweep(now: number): void {
    for (const item of this.#items) if (item.deadline !== 0 && now >= item.deadline) item.expire(now);
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#items.clear();
  }
}

const enum State {
  Connecting,
  /** In the pool, waiting for a request. */
  Idle,
  /** A request is being sent or answered. */
  Busy,
  Closed,
}

/** A keep-alive connection to one instance. */
export class UpstreamConnection implements Expiring {
  readonly socket: net.Socket;
  readonly pool: UpstreamPool;
  deadline = 0;
  #state = State.Connecting;
  #handler: UpstreamHandler | null;
  /** Responses completed on this connection (a reused one may have been closed by the instance meanwhile). */
  served = 0;
  /** Bytes of the current response seen; 0 while none came (so a failure is a connection failure). */
  responseBytes = 0;
  /** The current (or last) response body's size without chunk framing. */
  bodyBytes = 0;
  #head: Buffer | null = null;
  #awaitingHead = false;
  #headRequest = false;
  #body = BodyKind.None;
  #remaining = 0;
  #chunked: ChunkedDecoder | null = null;
  #keepAlive = true;
  #headersTimeoutMs = 0;
  #deadlineKind: 'connect' | 'headers' | 'body' | 'idle' = 'connect';

  constructor(pool: UpstreamPool, handler: UpstreamHandler) {
    this.pool = pool;
    this.#handler = handler;
    const socket = net.connect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = socket;
    this.deadline = performance.now() + pool.limits.upstreamConnectTimeoutMs;
    socket.on('connect', onConnect);
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('end', onEnd);
    (socket as SocketWithConn).lanesConn = this;
  }

  /** Whether this connection has answered a request before (so may be stale). */
  get reused(): boolean {
    return this.served > 0;
  }

  get busy(): boolean {
    return this.#state === State.Busy;
  }

  /** Hands the idle connection to a new request. */
  assign(handler: UpstreamHandler): void {
    this.#state = State.Busy;
    this.#handler = handler;
    this.deadline = 0;
    handler.onUpstreamReady(this);
  }

  /**
   * The request is on its way: from now on a response is awaited, within `headersTimeoutMs`.
   * `head` says the request was a HEAD (its answer has no body whatever it declares).
   */
  expectResponse(headRequest: boolean, headersTimeoutMs: number): void {
    this.#awaitingHead = true;
    this.#headRequest = headRequest;
    this.responseBytes = 0;
    this.bodyBytes = 0;
    this.#headersTimeoutMs = headersTimeoutMs;
    this.#deadlineKind = 'headers';
    this.deadline = performance.now() + headersTimeoutMs;
    // Bytes that came early (an instance answering before the body was sent) are read now.
    if (this.#head !== null && this.#head.length > 0) {
      const pending = this.#head;
      this.#head = null;
      this.data(pending);
    }
  }

  write(data: Buffer | string): boolean {
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** The current request is done with (answered, or abandoned): back to the pool or closed. */
  release(reusable: boolean): void {
    this.#handler = null;
    this.pool.release(this, reusable && this.#keepAlive && !this.#awaitingHead && this.#body === BodyKind.None && this.#state === State.Busy);
  }

  /** Closes the connection (its request, if any, gets no more events). */
  destroy(): void {
    this.#handler = null;
    this.socket.destroy();
  }

  /** Back in the pool. */
  idle(keepAliveMs: number): void {
    this.#state = State.Idle;
    this.#deadlineKind = 'idle';
    this.deadline = performance.now() + keepAliveMs;
  }

  expire(): void {
    const kind = this.#deadlineKind;
    this.deadline = 0;
    const handler = this.#handler;
    this.#handler = null;
    this.socket.destroy();
    if (handler === null || kind === 'idle') return;
    handler.onUpstreamError(this, kind === 'connect' ? 'CONNECT_TIMEOUT' : kind === 'headers' ? 'HEADERS_TIMEOUT' : 'BODY_TIMEOUT', null);
  }

  connected(): void {
    const handler = this.#handler;
    this.deadline = 0;
    if (handler === null) {
      // Its request went away while it connected: keep it for the next one.
      this.#state = State.Busy;
      this.pool.release(this, true);
      return;
    }
    this.#state = State.Busy;
    handler.onUpstreamReady(this);
  }

  drained(): void {
    const handler = this.#handler;
    if (handler !== null) handler.onUpstreamDrain(this);
  }

  /** Reads what the instance sent. */
  data(chunk: Buffer): void {
    const handler = this.#handler;
    if (handler === null || this.#state !== State.Busy) {
      // Nobody asked: an idle connection that speaks is broken.
      this.socket.destroy();
      return;
    }
    if (!this.#awaitingHead && this.#body === BodyKind.None) {
      // The instance answers before the request was fully sent: keep it for expectResponse.
      this.#head = this.#head === null ? chunk : Buffer.concat([this.#head, chunk]);
      if (this.#head.length > this.pool.limits.maxHeaderBytes + 65_536) this.#fail(handler, 'HPE_HEADER_OVERFLOW', null);
      return;
    }
    this.responseBytes += chunk.length;
    let buf = chunk;
    let offset = 0;
    while (this.#awaitingHead) {
      if (this.#head !== null) {
        buf = Buffer.concat([this.#head, buf.subarray(offset)]);
        offset = 0;
        this.#head = null;
      }
      const end = findHeadEnd(buf, offset);
      if (end === -1) {
        if (buf.length - offset > this.pool.limits.maxHeaderBytes) return this.#fail(handler, 'HPE_HEADER_OVERFLOW', null);
        this.#head = offset === 0 ? buf : buf.subarray(offset);
        return;
      }
      let head: ResponseHead;
      try {
        head = parseResponseHead(buf.toString('latin1', offset, end));
      } catch (err) {
        return this.#fail(handler, err instanceof HttpParseError ? err.code : 'HPE_INVALID_CONSTANT', err instanceof Error ? err : null);
      }
      offset = end + 4;
      if (head.status < 200) {
        // 1xx answers (100 Continue, 103 Early Hints) are not passed on; the final one follows.
        // 101 only answers an upgrade, which never comes through here.
        if (head.status === 101) return this.#fail(handler, 'HPE_UNEXPECTED_UPGRADE', null);
        continue;
      }
      let kind: BodyKind;
      try {
        kind = this.#framing(head);
      } catch (err) {
        return this.#fail(handler, err instanceof HttpParseError ? err.code : 'HPE_UNEXPECTED_CONTENT_LENGTH', err instanceof Error ? err : null);
      }
      this.#awaitingHead = false;
      this.#body = kind;
      this.#deadlineKind = 'body';
      this.deadline = performance.now() + this.pool.limits.upstreamBodyTimeoutMs;
      handler.onResponseHead(this, head, kind, kind !== BodyKind.None && offset < buf.length);
      if (this.#handler !== handler) return; // abandoned while handling the head
      if (kind === BodyKind.None) return this.#end(handler, buf.length > offset);
    }
    if (offset >= buf.length) return;
    this.deadline = performance.now() + this.pool.limits.upstreamBodyTimeoutMs;
    switch (this.#body) {
      case BodyKind.Length: {
        const n = buf.length - offset;
        if (n <= this.#remaining) {
          this.#remaining -= n;
          this.bodyBytes += n;
          handler.onResponseData(this, offset === 0 ? buf : buf.subarray(offset));
          if (this.#remaining === 0 && this.#handler === handler) this.#end(handler, false);
        } else {
          const take = this.#remaining;
          this.#remaining = 0;
          this.bodyBytes += take;
          handler.onResponseData(this, buf.subarray(offset, offset + take));
          // More than the body: the instance's framing is off; do not reuse the connection.
          if (this.#handler === handler) this.#end(handler, true);
        }
        return;
      }
      case BodyKind.Chunked: {
        const decoder = this.#chunked as ChunkedDecoder;
        let used: number;
        try {
          used = decoder.execute(buf, offset);
        } catch (err) {
          return this.#fail(handler, err instanceof HttpParseError ? err.code : 'HPE_INVALID_CHUNK_SIZE', err instanceof Error ? err : null);
        }
        this.bodyBytes = decoder.dataBytes;
        if (used > 0) handler.onResponseData(this, offset === 0 && used === buf.length ? buf : buf.subarray(offset, offset + used));
        if (decoder.done && this.#handler === handler) this.#end(handler, offset + used < buf.length);
        return;
      }
      case BodyKind.Eof:
        this.bodyBytes += buf.length - offset;
        handler.onResponseData(this, offset === 0 ? buf : buf.subarray(offset));
        return;
      case BodyKind.None:
        // Bytes after a complete bodiless answer: broken framing.
        this.#keepAlive = false;
        return;
    }
  }

  #framing(head: ResponseHead): BodyKind {
    const raw = head.rawHeaders;
    let length = -1;
    let encoding: string | null = null;
    let keepAlive = head.httpVersion === '1.1';
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      const n = name.length;
      if (n === 14 && name.toLowerCase() === 'content-length') {
        const v = parseContentLength(raw[i + 1] as string);
        if (v === null || (length !== -1 && v !== length)) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 502, 'the answer has an invalid or a second, different Content-Length');
        length = v;
      } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') {
        encoding = encoding === null ? (raw[i + 1] as string) : `${encoding}, ${raw[i + 1] as string}`;
      } else if (n === 10 && name.toLowerCase() === 'connection') {
        const v = raw[i + 1] as string;
        if (hasToken(v, 'close')) keepAlive = false;
        else if (head.httpVersion === '1.0' && hasToken(v, 'keep-alive')) keepAlive = true;
      }
    }
    this.#keepAlive = keepAlive;
    const status = head.status;
    if (this.#headRequest || status === 204 || status === 304) return BodyKind.None;
    if (encoding !== null) {
      if (readTransferEncoding(encoding) === 'chunked') {
        this.#chunked = new ChunkedDecoder();
        return BodyKind.Chunked;
      }
      this.#keepAlive = false;
      return BodyKind.Eof;
    }
    if (length >= 0) {
      this.#remaining = length;
      return length === 0 ? BodyKind.None : BodyKind.Length;
    }
    this.#keepAlive = false;
    return BodyKind.Eof;
  }

  #end(handler: UpstreamHandler, extraBytes: boolean): void {
    if (extraBytes) this.#keepAlive = false;
    this.#body = BodyKind.None;
    this.#chunked = null;
    this.served++;
    this.deadline = 0;
    handler.onResponseEnd(this);
  }

  #fail(handler: UpstreamHandler, code: string, err: Error | null): void {
    this.#handler = null;
    this.socket.destroy();
    handler.onUpstreamError(this, code, err);
  }

  /** The instance half-closed: the end of a body read to EOF; a failure otherwise. */
  ended(): void {
    const handler = this.#handler;
    if (handler !== null && this.#state === State.Busy && this.#body === BodyKind.Eof && !this.#awaitingHead) {
      this.#keepAlive = false;
      this.#end(handler, false);
    }
    this.socket.destroy();
  }

  errored(err: NodeJS.ErrnoException): void {
    const handler = this.#handler;
    this.#handler = null;
    if (handler !== null) handler.onUpstreamError(this, err.code ?? 'ECONNRESET', err);
  }

  closed(): void {
    const wasConnecting = this.#state === State.Connecting;
    this.#state = State.Closed;
    this.deadline = 0;
    const handler = this.#handler;
    this.#handler = null;
    this.pool.forget(this);
    if (handler === null) return;
    if (this.#body === BodyKind.Eof && !this.#awaitingHead) {
      this.#body = BodyKind.None;
      this.served++;
      handler.onResponseEnd(this);
      return;
    }
    handler.onUpstreamError(this, wasConnecting ? 'ECONNREFUSED' : 'UPSTREAM_CLOSED', null);
  }
}

interface SocketWithConn extends net.Socket {
  lanesConn: UpstreamConnection;
}

// Shared listeners (the connection hangs off the socket): no closures per connection.
function onConnect(this: SocketWithConn): void {
  this.lanesConn.connected();
}
function onData(this: SocketWithConn, chunk: Buffer): void {
  this.lanesConn.data(chunk);
}
function onDrain(this: SocketWithConn): void {
  this.lanesConn.drained();
}
function onError(this: SocketWithConn, err: NodeJS.ErrnoException): void {
  this.lanesConn.errored(err);
}
function onClose(this: SocketWithConn): void {
  this.lanesConn.closed();
}
function onEnd(this: SocketWithConn): void {
  this.lanesConn.ended();
}

/** The keep-alive connections to one instance endpoint. */
export class UpstreamPool {
  readonly host: string;
  readonly port: number;
  readonly limits: PoolLimits;
  readonly #sweeper: Sweeper;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  readonly #queue: UpstreamHandler[] = [];
  #closing = false;

  constructor(host: string, port: number, limits: PoolLimits, sweeper: Sweeper) {
    this.host = host;
    this.port = port;
    this.limits = limits;
    this.#sweeper = sweeper;
  }

  /** Connections open (idle or busy). */
  get size(): number {
    return this.#all.size;
  }

  /** Gives `handler` a connection now (onUpstreamReady), once one connects, or when one frees up. */
  acquire(handler: UpstreamHandler): void {
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle.assign(handler);
    if (this.#all.size < this.limits.upstreamConnections) {
      this.#open(handler);
      return;
    }
    this.#queue.push(handler);
  }

  /** Takes a handler out of the queue (its client left while it waited). */
  cancel(handler: UpstreamHandler): void {
    const i = this.#queue.indexOf(handler);
    if (i !== -1) this.#queue.splice(i, 1);
  }

  #open(handler: UpstreamHandler): void {
    const conn = new UpstreamConnection(this, handler);
    this.#all.add(conn);
    this.#sweeper.add(conn);
  }

  release(conn: UpstreamConnection, reusable: boolean): void {
    if (!reusable || this.#closing || conn.socket.destroyed) {
      conn.destroy();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) return conn.assign(next);
    conn.idle(this.limits.upstreamKeepAliveTimeoutMs);
    this.#idle.push(conn);
  }

  /** The connection closed: out of the pool; a waiting request gets a fresh one. */
  forget(conn: UpstreamConnection): void {
    this.#all.delete(conn);
    this.#sweeper.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    if (!this.#closing) {
      const next = this.#queue.shift();
      if (next !== undefined) this.#open(next);
    }
  }

  /**
   * Retires the pool (its endpoint left the table): idle connections close now, busy ones
   * when their request is done; queued requests still get their connection.
   */
  retire(): void {
    this.#closing = true;
    for (const c of this.#idle.splice(0)) c.destroy();
    for (const h of this.#queue.splice(0)) this.#open(h);
  }

  /** Closes everything at once (gateway shutdown). */
  destroy(): void {
    this.#closing = true;
    const queued = this.#queue.splice(0);
    for (const c of [...this.#all]) c.destroy();
    for (const h of queued) h.onUpstreamError(null, 'UPSTREAM_CLOSED', null);
  }
}
