import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'undici';
import type { Endpoint } from '@lanes/spec';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { echo, startUpstream, table, vhost } from './harness.js';
import type { TestUpstream, UpstreamHandler } from './harness.js';
import { ACCESS_LOG_FILE } from './persist.js';
import { Gateway } from './proxy.js';
import type { GatewayOptions } from './proxy.js';

const HOST = 'prod.acme.lanes.test';
const agent = new Agent({ keepAliveTimeout: 1_000 });
const gateways: Gateway[] = [];
const upstreams: TestUpstream[] = [];
const rawServers: net.Server[] = [];
/** One client connection at a time, kept alive (see nodeSend). */
const nodeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

async function gateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
  gateways.push(gw);
  await gw.start();
  return gw;
}

async function upstream(name: string, handler: UpstreamHandler = echo): Promise<TestUpstream> {
  const u = await startUpstream(name, handler);
  upstreams.push(u);
  return u;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(gw: Gateway, pathAndQuery: string, init: { host?: string; method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  const url = new URL(gw.url);
  const res = await agent.request({
    origin: url.origin,
    path: pathAndQuery,
    method: init.method ?? 'GET',
    headers: { host: init.host ?? HOST, ...init.headers },
    body: init.body ?? null,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function gatewayFor(endpoint: Endpoint, options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
  gateways.push(gw);
  await gw.start();
  gw.applyTable(table(1, [vhost(HOST, [{ endpoints: [endpoint] }])]));
  return gw;
}

/** An instance speaking raw bytes: `answer` gets each request's head and writes what it likes. */
async function rawUpstream(answer: (socket: net.Socket, head: string) => void): Promise<{ endpoint: Endpoint; connections: () => number }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end !== -1) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        answer(socket, head);
        end = buf.indexOf('\r\n\r\n');
      }
    });
    socket.on('error', () => undefined);
  });
  rawServers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return { endpoint: { instance: 'raw', zone: 'a', address: '127.0.0.1', port: addr.port }, connections: () => count };
}

interface NodeAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** node:http's client, one kept-alive connection: requests also reuse the client side. */
function nodeSend(gw: Gateway, init: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer[]; slowReader?: boolean } = {}): Promise<NodeAnswer> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: init.method ?? 'GET', path: init.path ?? '/', headers: { host: HOST, ...init.headers }, agent: nodeAgent });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (init.slowReader === true) {
          res.pause();
          setTimeout(() => res.resume(), 2);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const parts = init.body ?? [];
    void (async () => {
      for (const p of parts) {
        req.write(p);
        await sleep(5);
      }
      req.end();
    })();
  });
}

after(async () => {
  nodeAgent.destroy();
  await Promise.all(gateways.map((g) => g.close(200)));
  await Promise.all(upstreams.map((u) => u.close()));
  for (const s of rawServers) s.close();
  await agent.close();
});

