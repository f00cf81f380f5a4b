/**
 * TLS in the control plane, in process over a real embedded store: the CA is created once
 * (mode 0600) and read back, every environment gets a certificate that is renewed when due
 * and carried in the routing table, custom certificates are validated (the previous one
 * stays on a refusal), and clearing one goes back to a platform certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { packDirectory } from '@lanes/archive';
import { createCa, issueCertificate } from '@lanes/pki';
import { tempDir, waitFor } from '@lanes/testkit';
import { parseConfig, parseLifetimeMs } from './config.js';
import { startControlPlane, type ControlPlane } from './server.js';

const helloDir = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
const HOST = 'prod.acme.lanes.localhost';

describe('control plane certificates', () => {
  let cp: ControlPlane;
  let home: string;
  let admin: string;

  const start = async (): Promise<ControlPlane> =>
    startControlPlane(parseConfig(['--home', home, '--api-port', '0', '--cert-lifetime', '15s'], {}), pino({ level: 'silent' }));

  before(async () => {
    home = await tempDir('lanes-cp-tls-');
    cp = await start();
    admin = (await readFile(path.join(home, 'admin.token'), 'utf8')).trim();
  });
  after(async () => {
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, token: string | null = admin) => {
    const headers: Record<string, string> = {};
    if (token) headers['authorization'] = `Bearer ${token}`;
    const r = await cp.app.inject({ method, url, headers, ...(body === undefined ? {} : { payload: body as object }) });
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(r.body) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: r.statusCode, body: parsed, text: r.body, type: String(r.headers['content-type']) };
  };
  const certUrl = '/v1/tenants/acme/environments/prod/certificate';
  const reasons = async (): Promise<string[]> => ((await call('GET', '/v1/events?tenant=acme&limit=1000')).body['items'] as { reason: string }[]).map((e) => e.reason);
  const tableTls = () => cp.platform.table.hosts.find((h) => h.host === HOST)?.tls ?? null;

  it('creates the CA once, in files of mode 0600, and serves its certificate without a token', async () => {
    for (const f of ['ca.pem', 'ca-key.pem']) assert.equal((await stat(path.join(home, f))).mode & 0o777, 0o600, f);
    const r = await call('GET', '/v1/ca', undefined, null);
    assert.equal(r.status, 200);
    assert.match(r.type, /application\/x-pem-file/);
    assert.equal(r.text, await readFile(path.join(home, 'ca.pem'), 'utf8'));
    assert.ok(new X509Certificate(r.text).ca);
    // A restart reads the same CA back.
    await cp.close();
    cp = await start();
    assert.equal((await call('GET', '/v1/ca', undefined, null)).text, r.text);
  });

  it('issues a certificate for a new environment and puts it in the routing table', async () => {
    assert.equal((await call('POST', '/v1/tenants', { name: 'acme' })).status, 201);
    assert.equal((await call('POST', '/v1/tenants/acme/environments', { name: 'prod' })).status, 201);
    const view = await waitFor('a platform certificate', async () => {
      const r = await call('GET', certUrl);
      return r.status === 200 ? r.body : false;
    });
    assert.equal(view['source'], 'platform');
    assert.deepEqual(view['names'], [HOST]);
    assert.equal(view['issuer'], new X509Certificate((await call('GET', '/v1/ca', undefined, null)).text).subject);
    assert.ok(!('keyPem' in view), 'the key is never shown');
    assert.ok(typeof view['renewAfter'] === 'string');
    assert.ok((await reasons()).includes('CertificateIssued'));
    // The table has the host once a release with an http service is deployed.
    const tgz = await packDirectory(helloDir);
    const deployed = await cp.app.inject({ method: 'POST', url: '/v1/tenants/acme/environments/prod/releases', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/gzip' }, payload: tgz });
    assert.equal(deployed.statusCode, 201, deployed.body);
    const tls = await waitFor('the host in the routing table with its certificate', async () => tableTls() ?? false);
    assert.equal(tls.source, 'platform');
    assert.equal(new X509Certificate(tls.certPem).fingerprint256, view['fingerprint256']);
    assert.ok(new X509Certificate(tls.certPem).checkPrivateKey((await import('node:crypto')).createPrivateKey(tls.keyPem)));
  });

  it('renews a platform certificate once a third of its lifetime is left', async () => {
    const before = (await call('GET', certUrl)).body['fingerprint256'];
    const renewed = await waitFor(
      'a renewed certificate (15 s lifetime)',
      async () => {
        const r = await call('GET', certUrl);
        return r.body['fingerprint256'] !== before ? r.body : false;
      },
      { timeoutMs: 40_000, intervalMs: 500 },
    );
    assert.equal(renewed['source'], 'platform');
    assert.ok((await reasons()).includes('CertificateRenewed'));
    await waitFor('the table carries the renewed certificate', async () => new X509Certificate(tableTls()?.certPem ?? '').fingerprint256 === renewed['fingerprint256']);
  });

  it('refuses an expired or mismatched custom certificate with the reason and field, keeping the previous one', async () => {
    const other = await createCa();
    const expired = await issueCertificate(other, [HOST], { now: new Date('2020-01-01T00:00:00Z'), lifetimeMs: 86_400_000 });
    const good = await issueCertificate(other, [HOST]);
    const before = (await call('GET', certUrl)).body['fingerprint256'];
    const cases: [unknown, string, RegExp][] = [
      [{ certPem: expired.certPem, keyPem: expired.keyPem }, 'certPem', /^cert: expired on 2020-01-02T00:00:00Z$/],
      [{ certPem: good.certPem, keyPem: expired.keyPem }, 'keyPem', /^key: does not match the certificate's public key$/],
      [{ certPem: (await issueCertificate(other, ['a.example.com'])).certPem, keyPem: good.keyPem }, 'keyPem', /does not match/],
      [{ certPem: good.certPem }, 'keyPem', /keyPem: is required/],
      [{ certPem: good.certPem, keyPem: good.keyPem, chainPem: (await createCa()).certPem }, 'chainPem', /^chain: certificate 1 \(CN=prod\.acme\.lanes\.localhost\) is not signed by certificate 2/],
    ];
    for (const [body, field, re] of cases) {
      const r = await call('PUT', certUrl, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body['field'], field);
      assert.match(String(r.body['detail']), re);
    }
    const wrongHost = await issueCertificate(other, ['a.example.com']);
    const r = await call('PUT', certUrl, { certPem: wrongHost.certPem, keyPem: wrongHost.keyPem });
    assert.equal(r.body['detail'], `cert: does not cover ${HOST} (names: a.example.com)`);
    assert.equal((await call('GET', certUrl)).body['fingerprint256'], before, 'the previous certificate stays');
  });

  it('serves a valid custom certificate, keeps it through renewals, and goes back to a platform one when cleared', async () => {
    const other = await createCa();
    const custom = await issueCertificate(other, ['*.acme.lanes.localhost'], { lifetimeMs: 20_000 });
    const r = await call('PUT', certUrl, { certPem: custom.certPem, keyPem: custom.keyPem, chainPem: other.certPem });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['source'], 'custom');
    assert.deepEqual(r.body['names'], ['*.acme.lanes.localhost']);
    assert.equal(r.body['renewAfter'], null);
    const tls = await waitFor('the custom certificate in the table', async () => (tableTls()?.source === 'custom' ? tableTls() : false));
    assert.equal((tls?.certPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'leaf and chain');
    // Past the point a platform certificate would be renewed: the custom one is kept, with a warning.
    await waitFor('an expiry warning', async () => (await reasons()).includes('CertificateExpiring'), { timeoutMs: 30_000, intervalMs: 500 });
    assert.equal((await call('GET', certUrl)).body['source'], 'custom');
    const cleared = await call('DELETE', certUrl);
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body['source'], 'platform');
    assert.ok((await reasons()).includes('CertificateCleared'));
    await waitFor('a platform certificate in the table again', async () => tableTls()?.source === 'platform');
  });

  it('reads certificate lifetimes in days, hours or seconds', () => {
    assert.equal(parseLifetimeMs('certLifetime', '90d'), 90 * 86_400_000);
    assert.equal(parseLifetimeMs('certLifetime', '12h'), 12 * 3_600_000);
    assert.throws(() => parseLifetimeMs('certLifetime', '1s'), /certLifetime: "1s" is not a certificate lifetime; use e\.g\. 90d, 12h or 60s \(10s to 3650d\)/);
    assert.throws(() => parseConfig(['--home', '/x', '--cert-lifetime', 'soon'], {}), /certLifetime: "soon"/);
  });
});
