/**
 * The forwarding headers (forwarded.ts): the client as the gateway decides it, with and
 * without trusted proxies, as units; then through real gateways and upstreams on loopback:
 * forged X-Forwarded-For / X-Real-IP / Forwarded replaced on plain HTTP, HTTPS and WebSocket
 * upgrades, a trusted proxy's chain kept with the right client for the headers and for the
 * environment's access control, and the `--trusted-proxies` flag. The other client-address and
 * forwarding-claim headers (True-Client-IP, CF-Connecting-IP, X-Forwarded-Port, …) are dropped
 * on all of these, from trusted proxies too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEdgeSettings } from '@lanes/spec';
import type { VirtualHost } from '@lanes/spec';
import { tempDir, waitFor } from '@lanes/testkit';
import { parseConfig } from './config.js';
import { CLIENT_CLAIM_HEADERS, compileTrustedProxies, forwardingHeaders, isForwardingAlias, parseForwardedFor, resolveClient } from './forwarded.js';
import { startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { ACCESS_LOG_FILE } from './persist.js';
import { Gateway } from './proxy.js';
import type { GatewayOptions } from './proxy.js';

const HOST = 'prod.acme.lanes.test';
/** A header a client sent that no instance may believe. */
const FORGED = {
  'x-forwarded-for': '198.51.100.66',
  'x-real-ip': '198.51.100.66',
  forwarded: 'for=198.51.100.66;proto=https;host=evil.example',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
};
/** Other headers claiming a client address or a forwarding fact, some with underscores. */
const CLAIMS: ReadonlyArray<[string, string]> = [
  ['X-Forwarded-Port', '1'],
  ['X-Forwarded-Prefix', '/evil'],
  ['X-Forwarded-Server', 'evil.example'],
  ['X-Forwarded-Scheme', 'https'],
  ['X-Forwarded-Ssl', 'on'],
  ['X-Original-Forwarded-For', '198.51.100.66'],
  ['True-Client-IP', '198.51.100.66'],
  ['X-Client-IP', '198.51.100.66'],
  ['X-Cluster-Client-IP', '198.51.100.66'],
  ['CF-Connecting-IP', '198.51.100.66'],
  ['Fastly-Client-IP', '198.51.100.66'],
  ['X_Forwarded_Port', '2'],
  ['True_Client_IP', '198.51.100.67'],
  ['cf_connecting_ip', '198.51.100.68'],
  ['X-Forwarded_Prefix', '/evil2'],
];
/** CLAIMS as raw header lines. */
const claimLines = CLAIMS.map(([name, value]) => `${name}: ${value}\r\n`).join('');

