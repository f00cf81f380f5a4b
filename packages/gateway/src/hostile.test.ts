/**
 * Hostile HTTP at the gateway, over raw sockets: request smuggling (CL+TE, TE with obs-fold,
 * two Content-Lengths, …), invalid characters, duplicate Host, oversized headers and
 * slow-loris clients. Each case asserts what the client sees and that nothing reached the
 * instance. Node's parser (llhttp, strict) refuses most of these itself; the gateway adds
 * the rest (access.ts checkFraming).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@lanes/testkit';
import { gatewayServing, rawRequest, startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { Gateway } from './proxy.js';
import type { GatewayOptions } from './proxy.js';

const HOST = 'prod.acme.lanes.test';

describe('hostile HTTP', () => {
  let gw: Gateway;
  let up: TestUpstream;
  let port: number;

  async function start(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
    const g = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
    await g.start();
    g.applyTable(table(1, [vhost(HOST, [{ endpoints: [up.endpoint] }])]));
    return g;
  }

  before(async () => {
    up = await startUpstream('web');
    gw = await start({ limits: { maxHeaderBytes: 4096 } });
    port = Number(new URL(gw.url).port);
  });
  after(async () => {
    await gw?.close(100);
    await up?.close();
  });

  it('serves a well-formed chunked POST (the baseline the refusals are measured against)', async () => {
    const hitsBefore = up.hits;
    const r = await rawRequest(port, [`POST /ok HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`]);
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /"bodyBytes":5/);
    assert.equal(up.hits, hitsBefore + 1);
  });

  // Each case: the request bytes, the status the client must get, and (for the gateway's own
  // refusals) a phrase of its one-line message.
  const cases: Array<{ name: string; raw: string; status: number; says?: RegExp }> = [
    {
      name: 'Content-Length and Transfer-Encoding together (CL.TE), with a smuggled request in the body',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n`,
      status: 400,
    },
    {
      name: 'Transfer-Encoding before Content-Length (TE.CL)',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n`,
      status: 400,
    },
    {
      name: 'Transfer-Encoding with obs-fold (value on a continuation line)',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
      status: 400,
    },
    {
      name: 'Transfer-Encoding hidden in the obs-fold of another header',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
      status: 400,
    },
    { name: 'obs-fold in any header', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: b\r\n\tc\r\n\r\n`, status: 400 },
    { name: 'two different Content-Lengths', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, status: 400 },
    { name: 'two identical Content-Lengths', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, status: 400 },
    { name: 'a Content-Length list', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5, 5\r\n\r\nhello`, status: 400 },
    { name: 'a signed Content-Length', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: +5\r\n\r\nhello`, status: 400 },
    { name: 'two Transfer-Encoding headers', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
    { name: 'a space before the colon of Transfer-Encoding', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, status: 400 },
    { name: 'Transfer-Encoding not ending in chunked', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, status: 400 },
    {
      name: 'an unknown Transfer-Encoding',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
      status: 501,
      says: /Transfer-Encoding "xchunked" is not supported/,
    },
    {
      name: 'a coding before chunked ("gzip, chunked")',
      raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      status: 501,
      says: /Transfer-Encoding "gzip, chunked" is not supported/,
    },
    {
      name: 'Transfer-Encoding in an HTTP/1.0 request',
      raw: `POST / HTTP/1.0\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      status: 400,
      says: /HTTP\/1\.0 request cannot have a Transfer-Encoding/,
    },
    { name: 'a duplicate Host', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nHost: other.example\r\n\r\n`, status: 400, says: /2 Host headers/ },
    { name: 'a Host with a space in it', raw: `GET / HTTP/1.1\r\nHost: ${HOST}:80 evil\r\n\r\n`, status: 400, says: /has characters a host name cannot have/ },
    {
      name: 'an absolute-form target naming another authority than Host',
      raw: `GET http://other.example/x HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
      status: 400,
      says: /authority "other\.example" differs from Host/,
    },
    { name: 'a control character in a header value', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: b\x01c\r\n\r\n`, status: 400 },
    { name: 'a NUL in a header value', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: b\x00c\r\n\r\n`, status: 400 },
    { name: 'DEL in a header value', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: b\x7fc\r\n\r\n`, status: 400 },
    { name: 'a space in a header name', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX A: b\r\n\r\n`, status: 400 },
    { name: 'bare LF line endings', raw: `GET / HTTP/1.1\nHost: ${HOST}\n\n`, status: 400 },
    { name: 'a bare CR inside the headers', raw: `GET / HTTP/1.1\r\nHost: ${HOST}\rX-A: b\r\n\r\n`, status: 400 },
    { name: 'bare LF in chunk framing', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`, status: 400 },
    { name: 'a control character in a chunk extension', raw: `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n`, status: 400 },
    { name: 'a space in the request target', raw: `GET /a b HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, status: 400 },
    { name: 'an unknown HTTP version', raw: `GET / HTTP/1.2\r\nHost: ${HOST}\r\n\r\n`, status: 400 },
    { name: 'no Host in HTTP/1.1', raw: 'GET / HTTP/1.1\r\n\r\n', status: 400 },
  ];

  for (const c of cases) {
    it(`refuses ${c.name} with ${c.status}, closes the connection, and forwards nothing`, async () => {
      const hitsBefore = up.hits;
      const r = await rawRequest(port, [c.raw]);
      assert.equal(r.status, c.status, `answer: ${JSON.stringify(r.text.slice(0, 300))}`);
      assert.ok(r.closed, 'the gateway closed the connection');
      if (c.says) assert.match(r.text, c.says);
      assert.equal((r.text.match(/HTTP\/1\.1 /g) ?? []).length, 1, `exactly one response: ${JSON.stringify(r.text.slice(0, 300))}`);
      assert.equal(up.hits, hitsBefore, 'the instance received no request');
    });
  }

  it('answers 431 to a header block over the limit, whether many headers or one huge one', async () => {
    const hitsBefore = up.hits;
    const many = Array.from({ length: 200 }, (_, i) => `X-Filler-${i}: ${'v'.repeat(30)}\r\n`).join('');
    const r1 = await rawRequest(port, [`GET / HTTP/1.1\r\nHost: ${HOST}\r\n${many}\r\n`]);
    assert.equal(r1.status, 431, r1.text.slice(0, 200));
    const r2 = await rawRequest(port, [`GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'x'.repeat(10_000)}\r\n\r\n`]);
    assert.equal(r2.status, 431, r2.text.slice(0, 200));
    assert.equal(up.hits, hitsBefore);
  });
});

describe('slow clients (slow-loris)', () => {
  let gw: Gateway;
  let up: TestUpstream;
  let port: number;

  before(async () => {
    up = await startUpstream('web');
    ({ gw, port } = await gatewayServing(HOST, [up.endpoint], { limits: { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, keepAliveTimeoutMs: 1_000 } }));
  });
  after(async () => {
    await gw?.close(100);
    await up?.close();
  });

  it('cuts a client that trickles its headers a line at a time', async () => {
    const lines = [`GET / HTTP/1.1\r\nHost: ${HOST}\r\n`, ...Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: a\r\n`)];
    const started = Date.now();
    // 100 lines 200 ms apart would take 20 s; the headers timeout is 1 s.
    const r = await rawRequest(port, lines, { gapMs: 200, waitMs: 15_000 });
    assert.ok(r.closed, `the gateway closed the connection (after ${Date.now() - started} ms)`);
    assert.ok(r.status === 0 || r.status === 408, `no answer or 408, got ${JSON.stringify(r.text.slice(0, 100))}`);
    assert.equal(up.hits, 0);
  });

  it('cuts a client that trickles its body past the request timeout', async () => {
    const parts = [`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1000\r\n\r\n`, ...Array.from({ length: 100 }, () => 'x')];
    const r = await rawRequest(port, parts, { gapMs: 200, waitMs: 15_000 });
    assert.ok(r.closed, 'the gateway closed the connection');
    assert.ok(!/^HTTP\/1\.1 200/.test(r.text), `not served: ${JSON.stringify(r.text.slice(0, 100))}`);
  });

  it('does not hold idle connections: silent ones and idle keep-alive ones are closed', async () => {
    const silent = Array.from({ length: 20 }, () => rawRequest(port, [], { waitMs: 15_000 }));
    const keptAlive = rawRequest(port, [`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`], { waitMs: 15_000 });
    const answers = await Promise.all(silent);
    assert.ok(answers.every((a) => a.closed), `${answers.filter((a) => !a.closed).length} of 20 silent connections still open`);
    const k = await keptAlive;
    assert.equal(k.status, 200);
    assert.ok(k.closed, 'the idle keep-alive connection was closed');
  });
});
