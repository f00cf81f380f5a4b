/**
 * Test support for this package's tests only (not exported): real upstream HTTP servers
 * on 127.0.0.1 and routing-table builders.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { Endpoint, RoutingTable, VirtualHost } from '@lanes/spec';
import { tempDir } from '@lanes/testkit';
import { Gateway } from './proxy.js';
import type { GatewayOptions } from './proxy.js';

export interface TestUpstream {
  readonly name: string;
  readonly port: number;
  readonly server: http.Server;
  readonly endpoint: Endpoint;
  hits: number;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, self: TestUpstream) => void;

/** Echoes what it received as JSON: its name, method, url, headers and body length. */
export const echo: UpstreamHandler = (req, res, self) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    const body = JSON.stringify({ name: self.name, method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': self.name });
    res.end(body);
  });
};

export async function startUpstream(name: string, handler: UpstreamHandler = echo): Promise<TestUpstream> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  const self: TestUpstream = {
    name,
    port: addr.port,
    server,
    endpoint: { instance: name, zone: 'a', address: '127.0.0.1', port: addr.port },
    hits: 0,
    async close() {
      if (!server.listening) return;
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    self.hits++;
    handler(req, res, self);
  });
  return self;
}

export function vhost(host: string, routes: Array<{ pathPrefix?: string; service?: string; endpoints: readonly Endpoint[] }>, tenant = 'acme', environment = 'prod'): VirtualHost {
  return {
    host,
    tenant,
    environment,
    routes: routes.map((r) => ({ pathPrefix: r.pathPrefix ?? '/', service: r.service ?? 'web', endpoints: r.endpoints })),
  };
}

export function table(revision: number, hosts: readonly VirtualHost[]): RoutingTable {
  return { revision, generatedAt: new Date().toISOString(), hosts };
}

export interface RawAnswer {
  /** Everything the gateway sent, as latin1. */
  readonly text: string;
  /** The gateway closed the connection (rather than the test giving up waiting). */
  readonly closed: boolean;
  /** The status of the first response, or 0 when none came. */
  readonly status: number;
}

/**
 * Opens a connection, writes `parts` (`gapMs` apart) and collects the answer until the
 * gateway closes the connection, `until` says enough, or `waitMs` passes.
 */
export function rawRequest(
  port: number,
  parts: readonly (string | Buffer)[],
  opts: { gapMs?: number; waitMs?: number; until?: (text: string) => boolean } = {},
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, closed, status: m ? Number(m[1]) : 0 });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.until?.(Buffer.concat(chunks).toString('latin1')) === true) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      let i = 0;
      const next = (): void => {
        if (done || i >= parts.length) return;
        const part = parts[i++];
        if (part !== undefined && !socket.destroyed) socket.write(part);
        if (i < parts.length) setTimeout(next, opts.gapMs ?? 0);
      };
      next();
    });
  });
}

/** A started gateway (fresh state directory) serving `host` from `endpoints`, and its port. */
export async function gatewayServing(host: string, endpoints: readonly Endpoint[], options: Partial<GatewayOptions> = {}): Promise<{ gw: Gateway; port: number }> {
  const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
  await gw.start();
  gw.applyTable(table(1, [vhost(host, [{ endpoints }])]));
  return { gw, port: Number(new URL(gw.url).port) };
}
