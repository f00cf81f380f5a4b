/**
 * The gateway's HTTP engine seen from the wire: pipelined requests, HTTP/1.0 clients,
 * Expect: 100-continue, a request body that trickles in while the instance waits, and an
 * instance answering before it read the body. Raw sockets on both sides where the framing
 * is the point.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gatewayServing, rawRequest, startUpstream } from './harness.js';
import type { TestUpstream } from './harness.js';
import type { Gateway } from './proxy.js';

const HOST = 'prod.acme.lanes.test';

const exchange = (port: number, parts: readonly string[], opts: { waitMs?: number; gapMs?: number; until?: (text: string) => boolean } = {}) => rawRequest(port, parts, { waitMs: 5_000, ...opts });

const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;

describe('HTTP engine', () => {
  let gw: Gateway;
  let up: TestUpstream;
  let port: number;

  before(async () => {
    up = await startUpstream('web', (req, res) => {
      // Answers at once, without reading the body.
      if (req.url === '/early') return void res.writeHead(413, { 'content-type': 'text/plain', 'content-length': 8 }).end('too big\n');
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        if (req.url === '/chunked') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('one,');
          setTimeout(() => res.end('two'), 10);
          return;
        }
        const text = `${req.method} ${req.url} ${body.length}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
    ({ gw, port } = await gatewayServing(HOST, [up.endpoint], { limits: { keepAliveTimeoutMs: 1_000 } }));
  });
  after(async () => {
    await gw?.close(100);
    await up?.close();
  });

  it('answers pipelined requests in order on one connection', async () => {
    const reqs = ['/a', '/b', '/c'].map((p) => `GET ${p} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`).join('');
    const post = `POST /d HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello`;
    const r = await exchange(port, [reqs + post], { until: (t) => t.includes('POST /d 5') });
    assert.equal(count(r.text, /HTTP\/1\.1 200/g), 4, r.text);
    const order = [...r.text.matchAll(/(GET|POST) (\/[a-d]) (\d+)/g)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    assert.deepEqual(order, ['GET /a 0', 'GET /b 0', 'GET /c 0', 'POST /d 5']);
  });

  it('closes after answering an HTTP/1.0 request, and keeps it open when asked to', async () => {
    const plain = await exchange(port, [`GET /x HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`]);
    assert.match(plain.text, /^HTTP\/1\.1 200/);
    assert.match(plain.text, /\r\nconnection: close\r\n/i);
    assert.ok(plain.closed, 'closed after the answer');
    const kept = await exchange(port, [`GET /y HTTP/1.0\r\nHost: ${HOST}\r\nConnection: keep-alive\r\n\r\n`], { until: (t) => t.includes('GET /y') });
    assert.match(kept.text, /\r\nconnection: keep-alive\r\n/i);
    assert.equal(kept.closed, false);
  });

  it('sends an HTTP/1.0 client a chunked answer without its chunk framing, then closes', async () => {
    const r = await exchange(port, [`GET /chunked HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`]);
    assert.ok(r.closed);
    assert.doesNotMatch(r.text, /transfer-encoding/i);
    assert.ok(r.text.endsWith('\r\n\r\none,two'), JSON.stringify(r.text));
  });

  it('passes a chunked answer on to an HTTP/1.1 client with its framing', async () => {
    const r = await exchange(port, [`GET /chunked HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`], { until: (t) => t.endsWith('0\r\n\r\n') });
    assert.match(r.text, /transfer-encoding: chunked/i);
    assert.ok(r.text.endsWith('4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n'), JSON.stringify(r.text));
  });

  it('answers Expect: 100-continue with 100 before the body, then the answer', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`PUT /up HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`);
    const first = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    assert.equal(first, 'HTTP/1.1 100 Continue\r\n\r\n');
    socket.write('data');
    const answer = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    assert.match(answer, /^HTTP\/1\.1 200[\s\S]*PUT \/up 4$/);
    socket.destroy();
  });

  it('streams a body that trickles in, and keeps the connection for the next request', async () => {
    const r = await exchange(
      port,
      [`POST /slow HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n`, '3\r\nabc\r\n', '2\r\nde\r\n', '0\r\n\r\n', `GET /after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`],
      { gapMs: 30, until: (t) => t.includes('GET /after') },
    );
    assert.match(r.text, /POST \/slow 5/);
    assert.match(r.text, /GET \/after 0/);
  });

  it('passes on an answer the instance gives before it read the whole body, then closes', async () => {
    const r = await exchange(port, [`POST /early HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`], { waitMs: 5_000 });
    assert.match(r.text, /^HTTP\/1\.1 413/);
    assert.match(r.text, /connection: close/i);
    assert.ok(r.closed, 'the rest of the body is not read as a request');
  });

  it('closes a kept-alive connection left idle past the keep-alive timeout', async () => {
    const started = Date.now();
    const r = await exchange(port, [`GET /idle HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`], { waitMs: 5_000 });
    assert.ok(r.closed);
    assert.match(r.text, /GET \/idle 0/);
    assert.ok(Date.now() - started >= 900, `closed after ${Date.now() - started} ms`);
  });
});