describe('proxy', () => {
  let gw: Gateway;
  before(async () => {
    gw = await gateway();
  });

  it('spreads requests round robin over both instances', async () => {
    const [a, b] = [await upstream('w1'), await upstream('w2')];
    gw.applyTable(table(1, [vhost(HOST, [{ endpoints: [a.endpoint, b.endpoint] }])]));
    const names: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await send(gw, '/');
      assert.equal(r.status, 200, r.text);
      names.push(String(r.headers['x-upstream']));
    }
    assert.deepEqual(names, ['w1', 'w2', 'w1', 'w2', 'w1', 'w2', 'w1', 'w2', 'w1', 'w2']);
    assert.deepEqual([a.hits, b.hits], [5, 5]);
  });

  it('forwards X-Forwarded-* and X-Request-Id upstream and returns the request id', async () => {
    const a = await upstream('h1');
    gw.applyTable(table(2, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    const r = await send(gw, '/path?q=1', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'abc-123.X_y', 'x-forwarded-proto': 'https' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/path?q=1');
    // The client's own X-Forwarded-For is replaced, not appended to (forwarded.test.ts).
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], HOST);
    assert.equal(seen.headers['host'], HOST);
    assert.equal(seen.headers['x-request-id'], 'abc-123.X_y');
    assert.equal(r.headers['x-request-id'], 'abc-123.X_y');

    const bad = await send(gw, '/', { headers: { 'x-request-id': 'no spaces; allowed' } });
    const id = String(bad.headers['x-request-id']);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal((JSON.parse(bad.text) as { headers: Record<string, string> }).headers['x-request-id'], id);
  });

  it('removes hop-by-hop headers, including those the Connection header names', async () => {
    const a = await upstream('hop');
    gw.applyTable(table(3, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    const url = new URL(gw.url);
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: '/',
        headers: { host: HOST, connection: 'keep-alive, x-secret', 'x-secret': '1', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic eA==', te: 'trailers', 'x-kept': 'yes' },
        agent: false,
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    const seen = JSON.parse(text) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-kept'], 'yes');
    for (const h of ['x-secret', 'keep-alive', 'proxy-authorization', 'te']) assert.equal(seen.headers[h], undefined, `${h} reached the instance`);
  });

  it('answers 404 with a one-line message for an unknown host, and for a path no route serves', async () => {
    const a = await upstream('r1');
    gw.applyTable(table(4, [vhost(HOST, [{ pathPrefix: '/api/', endpoints: [a.endpoint] }])]));
    const r = await send(gw, '/', { host: 'nope.acme.lanes.test:8080' });
    assert.equal(r.status, 404);
    assert.equal(r.text, 'no environment is served at host "nope.acme.lanes.test"\n');
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    assert.ok(r.headers['x-request-id']);
    const p = await send(gw, '/other');
    assert.equal(p.status, 404);
    assert.equal(p.text, 'no route of acme/prod serves path "/other"\n');
    assert.equal((await send(gw, '/api')).status, 200);
  });

  it('answers 503 naming the service when its route has no endpoints', async () => {
    gw.applyTable(table(5, [vhost(HOST, [{ service: 'web', endpoints: [] }])]));
    const r = await send(gw, '/');
    assert.equal(r.status, 503);
    assert.equal(r.text, 'no healthy instance of service "web" in acme/prod\n');
  });

  it('ejects an instance that refuses connections and retries GETs elsewhere: 200 requests, 0 failures', async () => {
    const [down, up] = [await upstream('down'), await upstream('up')];
    await down.close();
    gw.applyTable(table(6, [vhost(HOST, [{ endpoints: [down.endpoint, up.endpoint] }])]));
    const statuses = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const r = await send(gw, `/n/${i}`);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    assert.deepEqual([...statuses], [[200, 200]]);
    assert.equal(up.hits, 200);
    assert.equal(gw.routing.isEjected(down.endpoint), true);
  });

  it('retries a GET on another instance when the first resets the connection before answering', async () => {
    const reset = await upstream('reset', (req) => req.socket.destroy());
    const good = await upstream('good');
    gw.applyTable(table(60, [vhost('reset.acme.lanes.test', [{ endpoints: [reset.endpoint, good.endpoint] }])]));
    const r = await send(gw, '/', { host: 'reset.acme.lanes.test' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-upstream'], 'good');
    assert.equal(reset.hits, 1);
    assert.equal(gw.routing.isEjected(reset.endpoint), true);
  });

  it('does not retry a POST with a body: 502', async () => {
    const [down, up] = [await upstream('pdown'), await upstream('pup')];
    await down.close();
    // A fresh table starts each route at its first endpoint: the one that is down.
    gw.applyTable(table(7, [vhost('post.acme.lanes.test', [{ endpoints: [down.endpoint, up.endpoint] }])]));
    const r = await send(gw, '/submit', { host: 'post.acme.lanes.test', method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 502);
    assert.equal(r.text, 'service "web" in acme/prod failed to answer (ECONNREFUSED)\n');
    assert.equal(up.hits, 0);
    // The next POST goes to the live instance (the dead one is ejected).
    const ok = await send(gw, '/submit', { host: 'post.acme.lanes.test', method: 'POST', body: 'payload' });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.text) as { bodyBytes: number }).bodyBytes, 7);
  });

  it('streams large request and response bodies both ways', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'x');
    const a = await upstream('stream', (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-received': String(bytes) });
        res.end(big);
      });
    });
    gw.applyTable(table(8, [vhost('big.acme.lanes.test', [{ endpoints: [a.endpoint] }])]));
    const r = await send(gw, '/', { host: 'big.acme.lanes.test', method: 'PUT', body: big });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-received'], String(big.length));
    assert.equal(r.text.length, big.length);
  });

  it('runs guards before routing and answers their rejection', async () => {
    const g = await gateway({ guards: [(req) => (req.url?.startsWith('/admin') === true ? { status: 403, message: 'path /admin is not allowed from here' } : null)] });
    const a = await upstream('g1');
    g.applyTable(table(1, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    const r = await send(g, '/admin/x');
    assert.equal(r.status, 403);
    assert.equal(r.text, 'path /admin is not allowed from here\n');
    assert.equal(a.hits, 0);
    assert.equal((await send(g, '/')).status, 200);
  });

  it('aborts the upstream request when the client goes away, and keeps serving', async () => {
    let upstreamClosed = false;
    const a = await upstream('hang', (req, res, self) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      if (self.hits > 1) return void res.end('done');
      res.write('first chunk');
      req.socket.on('close', () => (upstreamClosed = true));
    });
    gw.applyTable(table(10, [vhost('gone.acme.lanes.test', [{ endpoints: [a.endpoint] }])]));
    const url = new URL(gw.url);
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: '/', headers: { host: 'gone.acme.lanes.test' }, agent: false });
      req.on('response', (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      setTimeout(() => reject(new Error('no response')), 5_000).unref();
      req.end();
    });
    await waitFor('the upstream connection to close', () => upstreamClosed, { timeoutMs: 5_000, intervalMs: 20 });
    assert.equal(gw.inFlight, 0);
    assert.equal((await send(gw, '/', { host: 'gone.acme.lanes.test' })).status, 200);
  });

  it('answers 500 and keeps running when a guard throws', async () => {
    const g = await gateway({
      guards: [
        () => {
          throw new Error('guard bug');
        },
      ],
    });
    const r = await send(g, '/');
    assert.equal(r.status, 500);
    assert.equal(r.text, 'internal gateway error\n');
  });

  it('keeps serving the last good table when an invalid one arrives', async () => {
    const a = await upstream('k1');
    gw.applyTable(table(9, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    assert.throws(() => gw.applyTable({ revision: 10, generatedAt: 'now', hosts: [] }), /table\.generatedAt/);
    assert.equal(gw.routing.revision, 9);
    assert.equal((await send(gw, '/')).status, 200);
  });
});

