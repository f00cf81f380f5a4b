/**
 * One client connection to the gateway (plain or TLS): reads request heads and bodies with
 * the strict framing of http1.ts, hands each request to the pipeline (proxy.ts) and writes
 * its answer, one request at a time — pipelined requests wait in the buffer, and reading
 * stops while too much is waiting. Keeps the listener's limits: header size (431), header
 * and request time (slow clients get 408 or are cut), idle keep-alive time; and closes
 * without losing the answer (a lingering close reads and drops what the client still
 * sends, so the kernel does not reset the connection under the answer).
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { GatewayLimits } from './config.js';
import { ChunkedDecoder, findHeadEnd, hasBadLineEnding, HttpParseError, parseRequestHead } from './http1.js';
import type { RequestHead } from './http1.js';
import type { Expiring, Sweeper } from './upstream.js';

/** How the request body ends. */
export const enum RequestBody {
  None,
  Length,
  Chunked,
}

/** Where a request's body and its client's fate go: the request's exchange. */
export interface RequestSink {
  /** Body bytes as the client framed them (chunk framing included). */
  onRequestData(data: Buffer): void;
  onRequestEnd(): void;
  /** The body was malformed or too slow: the exchange answers (or cuts) and stops. */
  onRequestError(status: number, message: string): void;
  /** The client went away before the answer was complete. */
  onClientClose(): void;
  /** The client took what was written: the paused upstream may flow again. */
  onClientDrain(): void;
}

export interface ConnectionContext {
  readonly limits: GatewayLimits;
  readonly sweeper: Sweeper;
  /**
   * A request head arrived. The pipeline sets the body framing (`expectBody`) and returns
   * the exchange that takes the body, or null when it already answered.
   */
  onRequest(conn: ClientConnection, head: RequestHead): RequestSink | null;
  /** The head's body bytes at hand were read without error: route and forward. */
  startRequest(sink: RequestSink): void;
  /** An Upgrade request (WebSocket): the connection is handed over with the bytes after the head. */
  onUpgrade(conn: ClientConnection, head: RequestHead, rest: Buffer): void;
  /** A gateway-made answer for a request that never reached the pipeline (bad framing, timeouts). */
  refuse(conn: ClientConnection, status: number, message: string): void;
  /** The connection closed (for the listener's bookkeeping). */
  onClose(conn: ClientConnection): void;
}

const enum State {
  /** Waiting for (or reading) a request head. */
  Head,
  /** Reading a request body. */
  Body,
  /** The request is read; its answer is on its way. */
  Waiting,
  /** Answered and closing: what the client sends is read and dropped. */
  Lingering,
  /** Handed over to a tunnel. */
  Upgraded,
  Closed,
}

