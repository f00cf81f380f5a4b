/**
 * Test support for this package's tests only (not exported): real upstream HTTP servers
 * on 127.0.0.1 and routing-table builders.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { Endpoint, RoutingTable, VirtualHost } from '@lanes/spec';

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
