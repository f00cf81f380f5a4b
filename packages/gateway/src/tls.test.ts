/**
 * The HTTPS listener with real certificates (made by the openssl CLI) and real sockets:
 * SNI picks each host's certificate, TLS 1.1 and unknown or missing server names are
 * refused, a certificate change in the table is served on the next handshake, and the
 * per-environment redirect to HTTPS and HSTS.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { EdgeSettings, TlsMaterial, VirtualHost } from '@lanes/spec';
import { tempDir } from '@lanes/testkit';
import { startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { Gateway } from './proxy.js';

const A = 'prod.acme.lanes.test';
const B = 'prod.beta.lanes.test';

interface Pair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** A self-signed server certificate for `host` from `openssl req -x509` (argv, no shell). */
function makeCert(dir: string, name: string, host: string): Pair {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-addext', 'extendedKeyUsage=serverAuth',
  ], { stdio: 'pipe' });
  return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

const material = (p: Pair): TlsMaterial => ({ ...p, source: 'custom', notAfter: new X509Certificate(p.certPem).validTo });
const fingerprint = (p: Pair): string => new X509Certificate(p.certPem).fingerprint256;

const EDGE: EdgeSettings = {
  allow: [],
  deny: [],
  clientRate: null,
  environmentRate: null,
  maxBodyBytes: null,
  maxConnectionsPerClient: null,
  httpsRedirect: true,
  hstsMaxAgeS: 600,
};

