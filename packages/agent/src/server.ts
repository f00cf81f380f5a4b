/**
 * The supervisor's own small HTTP endpoint: instance logs (tail and follow, NDJSON
 * LogLine), a shutdown request, and an unauthenticated /healthz. Everything under /v1
 * needs the node token. Errors are problem+json, mapped here and only here.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { LogLine } from '@lanes/spec';
import { fileSize, followFile, readTail } from './logs.js';
import type { Supervisor } from './supervisor.js';

export interface AgentServerOptions {
  readonly supervisor: Supervisor;
  readonly address: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly token: string;
  readonly logger: Logger;
  /** Performs the shutdown asked by `POST /v1/shutdown`; the answer is sent once it resolves. */
  readonly shutdown: (stopInstances: boolean) => Promise<void>;
  /** Called after the shutdown answer has been sent (the process exits there). */
  readonly afterShutdown: () => void;
  /** @default 10000 */
  readonly maxTailLines?: number;
}

export interface AgentServer {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 4096;
const MAX_FOLLOW_BUFFER_BYTES = 1024 * 1024;

function problem(res: ServerResponse, status: number, title: string, code: string, detail: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ type: 'about:blank', title, status, code, detail });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const { supervisor, logger } = opts;
  const maxTail = opts.maxTailLines ?? 10_000;
  let shuttingDown = false;

  const handleLogs = async (url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const id = url.searchParams.get('instance');
    if (id === null || id === '') return problem(res, 400, 'Bad Request', 'LANES_ERR_INPUT', 'instance: a query parameter ?instance=ID is required');
    const files = supervisor.logFiles(id);
    if (files === null) return problem(res, 404, 'Not Found', 'LANES_ERR_NOT_FOUND', `instance: ${JSON.stringify(id)} is not supervised by zone ${supervisor.zone}`);
    const tailText = url.searchParams.get('tail') ?? '100';
    const tail = Number(tailText);
    if (!Number.isInteger(tail) || tail < 0 || tail > maxTail) {
      return problem(res, 400, 'Bad Request', 'LANES_ERR_INPUT', `tail: ${JSON.stringify(tailText)} should be an integer from 0 to ${maxTail}`);
    }
    const followText = url.searchParams.get('follow');
    const follow = followText === '1' || followText === 'true';
    const line = (stream: 'stdout' | 'stderr', text: string, time: string | null): string => {
      const l: LogLine = { time, instance: id, service: files.service, zone: supervisor.zone, stream, line: text };
      return `${JSON.stringify(l)}\n`;
    };
    // Sizes first, so the tail and the follow meet without a gap or a repeated line.
    const outSize = await fileSize(files.stdout);
    const errSize = await fileSize(files.stderr);
    const outTail = await readTail(files.stdout, tail, outSize);
    const errTail = await readTail(files.stderr, tail, errSize);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.write(outTail.map((t) => line('stdout', t, null)).join('') + errTail.map((t) => line('stderr', t, null)).join(''));
    if (!follow) {
      res.end();
      return;
    }
    // A follower may be idle for long: no socket timeout; it ends when the client goes away.
    req.socket.setTimeout(0);
    const send = (stream: 'stdout' | 'stderr', text: string): void => {
      // A follower that does not read is dropped rather than buffered without bound.
      if (res.writableLength > MAX_FOLLOW_BUFFER_BYTES) {
        res.destroy();
        return;
      }
      res.write(line(stream, text, new Date().toISOString()));
    };
    const stops = [
      followFile({ file: files.stdout, fromOffset: outSize, onLine: (t) => send('stdout', t) }),
      followFile({ file: files.stderr, fromOffset: errSize, onLine: (t) => send('stderr', t) }),
    ];
    res.on('close', () => stops.forEach((stop) => stop()));
  };

  const handleShutdown = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await readBody(req, MAX_BODY_BYTES);
    if (text === null) return problem(res, 413, 'Payload Too Large', 'LANES_ERR_TOO_LARGE', `body: larger than ${MAX_BODY_BYTES} bytes`);
    let stopInstances = false;
    if (text.trim() !== '') {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return problem(res, 400, 'Bad Request', 'LANES_ERR_INPUT', 'body: not valid JSON; send {"stopInstances": true|false}');
      }
      const value = typeof body === 'object' && body !== null && 'stopInstances' in body ? body.stopInstances : false;
      if (typeof value !== 'boolean') {
        return problem(res, 400, 'Bad Request', 'LANES_ERR_INPUT', `stopInstances: ${JSON.stringify(value)} should be true or false`);
      }
      stopInstances = value;
    }
    if (shuttingDown) return problem(res, 409, 'Conflict', 'LANES_ERR_CONFLICT', 'shutdown: already in progress');
    shuttingDown = true;
    logger.info({ stopInstances }, 'shutdown requested');
    await opts.shutdown(stopInstances);
    res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ status: 'stopped', stopInstances }), () => opts.afterShutdown());
  };

  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const route = `${req.method ?? ''} ${url.pathname}`;
    const work = async (): Promise<void> => {
      if (route === 'GET /healthz') return json(res, 200, { status: 'ok', zone: supervisor.zone });
      if (!url.pathname.startsWith('/v1/')) return problem(res, 404, 'Not Found', 'LANES_ERR_NOT_FOUND', `path: ${JSON.stringify(url.pathname)} does not exist`);
      if (!tokenMatches(req.headers.authorization, opts.token)) {
        return problem(res, 401, 'Unauthorized', 'LANES_ERR_UNAUTHENTICATED', 'authorization: a valid node token is required (Authorization: Bearer <token>)');
      }
      if (route === 'GET /v1/logs') return handleLogs(url, req, res);
      if (route === 'POST /v1/shutdown') return handleShutdown(req, res);
      return problem(res, 404, 'Not Found', 'LANES_ERR_NOT_FOUND', `path: ${req.method ?? ''} ${JSON.stringify(url.pathname)} does not exist`);
    };
    work().catch((err: unknown) => {
      logger.error({ err, method: req.method, path: url.pathname }, 'agent request failed');
      problem(res, 500, 'Internal Server Error', 'LANES_ERR_INTERNAL', 'the supervisor failed to answer; see its log');
    });
  });
  server.maxConnections = 256;
  // Long enough for a slow tail read; followers switch it off for their own socket.
  server.setTimeout(60_000);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error(`address: the agent server is not listening on TCP (${String(addr)})`);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  logger.info({ url }, 'agent server listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
