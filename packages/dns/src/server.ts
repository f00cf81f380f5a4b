/**
 * The DNS listeners: UDP and TCP on one address and port. Each message goes through
 * parseQuery → the answer function → encodeResponse; nothing a client sends can throw out
 * of a handler. Limits: TCP connections at once, idle time per connection, bytes queued
 * for a client that does not read, query size; UDP answers never exceed what the client
 * can take (truncated with TC set, so it retries over TCP).
 */
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import net from 'node:net';
import type { Answer, Question } from './answer.js';
import { silentLogger, type Logger } from './logging.js';
import { encodeResponse, MAX_TCP_BYTES, parseQuery, udpLimit } from './wire.js';

export interface DnsLimits {
  /** TCP connections held at once; more are refused. @default 256 */
  readonly maxTcpConnections: number;
  /** A TCP connection with no query for this long is closed (RFC 7766 suggests seconds). @default 10000 */
  readonly tcpIdleTimeoutMs: number;
  /** Answers queued for a TCP client that does not read; beyond, the connection is dropped. @default 262144 */
  readonly maxTcpQueuedBytes: number;
}

export const DEFAULT_DNS_LIMITS: DnsLimits = Object.freeze({ maxTcpConnections: 256, tcpIdleTimeoutMs: 10_000, maxTcpQueuedBytes: 256 * 1024 });

export interface DnsServerOptions {
  /** An IP address to listen on. @default '127.0.0.1' */
  readonly host?: string;
  /** UDP and TCP port; 0 picks one that is free for both. @default 8053 */
  readonly port?: number;
  readonly answer: (q: Question) => Answer;
  readonly limits?: Partial<DnsLimits>;
  readonly logger?: Logger;
}

/** Counters for tests and the log. */
export interface DnsStats {
  udpQueries: number;
  tcpQueries: number;
  /** Messages dropped without an answer (too short to answer, or responses). */
  dropped: number;
  /** Queries answered with FORMERR, NOTIMP or REFUSED before reaching the zone. */
  rejected: number;
  tcpConnections: number;
}

export class DnsServer {
  readonly stats: DnsStats = { udpQueries: 0, tcpQueries: 0, dropped: 0, rejected: 0, tcpConnections: 0 };
  readonly #host: string;
  readonly #port: number;
  readonly #answer: (q: Question) => Answer;
  readonly #limits: DnsLimits;
  readonly #log: Logger;
  readonly #sockets = new Set<net.Socket>();
  #udp: dgram.Socket | null = null;
  #tcp: net.Server | null = null;

  constructor(options: DnsServerOptions) {
    this.#host = options.host ?? '127.0.0.1';
    if (!isIPv4(this.#host) && !isIPv6(this.#host)) throw new Error(`host: ${JSON.stringify(this.#host)} is not an IP address to listen on`);
    this.#port = options.port ?? 8053;
    this.#answer = options.answer;
    this.#limits = { ...DEFAULT_DNS_LIMITS, ...options.limits };
    this.#log = options.logger ?? silentLogger();
  }

  /** Starts both listeners; answers the address. With port 0, retries until one port is free for both. */
  async start(): Promise<{ host: string; port: number }> {
    for (let attempt = 0; ; attempt++) {
      const tcp = await this.#listenTcp(this.#port);
      const port = (tcp.address() as net.AddressInfo).port;
      try {
        this.#udp = await this.#bindUdp(port);
        this.#tcp = tcp;
        this.#log.info({ host: this.#host, port }, 'dns listening (udp, tcp)');
        return { host: this.#host, port };
      } catch (err) {
        await new Promise<void>((r) => tcp.close(() => r()));
        if (this.#port !== 0 || attempt >= 20) throw err;
      }
    }
  }

  #listenTcp(port: number): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: false });
      server.maxConnections = this.#limits.maxTcpConnections;
      server.on('connection', (socket) => this.#onTcp(socket));
      server.once('error', reject);
      server.listen({ host: this.#host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.error({ err }, 'tcp listener error'));
        resolve(server);
      });
    });
  }

  #bindUdp(port: number): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({ type: isIPv6(this.#host) ? 'udp6' : 'udp4', reuseAddr: false });
      socket.once('error', reject);
      socket.bind({ address: this.#host, port, exclusive: true }, () => {
        socket.off('error', reject);
        // A send error (e.g. ICMP unreachable reported back) must not stop the listener.
        socket.on('error', (err) => this.#log.warn({ err }, 'udp socket error'));
        socket.on('message', (msg, rinfo) => this.#onUdp(socket, msg, rinfo));
        resolve(socket);
      });
    });
  }

  /** One message in, at most one message out; never throws. */
  #handle(msg: Buffer, maxBytes: (edns: Parameters<typeof udpLimit>[0]) => number): Buffer | null {
    try {
      const q = parseQuery(msg);
      if (q.kind === 'drop') {
        this.stats.dropped++;
        return null;
      }
      if (q.kind === 'error') {
        this.stats.rejected++;
        this.#log.debug({ rcode: q.rcode, reason: q.reason }, 'query refused before the zone');
        return q.response;
      }
      return encodeResponse(q, this.#answer(q.question), maxBytes(q.edns));
    } catch (err) {
      this.#log.error({ err }, 'query handling failed');
      return null;
    }
  }

  #onUdp(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stats.udpQueries++;
    const out = this.#handle(msg, udpLimit);
    if (out !== null) socket.send(out, rinfo.port, rinfo.address, () => undefined);
  }

  #onTcp(socket: net.Socket): void {
    this.stats.tcpConnections++;
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.#limits.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => this.#sockets.delete(socket));
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      // Length-prefixed messages (RFC 1035 4.2.2), pipelined (RFC 7766): answer each in order.
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (len < 12) {
          socket.destroy(); // cannot be a DNS message: the stream is garbage from here on
          return;
        }
        if (buffered.length < 2 + len) break;
        const msg = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        this.stats.tcpQueries++;
        const out = this.#handle(msg, () => MAX_TCP_BYTES);
        if (out === null) continue;
        const frame = Buffer.allocUnsafe(2 + out.length);
        frame.writeUInt16BE(out.length, 0);
        out.copy(frame, 2);
        socket.write(frame);
        if (socket.writableLength > this.#limits.maxTcpQueuedBytes) {
          socket.destroy(); // a client that asks without reading
          return;
        }
      }
    });
  }

  async close(): Promise<void> {
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = null;
    this.#tcp = null;
    for (const s of this.#sockets) s.destroy();
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }
}
