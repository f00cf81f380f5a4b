/**
 * Access control per environment (access.ts): the CIDR matcher, token buckets and the
 * bounded per-client limiter as units; then through a real gateway: allow/deny lists, rate
 * limits with Retry-After, body limits (Content-Length and chunked) and connections per
 * client, each answered as the user would see it.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'undici';
import { parseEdgeSettings } from '@lanes/spec';
import type { VirtualHost } from '@lanes/spec';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { CidrMatcher, ClientRateLimiter, clientKey, ipv4ToNumber, TokenBucket } from './access.js';
import { startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { Gateway } from './proxy.js';
import type { GatewayOptions } from './proxy.js';

describe('access: CIDR matching', () => {
  it('reads IPv4 addresses without allocating, refusing anything else', () => {
    assert.equal(ipv4ToNumber('0.0.0.0'), 0);
    assert.equal(ipv4ToNumber('255.255.255.255'), 2 ** 32 - 1);
    assert.equal(ipv4ToNumber('10.1.2.3'), 10 * 2 ** 24 + 1 * 2 ** 16 + 2 * 256 + 3);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.4 ', '::1', '1.2.3.1000']) assert.equal(ipv4ToNumber(bad), -1, bad);
  });

  it('matches IPv4 blocks, merged and searched by bisection', () => {
    const m = new CidrMatcher(['10.0.0.0/8', '192.0.2.7/32', '10.1.0.0/16', '198.51.100.0/25', '198.51.100.128/25']);
    for (const yes of ['10.0.0.0', '10.255.255.255', '10.1.2.3', '192.0.2.7', '198.51.100.0', '198.51.100.255', '::ffff:10.9.9.9']) assert.ok(m.has(yes), yes);
    for (const no of ['11.0.0.0', '9.255.255.255', '192.0.2.6', '192.0.2.8', '198.51.101.0', '::1', 'junk', '']) assert.ok(!m.has(no), no);
    assert.ok(new CidrMatcher(['0.0.0.0/0']).has('203.0.113.1'));
    assert.ok(!new CidrMatcher([]).has('203.0.113.1'));
  });

  it('matches IPv6 blocks, and IPv4-mapped blocks as IPv4', () => {
    const m = new CidrMatcher(['2001:db8::/32', '::1/128', '::ffff:172.16.0.0/108']);
    for (const yes of ['2001:db8::1', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '::1', '172.16.5.5', '::ffff:172.31.255.255']) assert.ok(m.has(yes), yes);
    for (const no of ['2001:db9::', '::2', '172.32.0.0', '127.0.0.1']) assert.ok(!m.has(no), no);
    assert.ok(new CidrMatcher(['::/0']).has('fe80::1'));
  });

  it('keys IPv4 clients by address and IPv6 clients by their /64', () => {
    assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:bbbb::9'), clientKey('2001:db8:1:2:aaaa::1'));
  });
});

describe('access: rate limiting', () => {
  it('grants the burst, then answers the whole seconds until the next token', () => {
    let now = 0;
    const b = new TokenBucket({ rps: 2, burst: 3 }, now);
    assert.deepEqual([b.take(now), b.take(now), b.take(now)], [0, 0, 0]);
    assert.equal(b.take(now), 1, 'half a second away rounds up to 1 s');
    now += 500;
    assert.equal(b.take(now), 0);
    const slow = new TokenBucket({ rps: 1 / 60, burst: 1 }, 0);
    assert.equal(slow.take(0), 0);
    assert.equal(slow.take(0), 60);
    assert.equal(slow.take(30_000), 30);
    assert.ok(!slow.full(30_000));
    assert.ok(slow.full(60_000));
  });

  it('keeps one bucket per client', () => {
    const l = new ClientRateLimiter({ rps: 1, burst: 1 });
    assert.equal(l.take('a', 0), 0);
    assert.equal(l.take('a', 0), 1);
    assert.equal(l.take('b', 0), 0, 'another client has its own bucket');
  });

  it('stays bounded under a flood of client addresses', () => {
    const l = new ClientRateLimiter({ rps: 1, burst: 2 }, 1_000);
    let now = 0;
    // 100 000 one-off addresses, one millisecond apart.
    for (let i = 0; i < 100_000; i++) {
      now += 1;
      l.take(`flood-${i}`, now);
      assert.ok(l.size <= 1_000, `size ${l.size} after ${i + 1} addresses`);
    }
  });

  it('keeps limiting a client that goes on hammering while many others come and go', () => {
    const l = new ClientRateLimiter({ rps: 1, burst: 2 }, 200);
    let now = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      now += 10;
      l.take(`passer-by-${i}`, now);
      if (l.take('abuser', now) > 0) refused++;
    }
    // 200 s at 100 requests a second with a rate of 1/s: all but about 200 refused.
    assert.ok(refused > 19_000, `abuser refused ${refused} of 20000 times`);
    assert.ok(l.size <= 200);
  });
});

// ---------------------------------------------------------------------------------------
// Through a gateway

const HOST = 'prod.acme.lanes.test';
const OTHER = 'test.acme.lanes.test';
const agent = new Agent({ keepAliveTimeout: 1_000, connections: 4 });

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(gw: Gateway, init: { host?: string; method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer | Readable } = {}): Promise<Answer> {
  const res = await agent.request({
    origin: gw.url,
    path: init.path ?? '/',
    method: init.method ?? 'GET',
    headers: { host: init.host ?? HOST, ...init.headers },
    body: init.body ?? null,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('access control through the gateway', () => {
  let up: TestUpstream;
  const gateways: Gateway[] = [];
  let revision = 1;

  async function gatewayWith(edge: unknown, options: Partial<GatewayOptions> = {}, otherEdge?: unknown): Promise<Gateway> {
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
    gateways.push(gw);
    await gw.start();
    apply(gw, edge, otherEdge);
    return gw;
  }

  function apply(gw: Gateway, edge: unknown, otherEdge?: unknown): void {
    const hosts: VirtualHost[] = [{ ...vhost(HOST, [{ endpoints: [up.endpoint] }]), edge: parseEdgeSettings(edge) }];
    if (otherEdge !== undefined) hosts.push({ ...vhost(OTHER, [{ endpoints: [up.endpoint] }], 'acme', 'test'), edge: parseEdgeSettings(otherEdge) });
    gw.applyTable(table(revision++, hosts));
  }

  before(async () => {
    up = await startUpstream('web');
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close(100)));
    await up?.close();
  });

  it('refuses a denied client with 403 and a one-line reason, before the instance sees it', async () => {
    const gw = await gatewayWith({ deny: ['198.51.100.0/24', '127.0.0.1/32'] });
    const hits = up.hits;
    const r = await send(gw);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.text, 'client 127.0.0.1 is denied access to acme/prod\n');
    assert.equal(up.hits, hits);
  });

  it('serves only clients on the allow-list; deny wins over allow', async () => {
    const gw = await gatewayWith({ allow: ['203.0.113.0/24'] }, {}, { allow: ['127.0.0.0/8'] });
    const refused = await send(gw);
    assert.equal(refused.status, 403);
    assert.match(refused.text, /not on the allow-list of acme\/prod/);
    const served = await send(gw, { host: OTHER });
    assert.equal(served.status, 200, served.text);
    apply(gw, { allow: ['127.0.0.0/8'], deny: ['127.0.0.1'] });
    assert.equal((await send(gw)).status, 403);
    apply(gw, {});
    assert.equal((await send(gw)).status, 200, 'a cleared list lets everyone in again');
  });

  it('answers 429 with Retry-After in whole seconds once a client used its burst', async () => {
    const gw = await gatewayWith({ clientRate: '1/m,2' });
    assert.equal((await send(gw)).status, 200);
    assert.equal((await send(gw)).status, 200);
    const r = await send(gw);
    assert.equal(r.status, 429, r.text);
    const retry = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${String(r.headers['retry-after'])}`);
    assert.match(r.text, /^too many requests from 127\.0\.0\.1 to acme\/prod \(limit 1\/m \(burst 2\) per client\); retry in \d+ s\n$/);
    // A new table with the same rate keeps the bucket: no fresh burst.
    apply(gw, { clientRate: '1/m,2', deny: ['192.0.2.0/24'] });
    assert.equal((await send(gw)).status, 429);
  });

  it('limits the whole environment, whoever the client', async () => {
    const gw = await gatewayWith({ environmentRate: '1/m,3' }, {}, {});
    for (let i = 0; i < 3; i++) assert.equal((await send(gw)).status, 200);
    const r = await send(gw);
    assert.equal(r.status, 429);
    assert.match(r.text, /too many requests to acme\/prod \(limit 1\/m \(burst 3\)\)/);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal((await send(gw, { host: OTHER })).status, 200, 'another environment has its own limit');
  });

  it('refuses a Content-Length over the limit with 413 at once, and serves one within it', async () => {
    const gw = await gatewayWith({ maxBodyBytes: '1kb' });
    const hits = up.hits;
    const r = await send(gw, { method: 'POST', body: Buffer.alloc(2048, 1) });
    assert.equal(r.status, 413, r.text);
    assert.equal(r.text, 'request body of 2048 bytes is over the limit of 1kb for acme/prod\n');
    assert.equal(r.headers['connection'], 'close');
    assert.equal(up.hits, hits, 'the instance never saw it');
    const ok = await send(gw, { method: 'POST', body: Buffer.alloc(1024, 1) });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /"bodyBytes":1024/);
  });

  it('counts a chunked body while it streams and cuts it at the limit with 413', async () => {
    const gw = await gatewayWith({ maxBodyBytes: '64kb' });
    async function* chunks(total: number): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < total; sent += 8192) yield Buffer.alloc(8192, 2);
    }
    const ok = await send(gw, { method: 'POST', body: Readable.from(chunks(32 * 1024)) });
    assert.equal(ok.status, 200, ok.text);
    assert.match(ok.text, /"bodyBytes":32768/);
    const port = Number(new URL(gw.url).port);
    // Raw socket: the client sends 1 MiB in chunks and reads what comes back.
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      const giveUp = setTimeout(() => s.destroy(), 15_000);
      s.on('close', () => {
        clearTimeout(giveUp);
        resolve(text);
      });
      s.on('error', () => undefined);
      s.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `2000\r\n${'z'.repeat(8192)}\r\n`;
      let n = 0;
      const pump = (): void => {
        while (n < 128 && !s.destroyed) {
          n++;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        if (!s.destroyed) s.end('0\r\n\r\n');
      };
      pump();
    });
    assert.match(answer, /^HTTP\/1\.1 413 /, JSON.stringify(answer.slice(0, 200)));
    assert.match(answer, /request body is over the limit of 64kb for acme\/prod/);
  });

  it('applies the gateway-wide body limit to environments without their own', async () => {
    const gw = await gatewayWith({}, { limits: { maxBodyBytes: 100 } });
    const r = await send(gw, { method: 'POST', body: Buffer.alloc(101) });
    assert.equal(r.status, 413);
    assert.match(r.text, /over the limit of 100b for acme\/prod/);
    assert.equal((await send(gw, { method: 'POST', body: Buffer.alloc(100) })).status, 200);
  });

  it('closes connections past the per-client limit as soon as they are accepted', async () => {
    const gw = await gatewayWith({}, { limits: { maxConnectionsPerClient: 3 } });
    const port = Number(new URL(gw.url).port);
    const sockets = Array.from({ length: 5 }, () => net.connect(port, '127.0.0.1').on('error', () => undefined));
    const closed = new Set<number>();
    sockets.forEach((s, i) => s.on('close', () => closed.add(i)));
    await waitFor('two connections closed by the gateway', () => closed.size >= 2, { timeoutMs: 10_000 });
    await sleep(200);
    assert.equal(closed.size, 2, `closed: ${[...closed].join(', ')}`);
    assert.equal(gw.edge.connectionsOf('127.0.0.1'), 3);
    for (const s of sockets) s.destroy();
    await waitFor('connections released', () => gw.edge.connectionsOf('127.0.0.1') === 0, { timeoutMs: 10_000 });
    assert.ok(gw.edge.refusedConnections >= 2);
  });

  it('applies an environment connection limit when its connections first send it a request', async () => {
    const gw = await gatewayWith({ maxConnectionsPerClient: 2 });
    const port = Number(new URL(gw.url).port);
    const open = async (): Promise<{ socket: net.Socket; ask: () => Promise<string> }> => {
      const socket = net.connect(port, '127.0.0.1').on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      return {
        socket,
        ask: () =>
          new Promise<string>((resolve) => {
            let text = '';
            const onData = (d: Buffer): void => {
              text += d.toString('latin1');
              if (/\r\n\r\n[^]*\n$/.test(text)) done();
            };
            const done = (): void => {
              socket.off('data', onData);
              resolve(text);
            };
            socket.on('data', onData);
            socket.once('close', done);
            socket.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
          }),
      };
    };
    const a = await open();
    const b = await open();
    const c = await open();
    assert.match(await a.ask(), /^HTTP\/1\.1 200/);
    assert.match(await b.ask(), /^HTTP\/1\.1 200/);
    const third = await c.ask();
    assert.match(third, /^HTTP\/1\.1 429/, third.slice(0, 100));
    assert.match(third, /more than 2 connections open to acme\/prod/);
    assert.match(await a.ask(), /^HTTP\/1\.1 200/, 'a counted connection goes on being served');
    a.socket.destroy();
    await sleep(200);
    const d = await open();
    assert.match(await d.ask(), /^HTTP\/1\.1 200/, 'a slot freed by a closed connection is reused');
    for (const x of [b, c, d]) x.socket.destroy();
  });

  it('lets an environment raise the per-client limit above the gateway default, for itself only', async () => {
    const gw = await gatewayWith({ maxConnectionsPerClient: 4 }, { limits: { maxConnectionsPerClient: 1 } }, {});
    const port = Number(new URL(gw.url).port);
    const ask = (host: string): Promise<string> =>
      new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        let text = '';
        s.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (/\r\n\r\n[^]*\n$/.test(text)) resolve(text);
        });
        s.on('close', () => resolve(text));
        s.on('error', () => undefined);
        s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        sockets.push(s);
      });
    const sockets: net.Socket[] = [];
    assert.match(await ask(HOST), /^HTTP\/1\.1 200/);
    assert.match(await ask(HOST), /^HTTP\/1\.1 200/, 'a second connection is accepted for the environment that allows 4');
    assert.match(await ask(OTHER), /^HTTP\/1\.1 200/);
    const other = await ask(OTHER);
    assert.match(other, /^HTTP\/1\.1 429/, 'the other environment keeps the default of 1 connection');
    for (const s of sockets) s.destroy();
  });
});
