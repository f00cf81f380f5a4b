/**
 * Load balancing through a real gateway and real instances: least outstanding requests,
 * sticky sessions, passive outlier detection, active health checks, per-route timeouts,
 * draining on deregistration, WebSocket pass-through and the Prometheus figures.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type http from 'node:http';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { Agent } from 'undici';
import type { Endpoint, Route, VirtualHost } from '@lanes/spec';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { startUpstream, table } from './harness.js';
import type { TestUpstream, UpstreamHandler } from './harness.js';
import { Gateway } from './proxy.js';
import { renderPrometheus } from './stats.js';

const HOST = 'prod.acme.lanes.test';
const agent = new Agent({ keepAliveTimeout: 1_000, connections: 64 });
const gateways: Gateway[] = [];
const upstreams: TestUpstream[] = [];

after(async () => {
  await Promise.all(gateways.map((g) => g.close(100)));
  await Promise.all(upstreams.map((u) => u.close()));
  await agent.close();
});

async function gateway(): Promise<Gateway> {
  const gw = new Gateway({ stateDir: await tempDir('lanes-lb-') });
  gateways.push(gw);
  await gw.start();
  return gw;
}

async function upstream(name: string, handler: UpstreamHandler = (_req, res, self) => res.end(self.name)): Promise<TestUpstream> {
  const u = await startUpstream(name, handler);
  upstreams.push(u);
  return u;
}

function host(route: Partial<Route> & { endpoints: readonly Endpoint[] }): VirtualHost {
  return { host: HOST, tenant: 'acme', environment: 'prod', routes: [{ pathPrefix: '/', service: 'web', ...route }] };
}

async function send(gw: Gateway, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
  const res = await agent.request({ origin: gw.url, path, method: 'GET', headers: { host: HOST, ...headers } });
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
}

describe('load balancing', () => {
  it('least outstanding requests keeps a slow instance from piling up requests', async () => {
    const slow = await upstream('slow', (_req, res) => setTimeout(() => res.end('slow'), 800));
    const fast = await upstream('fast');
    const gw = await gateway();
    gw.applyTable(table(1, [host({ balance: 'least_outstanding', endpoints: [slow.endpoint, fast.endpoint] })]));
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < 12; i++) {
      answers.push(send(gw));
      await sleep(20);
    }
    await Promise.all(answers);
    assert.ok(slow.hits <= 2, `the slow instance took ${slow.hits} of 12 requests`);
    assert.equal(slow.hits + fast.hits, 12);
  });

  it('round robin spreads requests evenly', async () => {
    const a = await upstream('rr-a');
    const b = await upstream('rr-b');
    const gw = await gateway();
    gw.applyTable(table(1, [host({ endpoints: [a.endpoint, b.endpoint] })]));
    for (let i = 0; i < 10; i++) await send(gw);
    assert.deepEqual([a.hits, b.hits], [5, 5]);
  });

  it('sticky sessions keep a client on one instance and move it when that instance is gone', async () => {
    const a = await upstream('st-a');
    const b = await upstream('st-b');
    const c = await upstream('st-c');
    const gw = await gateway();
    const sticky = { cookie: 'srv', ttlMs: 60_000 };
    gw.applyTable(table(1, [host({ sticky, endpoints: [a.endpoint, b.endpoint, c.endpoint] })]));
    const first = await send(gw);
    const setCookie = String(first.headers['set-cookie']);
    assert.match(setCookie, new RegExp(`^srv=${first.text}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60$`));
    const cookie = setCookie.split(';')[0] as string;
    for (let i = 0; i < 8; i++) {
      const r = await send(gw, '/', { cookie: `other=1; ${cookie}` });
      assert.equal(r.text, first.text, 'pinned to the same instance');
      assert.equal(r.headers['set-cookie'], undefined, 'no new cookie while pinned');
    }
    // The pinned instance dies (its process is gone, the table not yet updated): the client moves.
    const pinned = [a, b, c].find((u) => u.name === first.text) as TestUpstream;
    await pinned.close();
    const moved = await send(gw, '/', { cookie });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.text, first.text);
    assert.match(String(moved.headers['set-cookie']), new RegExp(`^srv=${moved.text};`));
    const newCookie = String(moved.headers['set-cookie']).split(';')[0] as string;
    for (let i = 0; i < 4; i++) assert.equal((await send(gw, '/', { cookie: newCookie })).text, moved.text);
  });

  it('ejects an instance answering 5xx, for a period that grows on repeat, and re-admits it', async () => {
    let broken = true;
    const bad = await upstream('bad', (_req, res) => {
      res.statusCode = broken ? 500 : 200;
      res.end('bad');
    });
    const good = await upstream('good');
    const gw = await gateway();
    const outlier = { consecutiveFailures: 3, baseEjectionMs: 400, maxEjectionMs: 5_000, maxEjectedPercent: 50 };
    gw.applyTable(table(1, [host({ outlier, endpoints: [bad.endpoint, good.endpoint] })]));
    for (let i = 0; i < 10; i++) await send(gw);
    assert.equal(bad.hits, 3, 'ejected after three 5xx in a row');
    const ejectedAt = Date.now();
    assert.ok(gw.routing.isEjected(bad.endpoint));
    // Back after the period, fails three more times, and is ejected for twice as long.
    await waitFor('re-admitted', () => !gw.routing.isEjected(bad.endpoint), { timeoutMs: 5_000 });
    assert.ok(Date.now() - ejectedAt >= 350);
    for (let i = 0; i < 10; i++) await send(gw);
    assert.equal(bad.hits, 6);
    const second = Date.now();
    await waitFor('re-admitted again', () => !gw.routing.isEjected(bad.endpoint), { timeoutMs: 5_000 });
    assert.ok(Date.now() - second >= 700, `second ejection lasted ${Date.now() - second} ms`);
    broken = false;
    for (let i = 0; i < 6; i++) assert.equal((await send(gw)).status, 200);
    assert.ok(bad.hits > 6, 'serves again once healthy');
    const text = renderPrometheus(gw.routing.stats.snapshot(), { connections: 0, workers: 1, tableRevision: 1 });
    assert.match(text, /lanes_gateway_ejections_total\{tenant="acme",environment="prod",service="web"\} 2/);
    assert.match(text, /lanes_gateway_requests_total\{tenant="acme",environment="prod",service="web",code="5xx"\} 6/);
  });

  it('never ejects every instance: with all answering 5xx, at most the allowed share is out', async () => {
    const a = await upstream('all-a', (_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const b = await upstream('all-b', (_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const gw = await gateway();
    gw.applyTable(table(1, [host({ outlier: { consecutiveFailures: 1, baseEjectionMs: 10_000, maxEjectionMs: 10_000, maxEjectedPercent: 100 }, endpoints: [a.endpoint, b.endpoint] })]));
    for (let i = 0; i < 6; i++) assert.equal((await send(gw)).status, 503);
    assert.equal([gw.routing.isEjected(a.endpoint), gw.routing.isEjected(b.endpoint)].filter(Boolean).length, 1);
  });

  it('active health checks take an instance out of rotation and bring it back', async () => {
    let healthy = true;
    const handler: UpstreamHandler = (req, res, self) => {
      if (req.url === '/healthz') {
        res.statusCode = self.name === 'hc-b' && !healthy ? 503 : 200;
        res.end();
        return;
      }
      res.end(self.name);
    };
    const a = await upstream('hc-a', handler);
    const b = await upstream('hc-b', handler);
    const gw = await gateway();
    const health = { path: '/healthz', intervalMs: 100, timeoutMs: 80, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 299] as const };
    gw.applyTable(table(1, [host({ health, endpoints: [a.endpoint, b.endpoint] })]));
    healthy = false;
    await waitFor('b checked down', () => gw.routing.isCheckedDown(`127.0.0.1:${b.port}`), { timeoutMs: 5_000 });
    for (let i = 0; i < 6; i++) assert.equal((await send(gw)).text, 'hc-a');
    healthy = true;
    await waitFor('b back', () => !gw.routing.isCheckedDown(`127.0.0.1:${b.port}`), { timeoutMs: 5_000 });
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await send(gw)).text);
    assert.deepEqual([...seen].sort(), ['hc-a', 'hc-b']);
  });

  it('applies a route timeout of its own', async () => {
    const slow = await upstream('to', (_req, res) => {
      const t = setTimeout(() => res.end('late'), 3_000);
      res.on('close', () => clearTimeout(t));
    });
    const gw = await gateway();
    gw.applyTable(table(1, [host({ timeoutMs: 200, endpoints: [slow.endpoint] })]));
    const r = await send(gw);
    assert.equal(r.status, 504);
    assert.equal(r.text, 'service "web" in acme/prod did not answer within 200 ms\n');
  });

  it('lets an in-flight request finish when its instance leaves the table (draining)', async () => {
    const old = await upstream('old', (_req, res) => setTimeout(() => res.end('old done'), 1_000));
    const next = await upstream('next');
    const gw = await gateway();
    gw.applyTable(table(1, [host({ endpoints: [old.endpoint] })]));
    const inFlight = send(gw);
    await waitFor('request at the old instance', () => old.hits === 1);
    gw.applyTable(table(2, [host({ endpoints: [next.endpoint] })]));
    assert.equal((await send(gw)).text, 'next', 'new requests go to the new instance');
    const r = await inFlight;
    assert.deepEqual([r.status, r.text], [200, 'old done']);
  });
});

describe('WebSocket pass-through', () => {
  /** A minimal WebSocket echo server: the handshake, then each small masked text frame back unmasked. */
  async function wsUpstream(name: string): Promise<TestUpstream> {
    const u = await upstream(name);
    u.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      u.hits++;
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Upstream: ${name}\r\n\r\n`);
      // http.Server sockets allow half-open connections: end ours when the gateway ends its side.
      socket.on('end', () => socket.end());
      socket.on('error', () => undefined);
      socket.on('data', (frame: Buffer) => {
        const len = (frame[1] as number) & 0x7f;
        const mask = frame.subarray(2, 6);
        const payload = Buffer.from(frame.subarray(6, 6 + len).map((b, i) => b ^ (mask[i % 4] as number)));
        socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
      });
    });
    return u;
  }

  function frame(text: string): Buffer {
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.from(text).map((b, i) => b ^ (mask[i % 4] as number));
    return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload]);
  }

  it('echoes frames through the gateway after a 101 handshake', async () => {
    const ws = await wsUpstream('ws1');
    const gw = await gateway();
    gw.applyTable(table(1, [host({ endpoints: [ws.endpoint] })]));
    const port = Number(new URL(gw.url).port);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`GET /chat HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    await waitFor('101', () => received.includes('\r\n\r\n'));
    const head = received.toString('latin1');
    assert.match(head, /^HTTP\/1.1 101 Switching Protocols\r\n/);
    assert.match(head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
    received = Buffer.alloc(0);
    socket.write(frame('hello through the edge'));
    await waitFor('echo', () => received.length >= 2 + 'hello through the edge'.length);
    assert.equal(received.subarray(2).toString(), 'hello through the edge');
    socket.destroy();
  });

  it('refuses an upgrade with two Host headers or a body', async () => {
    const ws = await wsUpstream('ws2');
    const gw = await gateway();
    gw.applyTable(table(1, [host({ endpoints: [ws.endpoint] })]));
    const port = Number(new URL(gw.url).port);
    for (const extra of [`Host: ${HOST}\r\n`, 'Content-Length: 5\r\n']) {
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n${extra}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n${extra.startsWith('Content') ? 'hello' : ''}`);
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      await once(socket, 'close');
      assert.match(text, /^HTTP\/1.1 400 /, extra);
    }
    assert.equal(ws.hits, 0);
  });

  it('answers 404 for an upgrade to an unknown host', async () => {
    const gw = await gateway();
    gw.applyTable(table(1, []));
    const port = Number(new URL(gw.url).port);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET / HTTP/1.1\r\nHost: nobody.lanes.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    await once(socket, 'close');
    assert.match(text, /^HTTP\/1.1 404 Not Found\r\n/);
  });
});