/** Pipelined bytes held while a request is served, before reading stops. */
const MAX_PIPELINED_BYTES = 65_536;
/** How long a closing connection keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 2_000;

export class ClientConnection implements Expiring {
  readonly socket: net.Socket;
  readonly secure: boolean;
  /** Read once: the socket forgets it when it closes. */
  readonly remoteAddress: string;
  readonly #ctx: ConnectionContext;
  deadline = 0;
  #state = State.Head;
  #buf: Buffer | null = null;
  #sink: RequestSink | null = null;
  #body = RequestBody.None;
  #remaining = 0;
  #decoder: ChunkedDecoder | null = null;
  /** The client asked to keep the connection after this request. */
  #keepAlive = true;
  /** No more requests on this connection (the gateway closes, or an answer said close). */
  #closing = false;
  /** The answer to the current request is complete. */
  #answered = false;
  #requestDeadline = 0;
  #headStarted = false;
  #parsing = false;
  #again = false;
  #pausedForPipeline = false;
  #pausedByExchange = false;
  /** Requests served on this connection. */
  requests = 0;

  constructor(socket: net.Socket, secure: boolean, ctx: ConnectionContext) {
    this.socket = socket;
    this.secure = secure;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.#ctx = ctx;
    (socket as SocketWithConn).lanesClient = this;
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    // A new connection must send its first head within the headers timeout.
    this.deadline = performance.now() + ctx.limits.headersTimeoutMs;
    ctx.sweeper.add(this);
  }

  /** Neither closed nor closing (the state changes behind calls, so TS must not narrow it). */
  #open(): boolean {
    return this.#state !== State.Closed && this.#state !== State.Lingering;
  }

  /** True between a request head and the end of its answer. */
  get busy(): boolean {
    return this.#state === State.Body || this.#state === State.Waiting;
  }

  /** Whether the request body has been read to its end. */
  get bodyComplete(): boolean {
    return this.#state !== State.Body;
  }

  /** Decoded bytes of the current chunked body so far. */
  get chunkedBytes(): number {
    return this.#decoder?.dataBytes ?? 0;
  }

  /** Called by the pipeline from onRequest: how the request's body is framed. */
  expectBody(kind: RequestBody, length: number, keepAlive: boolean): void {
    this.#body = kind;
    this.#remaining = length;
    this.#keepAlive = keepAlive;
    this.#decoder = kind === RequestBody.Chunked ? new ChunkedDecoder() : null;
  }

  /** No further request on this connection: the current answer says close. */
  closeAfterAnswer(): void {
    this.#closing = true;
  }

  /** Whether the current answer may leave the connection open for another request. */
  get willKeepAlive(): boolean {
    return this.#keepAlive && !this.#closing;
  }

  write(data: Buffer | string): boolean {
    if (this.#state === State.Closed) return true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** Stops reading the request body (the instance is slower than the client). */
  pauseReading(): void {
    this.#pausedByExchange = true;
    this.socket.pause();
  }

  resumeReading(): void {
    this.#pausedByExchange = false;
    if (!this.#pausedForPipeline && this.#state !== State.Closed) this.socket.resume();
  }

  /**
   * The answer is complete. The connection waits for the next request when both sides
   * allow it and the request body was read to its end; otherwise it closes.
   */
  answered(): void {
    if (this.#state === State.Closed || this.#state === State.Lingering || this.#state === State.Upgraded) return;
    this.#answered = true;
    this.#sink = null;
    if (this.#pausedByExchange) this.resumeReading();
    if (this.#state === State.Body || !this.#keepAlive || this.#closing) {
      this.#linger();
      return;
    }
    this.#nextRequest();
  }

  /** Cuts the connection at once (an answer failed half-way). */
  destroy(): void {
    this.socket.destroy();
  }

  /** The gateway is closing: an idle connection closes now, a busy one after its answer. */
  shutdown(): void {
    this.#closing = true;
    if (this.#state === State.Head && this.#buf === null) this.socket.destroy();
  }

  /** Detaches from the socket (an Upgrade takes it over). */
  #handOver(): void {
    this.#state = State.Upgraded;
    this.deadline = 0;
    this.#ctx.sweeper.delete(this);
    const s = this.socket;
    s.off('data', onData);
    s.off('drain', onDrain);
    s.off('end', onEnd);
    s.off('error', onError);
    s.off('close', onClose);
    this.#ctx.onClose(this);
  }

  expire(now: number): void {
    this.deadline = 0;
    switch (this.#state) {
      case State.Head:
        if (this.#buf === null && !this.#headStarted) {
          // Idle keep-alive, or a connection that never said anything.
          this.socket.destroy();
          return;
        }
        this.#refuse(408, `request headers not received within ${this.#ctx.limits.headersTimeoutMs} ms`);
        return;
      case State.Body: {
        if (now < this.#requestDeadline) {
          this.deadline = this.#requestDeadline;
          return;
        }
        const sink = this.#sink;
        this.#closing = true;
        if (sink !== null) sink.onRequestError(408, `request body not received within ${this.#ctx.limits.requestTimeoutMs} ms`);
        else this.socket.destroy();
        return;
      }
      case State.Lingering:
        this.socket.destroy();
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Reading

  data(chunk: Buffer): void {
    switch (this.#state) {
      case State.Head:
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        this.#parse();
        return;
      case State.Body:
        this.#feedBody(chunk);
        return;
      case State.Waiting:
        // A pipelined request: kept until the current one is answered.
        this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
        if (this.#buf.length > MAX_PIPELINED_BYTES && !this.#pausedForPipeline) {
          this.#pausedForPipeline = true;
          this.socket.pause();
        }
        return;
      default:
        // Lingering: dropped.
        return;
    }
  }

  /** Reads heads from the buffer while requests can be taken (iterative: answers may be synchronous). */
  #parse(): void {
    if (this.#parsing) {
      this.#again = true;
      return;
    }
    this.#parsing = true;
    try {
      do {
        this.#again = false;
        this.#parseOne();
      } while (this.#again && this.#state === State.Head && this.#buf !== null);
    } finally {
      this.#parsing = false;
    }
  }

  #parseOne(): void {
    const buf = this.#buf;
    if (buf === null) return;
    const limits = this.#ctx.limits;
    const end = findHeadEnd(buf, 0);
    if (end === -1) {
      if (buf.length > limits.maxHeaderBytes) return this.#refuse(431, `request headers are over the limit of ${limits.maxHeaderBytes} bytes`);
      if (hasBadLineEnding(buf, 0)) return this.#refuse(400, 'malformed request: a line does not end in CRLF');
      if (!this.#headStarted) {
        this.#headStarted = true;
        this.deadline = performance.now() + limits.headersTimeoutMs;
      }
      return;
    }
    if (end + 4 > limits.maxHeaderBytes) return this.#refuse(431, `request headers are over the limit of ${limits.maxHeaderBytes} bytes`);
    let head: RequestHead;
    try {
      head = parseRequestHead(buf.toString('latin1', 0, end));
    } catch (err) {
      if (err instanceof HttpParseError) return this.#refuse(err.status, `malformed request: ${err.message}`);
      throw err;
    }
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.#buf = null;
    this.#headStarted = false;
    this.requests++;
    this.#answered = false;
    this.#body = RequestBody.None;
    this.#decoder = null;
    this.#state = State.Body;
    const now = performance.now();
    this.#requestDeadline = now + limits.requestTimeoutMs;
    this.deadline = this.#requestDeadline;
    if (isUpgrade(head)) {
      this.#handOver();
      this.#ctx.onUpgrade(this, head, rest ?? Buffer.alloc(0));
      return;
    }
    const sink = this.#ctx.onRequest(this, head);
    // Null: refused at once (bad target or framing); that answer closes the connection.
    if (sink === null) return;
    this.#sink = sink;
    if (this.#body === RequestBody.None) {
      this.#bodyDone();
      if (rest !== null) this.#holdPipelined(rest);
    } else if (rest !== null) {
      this.#feedBody(rest);
    }
    if (this.#sink === sink && this.#open()) this.#ctx.startRequest(sink);
  }

  #holdPipelined(rest: Buffer): void {
    if (this.#state === State.Head) {
      this.#buf = this.#buf === null ? rest : Buffer.concat([this.#buf, rest]);
      this.#parse();
    } else if (this.#state === State.Waiting) {
      this.#buf = this.#buf === null ? rest : Buffer.concat([this.#buf, rest]);
    }
  }

  #feedBody(chunk: Buffer): void {
    const sink = this.#sink;
    if (this.#body === RequestBody.Length) {
      const n = chunk.length;
      if (n <= this.#remaining) {
        this.#remaining -= n;
        sink?.onRequestData(chunk);
        if (this.#remaining === 0) this.#bodyDone();
        return;
      }
      const take = this.#remaining;
      this.#remaining = 0;
      if (take > 0) sink?.onRequestData(chunk.subarray(0, take));
      this.#bodyDone();
      this.#holdPipelined(chunk.subarray(take));
      return;
    }
    const decoder = this.#decoder;
    if (decoder === null) {
      this.#holdPipelined(chunk);
      return;
    }
    let used: number;
    try {
      used = decoder.execute(chunk, 0);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#closing = true;
      if (sink !== null) sink.onRequestError(400, `malformed request body: ${message}`);
      else this.#linger();
      return;
    }
    if (used > 0) sink?.onRequestData(used === chunk.length ? chunk : chunk.subarray(0, used));
    if (decoder.done) {
      this.#bodyDone();
      if (used < chunk.length) this.#holdPipelined(chunk.subarray(used));
    }
  }

  #bodyDone(): void {
    if (this.#state !== State.Body) return;
    this.#state = State.Waiting;
    this.deadline = 0;
    const sink = this.#sink;
    if (sink !== null) sink.onRequestEnd();
    else if (this.#answered) this.answered();
  }

  #nextRequest(): void {
    this.#state = State.Head;
    this.#headStarted = false;
    this.deadline = performance.now() + this.#ctx.limits.keepAliveTimeoutMs;
    if (this.#pausedForPipeline) {
      this.#pausedForPipeline = false;
      if (!this.#pausedByExchange) this.socket.resume();
    }
    if (this.#buf !== null) {
      this.#headStarted = true;
      this.deadline = performance.now() + this.#ctx.limits.headersTimeoutMs;
      this.#parse();
    }
  }

  /** A gateway answer for a request the pipeline never saw, then close. */
  #refuse(status: number, message: string): void {
    this.#closing = true;
    this.#buf = null;
    this.#state = State.Waiting;
    this.#ctx.refuse(this, status, message);
    this.#linger();
  }

  /** Ends the connection after the answer, reading and dropping what still comes. */
  #linger(): void {
    if (this.#state === State.Lingering || this.#state === State.Closed) return;
    const sink = this.#sink;
    this.#sink = null;
    this.#state = State.Lingering;
    this.#buf = null;
    this.deadline = performance.now() + LINGER_MS;
    if (sink !== null) sink.onClientClose();
    this.socket.end();
    this.socket.resume();
  }

  // ---------------------------------------------------------------------------------------
  // Socket events

  drained(): void {
    const sink = this.#sink;
    if (sink !== null) sink.onClientDrain();
  }

  /**
   * The client closed its side. Like node:http (and HAProxy's abortonclose), that ends
   * what it asked for: an answer in progress is abandoned and the instance's side cut, so
   * a client that went away holds nothing.
   */
  ended(): void {
    this.socket.destroy();
  }

  closed(): void {
    const was = this.#state;
    this.#state = State.Closed;
    this.deadline = 0;
    this.#ctx.sweeper.delete(this);
    const sink = this.#sink;
    this.#sink = null;
    if (sink !== null && was !== State.Upgraded) sink.onClientClose();
    this.#ctx.onClose(this);
  }
}

/** An Upgrade request: an Upgrade header and `upgrade` among the Connection tokens. */
function isUpgrade(head: RequestHead): boolean {
  const raw = head.rawHeaders;
  let upgrade = false;
  let connection = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 7 && name.toLowerCase() === 'upgrade') upgrade = true;
    else if (name.length === 10 && name.toLowerCase() === 'connection' && /(^|,)\s*upgrade\s*(,|$)/i.test(raw[i + 1] as string)) connection = true;
  }
  return upgrade && connection;
}

interface SocketWithConn extends net.Socket {
  lanesClient: ClientConnection;
}

function onData(this: SocketWithConn, chunk: Buffer): void {
  this.lanesClient.data(chunk);
}
function onDrain(this: SocketWithConn): void {
  this.lanesClient.drained();
}
function onEnd(this: SocketWithConn): void {
  this.lanesClient.ended();
}
function onError(this: SocketWithConn): void {
  // 'close' follows and does the bookkeeping.
}
function onClose(this: SocketWithConn): void {
  this.lanesClient.closed();
}
