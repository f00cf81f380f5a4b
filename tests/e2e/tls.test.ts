/**
 * TLS end to end: `lanes up` serves every environment over HTTPS with a certificate from
 * the platform CA, which `lanes ca` exports so that curl trusts it; a custom certificate
 * made with openssl is served (SNI picks it), and an expired one or one with a key that
 * does not fit is refused with a clear message while the previous one keeps being served.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { tempDir, waitFor } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

function openssl(cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A self-signed server certificate for `names` (openssl req -x509); returns the file paths. */
function selfSigned(dir: string, name: string, names: string[]): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  openssl(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30',
    '-subj', `/CN=${names[0] ?? name}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-addext', 'extendedKeyUsage=serverAuth',
  ]);
  return { cert, key };
}

/** A certificate that expired on 2020-02-01 (openssl ca: req/x509 of OpenSSL 3.0 cannot set past dates). */
function expired(dir: string, host: string): { cert: string; key: string } {
  const work = path.join(dir, 'expired-ca');
  mkdirSync(work, { recursive: true });
  writeFileSync(path.join(work, 'index.txt'), '');
  writeFileSync(path.join(work, 'serial'), '01\n');
  writeFileSync(path.join(work, 'ca.cnf'), '[ ca ]\ndefault_ca = c\n[ c ]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\n[ p ]\ncommonName = supplied\n');
  writeFileSync(path.join(work, 'ext.cnf'), `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth\n`);
  const cert = path.join(dir, 'expired.pem');
  const key = path.join(dir, 'expired.key');
  openssl(work, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', 'req.csr', '-subj', `/CN=${host}`]);
  openssl(work, ['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', key, '-in', 'req.csr', '-out', cert, '-notext', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-extfile', 'ext.cnf']);
  return { cert, key };
}

/** curl over HTTPS to the gateway for `host`, trusting only `caFile`. */
function curl(port: number, host: string, caFile: string): Promise<{ code: number; status: string; body: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `${host}:${port}:127.0.0.1`, '-w', '\n%{http_code}', `https://${host}:${port}/`],
      { timeout: 20_000 },
      (err, stdout, stderr) => {
        const text = String(stdout);
        const nl = text.lastIndexOf('\n');
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, status: text.slice(nl + 1), body: text.slice(0, Math.max(nl, 0)), stderr: String(stderr) });
      },
    );
  });
}

/** The fingerprint of the certificate the gateway shows for `servername`. */
function servedFingerprint(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.once('secureConnect', () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = (file: string): string => new X509Certificate(readFileSync(file)).fingerprint256;

describe('TLS', () => {
  let p: TestPlatform;
  let dir: string;
  let host: string;
  let caFile: string;
  let custom: { cert: string; key: string };

  before(async () => {
    dir = await tempDir('lanes-e2e-tls-');
    p = await TestPlatform.start({ zones: ['a', 'b'] });
    host = p.host('prod', 'acme');
    caFile = path.join(dir, 'ca.pem');
    assert.equal((await p.cli(['tenant', 'create', 'acme'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'acme/prod'])).code, 0);
    const r = await p.cli(['deploy', 'acme/prod', helloDir], 120_000);
    assert.equal(r.code, 0, `deploy failed: ${r.stderr}\n${p.componentLogs()}`);
    await p.waitReady('acme/prod');
  });
  after(async () => {
    await p?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('exports the platform CA, and curl trusting only it reaches the environment over HTTPS', async () => {
    const r = await p.cli(['ca', '--out', caFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote the platform CA certificate \(CN=Lanes platform CA [0-9a-f]+\)/);
    assert.ok(existsSync(caFile));
    const printed = await p.cli(['ca']);
    assert.equal(printed.stdout, readFileSync(caFile, 'utf8'));
    const answer = await waitFor(
      'curl over HTTPS answers 200',
      async () => {
        const c = await curl(p.httpsPort, host, caFile);
        return c.code === 0 && c.status === '200' ? c : false;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const body = JSON.parse(answer.body) as { instance?: string };
    assert.ok(body.instance, `the hello app answered: ${answer.body}`);
    const shown = await p.cli(['cert', 'show', 'acme/prod']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /source\s+platform/);
    assert.match(shown.stdout, new RegExp(`names\\s+${host.replace(/\./g, '\\.')}`));
  });

  it('serves a custom certificate made with openssl, picked by SNI', async () => {
    custom = selfSigned(dir, 'custom', [host, `*.acme.${p.domain}`]);
    const r = await p.cli(['cert', 'set', 'acme/prod', '--cert', custom.cert, '--key', custom.key]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /custom certificate of acme\/prod set: CN=prod\.acme\.lanes\.localhost/);
    const want = fingerprintOf(custom.cert);
    await waitFor('the gateway serves the custom certificate', async () => (await servedFingerprint(p.httpsPort, host)) === want, { timeoutMs: 30_000, intervalMs: 300 });
    const c = await curl(p.httpsPort, host, custom.cert);
    assert.equal(c.status, '200', c.stderr);
    // The platform CA no longer vouches for this host.
    assert.notEqual((await curl(p.httpsPort, host, caFile)).code, 0);
  });

  it('refuses an expired certificate and a key that does not fit with a clear message, and keeps serving the previous one', async () => {
    const old = expired(dir, host);
    let r = await p.cli(['cert', 'set', 'acme/prod', '--cert', old.cert, '--key', old.key]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim(), 'lanes: cert: expired on 2020-02-01T00:00:00Z');
    const other = selfSigned(dir, 'other', [host]);
    r = await p.cli(['cert', 'set', 'acme/prod', '--cert', other.cert, '--key', custom.key]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim(), "lanes: key: does not match the certificate's public key");
    const wrongHost = selfSigned(dir, 'wrong', ['a.example.com']);
    r = await p.cli(['cert', 'set', 'acme/prod', '--cert', wrongHost.cert, '--key', wrongHost.key]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim(), `lanes: cert: does not cover ${host} (names: a.example.com)`);
    assert.equal(await servedFingerprint(p.httpsPort, host), fingerprintOf(custom.cert));
    assert.match((await p.cli(['cert', 'show', 'acme/prod'])).stdout, /source\s+custom/);
  });

  it('goes back to a platform certificate with lanes cert clear', async () => {
    const r = await p.cli(['cert', 'clear', 'acme/prod']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /acme\/prod is served with a platform certificate/);
    await waitFor(
      'curl trusting the platform CA again',
      async () => {
        const c = await curl(p.httpsPort, host, caFile);
        return c.code === 0 && c.status === '200';
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const events = await p.cli(['events', 'acme/prod']);
    for (const reason of ['CertificateIssued', 'CertificateSet', 'CertificateCleared']) assert.match(events.stdout, new RegExp(reason));
  });
});