describe('forwarded: deciding the client', () => {
  const trusted = compileTrustedProxies(['10.0.0.0/8', '127.0.0.1', '2001:db8:ffff::/48']);

  it('reads X-Forwarded-For entries with or without ports and brackets, and nothing else', () => {
    assert.deepEqual(parseForwardedFor(' 192.0.2.1 '), { address: '192.0.2.1', port: '' });
    assert.deepEqual(parseForwardedFor('192.0.2.1:4711'), { address: '192.0.2.1', port: '4711' });
    assert.deepEqual(parseForwardedFor('2001:db8::1'), { address: '2001:db8::1', port: '' });
    assert.deepEqual(parseForwardedFor('[2001:db8::1]'), { address: '2001:db8::1', port: '' });
    assert.deepEqual(parseForwardedFor('[2001:db8::1]:443'), { address: '2001:db8::1', port: '443' });
    assert.deepEqual(parseForwardedFor('::ffff:192.0.2.9'), { address: '192.0.2.9', port: '' });
    for (const bad of ['', 'unknown', '_hidden', 'example.com', '1.2.3', '1.2.3.4:', '1.2.3.4:x', '[1.2.3.4]', '[2001:db8::1', '[::1]x', '01.2.3.4', '1.2.3.4;for=5.6.7.8']) {
      assert.equal(parseForwardedFor(bad), null, bad);
    }
  });

  it('takes the peer as the client when it is no trusted proxy, whatever the chain says', () => {
    assert.deepEqual(resolveClient('203.0.113.5', '198.51.100.66', trusted), { client: '203.0.113.5', forwardedFor: '203.0.113.5', forwardedNodes: 'for=203.0.113.5' });
    assert.deepEqual(resolveClient('127.0.0.1', '198.51.100.66', null), { client: '127.0.0.1', forwardedFor: '127.0.0.1', forwardedNodes: 'for=127.0.0.1' });
    assert.deepEqual(resolveClient('::ffff:203.0.113.5', '', trusted).client, '203.0.113.5');
    assert.deepEqual(resolveClient('2001:db8::7', '', null), { client: '2001:db8::7', forwardedFor: '2001:db8::7', forwardedNodes: 'for="[2001:db8::7]"' });
  });

  it('keeps a trusted proxy chain and takes its right-most untrusted address as the client', () => {
    const cases: Array<[peer: string, chain: string, client: string]> = [
      ['127.0.0.1', '', '127.0.0.1'],
      ['127.0.0.1', '203.0.113.7', '203.0.113.7'],
      ['127.0.0.1', '203.0.113.7, 10.0.0.2', '203.0.113.7'],
      // The client wrote an address of its own on the left: the proxy's word counts.
      ['127.0.0.1', '198.51.100.66, 203.0.113.7, 10.1.2.3', '203.0.113.7'],
      // Every hop trusted: the left-most one.
      ['10.0.0.1', '10.0.0.3, 10.0.0.2', '10.0.0.3'],
      // Unreadable entry: the last trusted hop, nothing left of it.
      ['127.0.0.1', '198.51.100.66, unknown, 10.0.0.2', '10.0.0.2'],
      ['127.0.0.1', '[2001:db8::1]:4711', '2001:db8::1'],
      ['127.0.0.1', '2001:db8::1, 2001:db8:ffff::5', '2001:db8::1'],
      ['::ffff:127.0.0.1', '203.0.113.7:5000', '203.0.113.7'],
    ];
    for (const [peer, chain, client] of cases) assert.equal(resolveClient(peer, chain, trusted).client, client, `${peer} <- ${chain}`);
    assert.deepEqual(resolveClient('127.0.0.1', 'unknown, [2001:db8::1]:4711, 203.0.113.7:80, 10.0.0.2', trusted), {
      client: '203.0.113.7',
      forwardedFor: 'unknown, [2001:db8::1]:4711, 203.0.113.7:80, 10.0.0.2, 127.0.0.1',
      forwardedNodes: 'for=unknown, for="[2001:db8::1]:4711", for="203.0.113.7:80", for=10.0.0.2, for=127.0.0.1',
    });
  });

  it('writes the five headers, the Forwarded host quoted when it is no token', () => {
    assert.equal(
      forwardingHeaders(resolveClient('2001:db8::7', '', null), true, 'shop.example:8443'),
      'X-Forwarded-For: 2001:db8::7\r\nX-Real-IP: 2001:db8::7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example:8443\r\nForwarded: for="[2001:db8::7]";proto=https;host="shop.example:8443"\r\n',
    );
    assert.match(forwardingHeaders(resolveClient('192.0.2.1', '', null), false, 'a.example'), /\r\nForwarded: for=192\.0\.2\.1;proto=http;host=a\.example\r\n$/);
    assert.match(forwardingHeaders(resolveClient('192.0.2.1', '', null), false, ''), /\r\nForwarded: for=192\.0\.2\.1;proto=http\r\n$/);
  });

  it('writes X-Forwarded-Port when given the listener port, and nothing for a missing or odd one', () => {
    assert.equal(
      forwardingHeaders(resolveClient('192.0.2.1', '', null), true, 'a.example', 8443),
      'X-Forwarded-For: 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a.example\r\nX-Forwarded-Port: 8443\r\nForwarded: for=192.0.2.1;proto=https;host=a.example\r\n',
    );
    for (const none of [undefined, 0, -1, 65_536, 80.5, Number.NaN]) {
      assert.ok(!forwardingHeaders(resolveClient('192.0.2.1', '', null), false, 'a.example', none).includes('X-Forwarded-Port'), String(none));
    }
  });

  it('knows the underscore spellings CGI-style servers read as the same headers', () => {
    for (const yes of ['X_Forwarded_For', 'x_real_ip', 'X-Forwarded_Host', 'x_forwarded-proto']) assert.ok(isForwardingAlias(yes), yes);
    for (const no of ['X-Forwarded-For', 'x_request_id', 'forwarded', 'x_real_ip_x', 'cookie']) assert.ok(!isForwardingAlias(no), no);
  });

  it('knows the other client-address and forwarding-claim headers in every spelling', () => {
    for (const name of CLIENT_CLAIM_HEADERS) {
      for (const spelling of [name, name.toUpperCase(), name.replace(/-/g, '_'), name.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => `${d}${c.toUpperCase()}`)]) {
        assert.ok(isForwardingAlias(spelling), spelling);
      }
    }
    for (const [name] of CLAIMS) assert.ok(isForwardingAlias(name), name);
    const others = ['X-Request-Id', 'content-type', 'CF-Ray', 'cf-ipcountry', 'X-Forwarded-Portal', 'x-client', 'true-client', 'x-clientip', 'Fastly-Client', 'accept-encoding', 'traceparent', 'x_original_url'];
    for (const no of others) assert.ok(!isForwardingAlias(no), no);
  });

  it('refuses a bad trusted-proxy block in the options, naming it', () => {
    assert.throws(() => compileTrustedProxies(['10.0.0.0/8', '10.0.0.1/8']), /trustedProxies\.1: "10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8/);
    assert.equal(compileTrustedProxies([]), null);
  });
});