/** Handshakes with the gateway; resolves to the certificate it showed, rejects with the TLS error. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<{ fingerprint: string; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('secureConnect', () => {
      const out = { fingerprint: socket.getPeerCertificate().fingerprint256, protocol: socket.getProtocol() };
      socket.end();
      resolve(out);
    });
    socket.once('error', reject);
  });
}

function get(url: string, host: string, options: https.RequestOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      { host: '127.0.0.1', port: u.port, path: `${u.pathname}${u.search}`, headers: { host }, servername: host, agent: false, timeout: 10_000, ...options },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('gateway HTTPS', () => {
  let dir: string;
  let gw: Gateway;
  let up: TestUpstream;
  let certA: Pair;
  let certB: Pair;
  let httpsPort: number;
  let revision = 1;
  const hostsWith = (a: Pair | null, b: Pair | null, extra: Partial<VirtualHost> = {}): VirtualHost[] => [
    { ...vhost(A, [{ endpoints: [up.endpoint] }]), tls: a === null ? null : material(a), ...extra },
    { ...vhost(B, [{ endpoints: [up.endpoint] }], 'beta'), tls: b === null ? null : material(b) },
  ];

  before(async () => {
    dir = await tempDir('lanes-gw-tls-');
    certA = makeCert(dir, 'a', A);
    certB = makeCert(dir, 'b', B);
    up = await startUpstream('web');
    gw = new Gateway({ stateDir: path.join(dir, 'state'), httpPort: 0, httpsPort: 0 });
    await gw.start();
    assert.ok(gw.httpsUrl);
    httpsPort = Number(new URL(gw.httpsUrl).port);
    gw.applyTable(table(revision++, hostsWith(certA, certB)));
  });
  after(async () => {
    await gw?.close(0);
    await up?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows each host its own certificate, chosen by SNI, and serves it with X-Forwarded-Proto https', async () => {
    assert.equal((await handshake(httpsPort, { servername: A })).fingerprint, fingerprint(certA));
    assert.equal((await handshake(httpsPort, { servername: B })).fingerprint, fingerprint(certB));
    const r = await get(`${gw.httpsUrl}/hello?x=1`, A, { ca: [certA.certPem] });
    assert.equal(r.status, 200, r.text);
    const echoed = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    assert.equal(echoed.url, '/hello?x=1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'https');
    const plain = JSON.parse((await get(`${gw.url}/`, A)).text) as { headers: Record<string, string> };
    assert.equal(plain.headers['x-forwarded-proto'], 'http');
  });

  it('speaks TLS 1.2 and 1.3 and refuses TLS 1.1', async () => {
    assert.equal((await handshake(httpsPort, { servername: A, maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    assert.equal((await handshake(httpsPort, { servername: A })).protocol, 'TLSv1.3');
    // The client lowers its own security level so that only the server can be the one refusing.
    await assert.rejects(handshake(httpsPort, { servername: A, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }), (err: Error & { code?: string }) => {
      assert.match(`${err.code} ${err.message}`, /PROTOCOL_VERSION|protocol version/i);
      return true;
    });
  });

  it('refuses the handshake for an unknown server name, or none', async () => {
    await assert.rejects(handshake(httpsPort, { servername: 'other.lanes.test' }), /alert|handshake|socket hang up|ECONNRESET/i);
    await assert.rejects(handshake(httpsPort, {}), /alert|handshake|socket hang up|ECONNRESET/i);
    // A host without a certificate in the table is not served over HTTPS either.
    gw.applyTable(table(revision++, hostsWith(certA, null)));
    await assert.rejects(handshake(httpsPort, { servername: B }), /alert|handshake|socket hang up|ECONNRESET/i);
    assert.equal((await handshake(httpsPort, { servername: A })).fingerprint, fingerprint(certA));
  });

  it('serves a new certificate from the next handshake after a table change, and skips a broken one', async () => {
    const next = makeCert(dir, 'a2', A);
    gw.applyTable(table(revision++, hostsWith(next, certB)));
    assert.equal((await handshake(httpsPort, { servername: A })).fingerprint, fingerprint(next));
    assert.equal((await handshake(httpsPort, { servername: B })).fingerprint, fingerprint(certB));
    // A key that does not fit: that host fails its handshakes, the others carry on.
    gw.applyTable(table(revision++, hostsWith({ certPem: certA.certPem, keyPem: certB.keyPem }, certB)));
    await assert.rejects(handshake(httpsPort, { servername: A }));
    assert.equal((await handshake(httpsPort, { servername: B })).fingerprint, fingerprint(certB));
    gw.applyTable(table(revision++, hostsWith(certA, certB)));
  });

  it('redirects plain HTTP to HTTPS (308, same host and target) and sends HSTS over HTTPS when the environment asks', async () => {
    gw.applyTable(table(revision++, hostsWith(certA, certB, { edge: EDGE })));
    const r = await get(`${gw.url}/path?q=1`, A);
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, `https://${A}:${httpsPort}/path?q=1`);
    assert.equal(r.headers['strict-transport-security'], undefined, 'HSTS only over HTTPS');
    const s = await get(`${gw.httpsUrl}/path?q=1`, A, { ca: [certA.certPem] });
    assert.equal(s.status, 200);
    assert.equal(s.headers['strict-transport-security'], 'max-age=600');
    // Gateway-made answers carry it too; another environment gets neither.
    const missing = await get(`${gw.httpsUrl}/x`, 'nobody.lanes.test', { ca: [certA.certPem], servername: A });
    assert.equal(missing.status, 404);
    const other = await get(`${gw.url}/`, B);
    assert.equal(other.status, 200);
    const otherTls = await get(`${gw.httpsUrl}/`, B, { ca: [certB.certPem] });
    assert.equal(otherTls.headers['strict-transport-security'], undefined);
  });

  it('does not redirect a host it cannot serve over HTTPS', async () => {
    gw.applyTable(table(revision++, hostsWith(null, certB, { edge: EDGE })));
    assert.equal((await get(`${gw.url}/`, A)).status, 200);
  });

  it('stops listening for HTTPS when closed', async () => {
    const other = new Gateway({ stateDir: path.join(dir, 'state2'), httpPort: 0, httpsPort: 0 });
    await other.start();
    const port = Number(new URL(other.httpsUrl ?? '').port);
    await other.close(0);
    const socket = tls.connect({ host: '127.0.0.1', port, servername: A, rejectUnauthorized: false });
    const [err] = (await once(socket, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'ECONNREFUSED');
  });
});