describe('proxy timeouts', () => {
  it('answers 504 when an instance does not answer in time', async () => {
    const gw = await gateway({ limits: { upstreamHeadersTimeoutMs: 300 } });
    const slow = await upstream('slow', (_req, res) => {
      const t = setTimeout(() => res.end('late'), 2_000);
      res.on('close', () => clearTimeout(t));
    });
    gw.applyTable(table(1, [vhost(HOST, [{ endpoints: [slow.endpoint] }])]));
    const started = Date.now();
    const r = await send(gw, '/');
    assert.equal(r.status, 504);
    assert.equal(r.text, 'service "web" in acme/prod did not answer within 300 ms\n');
    assert.ok(Date.now() - started < 1_500, `took ${Date.now() - started} ms`);
  });
});

describe('persisted table and access log', () => {
  it('a fresh gateway serves the persisted table without any control plane', async () => {
    const stateDir = await tempDir('lanes-gw-');
    const a = await upstream('p1');
    const first = new Gateway({ stateDir });
    await first.start();
    first.applyTable(table(42, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    await first.persisted();
    await first.close(100);

    const second = await gateway({ stateDir });
    assert.equal(second.routing.revision, 42);
    const r = await send(second, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'p1');
  });

  it('writes one JSON line per request with the request id, status, instance and bytes', async () => {
    const stateDir = await tempDir('lanes-gw-');
    const a = await upstream('log1');
    const gw = new Gateway({ stateDir });
    await gw.start();
    gw.applyTable(table(1, [vhost(HOST, [{ endpoints: [a.endpoint] }])]));
    const r = await send(gw, '/hello?secret=1', { headers: { 'x-request-id': 'req-1', authorization: 'Bearer t0p' } });
    await send(gw, '/', { host: 'nope.test' });
    await gw.close(100);
    const text = await readFile(path.join(stateDir, ACCESS_LOG_FILE), 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    const [ok, missing] = lines;
    assert.ok(ok && missing);
    assert.equal(ok['requestId'], 'req-1');
    assert.equal(ok['method'], 'GET');
    assert.equal(ok['path'], '/hello');
    assert.equal(ok['host'], HOST);
    assert.equal(ok['status'], 200);
    assert.equal(ok['upstream'], 'log1');
    assert.equal(ok['client'], '127.0.0.1');
    assert.equal(ok['bytes'], Buffer.byteLength(r.text));
    assert.equal(typeof ok['durationMs'], 'number');
    assert.equal(typeof ok['time'], 'string');
    assert.equal(missing['status'], 404);
    assert.equal(missing['upstream'], null);
    assert.equal(text.includes('t0p'), false);
    assert.equal(text.includes('secret'), false);
  });
});

describe('proxy: upstream exchanges', () => {
  it('streams a chunked response made of delayed writes, and a chunked request body', async () => {
    const u = await upstream('chunky', (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-received': String(bytes), 'x-te': String(req.headers['transfer-encoding']) });
        let i = 0;
        const tick = (): void => {
          if (i === 5) return void res.end('end');
          res.write(`part${i++};`);
          setTimeout(tick, 5);
        };
        tick();
      });
    });
    const gw = await gatewayFor(u.endpoint);
    const r = await nodeSend(gw, { method: 'POST', body: [Buffer.from('abc'), Buffer.alloc(70_000, 'y'), Buffer.from('z')] });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'part0;part1;part2;part3;part4;end');
    assert.equal(r.headers['x-received'], String(3 + 70_000 + 1));
    assert.equal(r.headers['x-te'], 'chunked');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
  });

  it('answers HEAD, 204 and 304 without a body and keeps using the same upstream connection', async () => {
    const u = await upstream('nobody', (req, res) => {
      if (req.url === '/204') return void res.writeHead(204).end();
      if (req.url === '/304') return void res.writeHead(304, { etag: '"x"' }).end();
      const body = 'x'.repeat(1000);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    let connections = 0;
    u.server.on('connection', () => connections++);
    const gw = await gatewayFor(u.endpoint);
    const noContent = await nodeSend(gw, { path: '/204' });
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body.length, 0);
    const notModified = await nodeSend(gw, { path: '/304' });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers['etag'], '"x"');
    const get = await nodeSend(gw);
    assert.equal(get.body.length, 1000);
    assert.equal(connections, 1);
    // undici closes the connection after a HEAD, in case the instance sends a body anyway.
    const head = await nodeSend(gw, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '1000');
    assert.equal(head.body.length, 0);
    assert.equal((await nodeSend(gw)).body.length, 1000);
    assert.equal(gw.routing.isEjected(u.endpoint), false);
  });

  it('does not eject an instance that closes idle keep-alive connections', async () => {
    const u = await upstream('closer');
    u.server.keepAliveTimeout = 30;
    const gw = await gatewayFor(u.endpoint);
    for (let i = 0; i < 4; i++) {
      assert.equal((await nodeSend(gw)).status, 200);
      await sleep(80);
    }
    assert.equal(gw.routing.isEjected(u.endpoint), false);
  });

  it('follows Connection: close, close-delimited bodies, split heads and 1xx answers', async () => {
    const raw = await rawUpstream((socket, head) => {
      const path = head.split(' ')[1];
      if (path === '/close') {
        socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose');
      } else if (path === '/eof') {
        socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
      } else {
        // A 103 first, then the head a byte at a time, then a chunked body with an extension and a trailer.
        const text = 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nX-Up: 1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n';
        void (async () => {
          for (const ch of text) {
            socket.write(ch);
            await sleep(0);
          }
        })();
      }
    });
    const gw = await gatewayFor(raw.endpoint);
    const a = await nodeSend(gw, { path: '/close' });
    assert.deepEqual([a.status, a.body.toString()], [200, 'close']);
    const b = await nodeSend(gw, { path: '/eof' });
    assert.deepEqual([b.status, b.body.toString()], [200, 'until the end']);
    const c = await nodeSend(gw, { path: '/split' });
    assert.deepEqual([c.status, c.body.toString(), c.headers['x-up']], [201, 'abc', '1']);
    const d = await nodeSend(gw, { path: '/split' });
    assert.deepEqual([d.status, d.body.toString()], [201, 'abc']);
    assert.equal(raw.connections(), 3);
    assert.equal(gw.routing.isEjected(raw.endpoint), false);
  });

  it('answers 502 for a response that is not HTTP, and for one cut short', async () => {
    const raw = await rawUpstream((socket, head) => {
      if (head.startsWith('GET /garbage')) socket.end('SMTP ready\r\n\r\n');
      else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this');
    });
    const gw = await gatewayFor(raw.endpoint);
    const bad = await nodeSend(gw, { path: '/garbage' });
    assert.equal(bad.status, 502);
    assert.match(bad.body.toString(), /^service "web" in acme\/prod failed to answer \((HTTPParserError|HPE_[A-Z_]+)\)\n$/);
    // Headers went out already: the client connection is cut, never a truncated 200 that looks whole.
    await assert.rejects(nodeSend(gw, { path: '/short' }));
  });

  it('passes a large response to a slow reader intact (backpressure)', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const u = await upstream('big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(big);
    });
    const gw = await gatewayFor(u.endpoint);
    const r = await nodeSend(gw, { slowReader: true });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, big.length);
    assert.ok(r.body.equals(big));
  });

  it('queues requests beyond the connection limit instead of failing them', async () => {
    const u = await upstream('queue', (_req, res) => setTimeout(() => res.end('ok'), 20));
    const gw = await gatewayFor(u.endpoint, { limits: { upstreamConnections: 2 } });
    const url = new URL(gw.url);
    const one = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: url.hostname, port: url.port, path: '/', headers: { host: HOST }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    let connections = 0;
    u.server.on('connection', () => connections++);
    const statuses = await Promise.all(Array.from({ length: 10 }, one));
    assert.deepEqual(statuses, Array.from({ length: 10 }, () => 200));
    assert.equal(connections, 2);
  });
});