describe('forwarded: the --trusted-proxies flag', () => {
  const base = ['--state-dir', '/tmp/lanes-gw-flags'];

  it('is empty by default and reads a comma list of blocks and addresses, normalized', () => {
    assert.deepEqual(parseConfig(base).trustedProxies, []);
    assert.deepEqual(parseConfig([...base, '--trusted-proxies', '10.0.0.0/8, 192.168.1.5,2001:DB8::/32,10.0.0.0/8']).trustedProxies, ['10.0.0.0/8', '192.168.1.5/32', '2001:db8::/32']);
    assert.deepEqual(parseConfig([...base, '--trusted-proxies', 'none']).trustedProxies, []);
  });

  it('refuses a bad block with one line naming the flag and the value', () => {
    const cases: Array<[string, RegExp]> = [
      ['10.0.0.0/33', /^--trusted-proxies: "10\.0\.0\.0\/33" has no valid prefix length; use \/0 to \/32$/],
      ['10.0.0.1/8', /^--trusted-proxies: "10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8$/],
      ['10.0.0.0/8,proxy.internal', /^--trusted-proxies: "proxy\.internal" is not a CIDR; use e\.g\. 203\.0\.113\.0\/24 or 2001:db8::\/32$/],
      ['10.0.0.0/8,,10.1.0.0/16', /^--trusted-proxies: "" is not a CIDR/],
    ];
    for (const [value, message] of cases) {
      assert.throws(() => parseConfig([...base, '--trusted-proxies', value]), (err: Error) => {
        assert.match(err.message, message);
        assert.ok(!err.message.includes('\n'), err.message);
        return true;
      });
    }
  });
});

// ---------------------------------------------------------------------------------------
// Through a real gateway

interface Seen {
  readonly headers: Record<string, string | undefined>;
}

const gateways: Gateway[] = [];
let up: TestUpstream;
let dir: string;

before(async () => {
  dir = await tempDir('lanes-gw-fwd-');
  up = await startUpstream('web');
  // WebSocket handshakes: the instance answers 101 with what it saw as a header.
  up.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => undefined);
    const seen = Buffer.from(JSON.stringify({ headers: req.headers })).toString('base64');
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen: ${seen}\r\n\r\n`);
  });
});

after(async () => {
  await Promise.all(gateways.map((g) => g.close(0)));
  await up?.close();
  await rm(dir, { recursive: true, force: true });
});

async function gateway(options: Partial<GatewayOptions> = {}, edge?: unknown): Promise<Gateway> {
  const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), ...options });
  gateways.push(gw);
  await gw.start();
  const host: VirtualHost = { ...vhost(HOST, [{ endpoints: [up.endpoint] }]), ...(edge === undefined ? {} : { edge: parseEdgeSettings(edge) }) };
  gw.applyTable(table(1, [host]));
  return gw;
}

/** A request with these extra header lines, over a fresh connection; what the instance saw. */
function get(url: string, headers: ReadonlyArray<[string, string]>, options: https.RequestOptions = {}): Promise<{ status: number; text: string; seen: Seen | null }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({ host: '127.0.0.1', port: u.port, path: '/', agent: false, timeout: 10_000, setHost: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, seen: res.headers['x-upstream'] === undefined ? null : (JSON.parse(text) as Seen) }));
    });
    req.setHeader('Host', HOST);
    for (const [name, value] of headers) req.setHeader(name, value);
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake over a raw socket; the headers the instance saw. */
async function upgrade(port: number, extra: string): Promise<Seen> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.write(`GET /chat HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  await waitFor('the 101 answer', () => received.includes('\r\n\r\n'));
  socket.destroy();
  assert.match(received, /^HTTP\/1\.1 101 /);
  const m = /\r\nX-Seen: ([A-Za-z0-9+/=]+)\r\n/.exec(received);
  assert.ok(m?.[1], received);
  return JSON.parse(Buffer.from(m[1], 'base64').toString()) as Seen;
}

const forgedLines = `X-Forwarded-For: 198.51.100.66\r\nX-Real-IP: 198.51.100.66\r\nForwarded: for=198.51.100.66\r\nX_Real_IP: 198.51.100.66\r\nX-Forwarded-Proto: https\r\n${claimLines}`;

/** None of CLAIMS reached the instance, in any spelling; X-Forwarded-Port is the listener's `port`. */
function assertNoClaims(seen: Seen | null, port: number): void {
  assert.ok(seen);
  const h = seen.headers;
  for (const [name] of CLAIMS) if (name.toLowerCase() !== 'x-forwarded-port') assert.equal(h[name.toLowerCase()], undefined, `${name} is dropped`);
  for (const name of CLIENT_CLAIM_HEADERS) assert.equal(h[name], name === 'x-forwarded-port' ? String(port) : undefined, name);
}

function assertTruePeer(seen: Seen | null, proto: 'http' | 'https', port: number): void {
  assert.ok(seen);
  const h = seen.headers;
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-real-ip'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], proto);
  assert.equal(h['x-forwarded-host'], HOST);
  assert.equal(h['forwarded'], `for=127.0.0.1;proto=${proto};host=${HOST}`);
  assert.equal(h['x_real_ip'], undefined, 'the underscore spelling is dropped too');
  assertNoClaims(seen, port);
}

describe('forwarded: through the gateway, without trusted proxies', () => {
  it('replaces a forged X-Forwarded-For, X-Real-IP and Forwarded on plain HTTP, and drops the other claims: the instance sees 127.0.0.1', async () => {
    const gw = await gateway();
    const r = await get(gw.url, [...Object.entries(FORGED), ['X_Forwarded_For', '198.51.100.66'], ...CLAIMS]);
    assert.equal(r.status, 200, r.text);
    const port = Number(new URL(gw.url).port);
    assertTruePeer(r.seen, 'http', port);
    assert.equal(r.seen?.headers['x_forwarded_for'], undefined);
    // Without anything forged the same headers are there.
    assertTruePeer((await get(gw.url, [])).seen, 'http', port);
  });

  it('replaces and drops them on a WebSocket upgrade too', async () => {
    const gw = await gateway();
    const port = Number(new URL(gw.url).port);
    assertTruePeer(await upgrade(port, forgedLines), 'http', port);
  });

  it('sends the forged-for client to access control as 127.0.0.1, not as the address it claims', async () => {
    const gw = await gateway({}, { allow: ['198.51.100.0/24'] });
    const r = await get(gw.url, Object.entries(FORGED));
    assert.equal(r.status, 403);
    assert.equal(r.text, 'client 127.0.0.1 is not on the allow-list of acme/prod\n');
  });
});

describe('forwarded: through the gateway over HTTPS', () => {
  it('replaces the forged headers and drops the other claims on HTTPS requests and upgrades, with proto https', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`, '-addext', 'extendedKeyUsage=serverAuth',
    ], { stdio: 'pipe' });
    const certPem = readFileSync(cert, 'utf8');
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-'), httpsPort: 0 });
    gateways.push(gw);
    await gw.start();
    gw.applyTable(table(1, [{ ...vhost(HOST, [{ endpoints: [up.endpoint] }]), tls: { certPem, keyPem: readFileSync(key, 'utf8'), source: 'custom', notAfter: new Date(Date.now() + 86_400_000).toISOString() } }]));
    assert.ok(gw.httpsUrl);
    const r = await get(gw.httpsUrl, [...Object.entries(FORGED), ...CLAIMS], { servername: HOST, rejectUnauthorized: false });
    assert.equal(r.status, 200, r.text);
    const port = Number(new URL(gw.httpsUrl).port);
    assertTruePeer(r.seen, 'https', port);

    // A WebSocket handshake over TLS.
    const socket = (await import('node:tls')).connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write(`GET /chat HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${forgedLines}\r\n`);
    await waitFor('the 101 answer over TLS', () => received.includes('\r\n\r\n'));
    socket.destroy();
    const m = /\r\nX-Seen: ([A-Za-z0-9+/=]+)\r\n/.exec(received);
    assert.ok(m?.[1], received);
    assertTruePeer(JSON.parse(Buffer.from(m[1], 'base64').toString()) as Seen, 'https', port);
  });
});

describe('forwarded: through the gateway behind a trusted proxy', () => {
  it('keeps the proxy chain, appends the peer and names the right-most untrusted address as the client; other claims are dropped', async () => {
    const gw = await gateway({ trustedProxies: ['127.0.0.1', '10.0.0.0/8'] });
    // The client put 198.51.100.66 in front; the outer proxy (10.0.0.2) saw 203.0.113.7.
    const r = await get(gw.url, [
      ['X-Forwarded-For', '198.51.100.66, 203.0.113.7, 10.0.0.2'],
      ['X-Real-IP', '198.51.100.66'],
      ['Forwarded', 'for=198.51.100.66'],
      ...CLAIMS,
    ]);
    assert.equal(r.status, 200, r.text);
    assertNoClaims(r.seen, Number(new URL(gw.url).port));
    const h = r.seen?.headers ?? {};
    assert.equal(h['x-forwarded-for'], '198.51.100.66, 203.0.113.7, 10.0.0.2, 127.0.0.1');
    assert.equal(h['x-real-ip'], '203.0.113.7');
    assert.equal(h['forwarded'], `for=198.51.100.66, for=203.0.113.7, for=10.0.0.2, for=127.0.0.1;proto=http;host=${HOST}`);
    assert.equal(h['x-forwarded-proto'], 'http');

    // Without a chain the trusted peer is the client.
    assert.equal((await get(gw.url, [])).seen?.headers['x-real-ip'], '127.0.0.1');

    // Upgrades decide the same way.
    const seen = await upgrade(Number(new URL(gw.url).port), `X-Forwarded-For: [2001:db8::1]:4711\r\nX-Real-IP: 198.51.100.66\r\n${claimLines}`);
    assertNoClaims(seen, Number(new URL(gw.url).port));
    assert.equal(seen.headers['x-forwarded-for'], '[2001:db8::1]:4711, 127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], '2001:db8::1');
    assert.equal(seen.headers['forwarded'], `for="[2001:db8::1]:4711", for=127.0.0.1;proto=http;host=${HOST}`);
  });

  it('applies the environment allow-list and per-client rate to the client the chain names, and logs it', async () => {
    const gw = await gateway({ trustedProxies: ['127.0.0.0/8'] }, { allow: ['203.0.113.0/24'], clientRate: '1/m,1' });
    const as = (client: string): ReadonlyArray<[string, string]> => [['X-Forwarded-For', client]];
    assert.equal((await get(gw.url, as('203.0.113.7'))).status, 200);
    const limited = await get(gw.url, as('203.0.113.7'));
    assert.equal(limited.status, 429);
    assert.match(limited.text, /^too many requests from 203\.0\.113\.7 to acme\/prod/);
    assert.equal((await get(gw.url, as('203.0.113.8'))).status, 200, 'another client behind the same proxy has its own bucket');
    const outsider = await get(gw.url, as('198.51.100.66'));
    assert.equal(outsider.status, 403);
    assert.equal(outsider.text, 'client 198.51.100.66 is not on the allow-list of acme/prod\n');
    // The proxy itself, sending no chain, is not on the list.
    assert.equal((await get(gw.url, [])).status, 403);

    await gw.close(0);
    const lines = (await readFile(path.join(gw.stateDir, ACCESS_LOG_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { client: string; status: number });
    assert.deepEqual(lines.map((l) => [l.client, l.status]), [
      ['203.0.113.7', 200],
      ['203.0.113.7', 429],
      ['203.0.113.8', 200],
      ['198.51.100.66', 403],
      ['127.0.0.1', 403],
    ]);
  });
});
