/**
 * The platform CA, issued certificates and the custom-certificate validator, cross-checked
 * with the openssl CLI: what we issue must pass `openssl verify`, and what openssl makes
 * (the files users bring) must be judged as described in validate.ts.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rm } from 'node:fs/promises';
import { tempDir } from '@lanes/testkit';
import { checkCa, createCa, describeCertificate, issueCertificate, nameCovers, renewalDue, validateCustomCertificate, type IssuedCertificate } from './index.js';
import { chain, openssl, selfSigned, withDates } from './openssl-test-helpers.js';

const HOST = 'prod.acme.lanes.localhost';
const DAY = 86_400_000;

/** The one-line message of what `fn` throws. */
function refusal(fn: () => unknown): { message: string; field: string | undefined } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof Error);
    return { message: err.message, field: (err as { field?: string }).field };
  }
  assert.fail('expected a refusal');
}

describe('platform CA and issued certificates', () => {
  let dir: string;
  let ca: IssuedCertificate;

  before(async () => {
    dir = await tempDir('lanes-pki-');
    ca = await createCa();
    writeFileSync(path.join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(path.join(dir, 'ca.key'), ca.keyPem);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates an ECDSA P-256 CA valid for 10 years, CA:TRUE with keyCertSign and cRLSign', () => {
    const text = openssl(dir, ['x509', '-in', 'ca.pem', '-noout', '-text']);
    assert.match(text, /Subject: CN ?= ?Lanes platform CA [0-9a-f]{8}/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /NIST CURVE: P-256/);
    const info = describeCertificate(ca.certPem);
    const years = (Date.parse(info.notAfter) - Date.now()) / (365 * DAY);
    assert.ok(years > 9.9 && years < 10.1, `valid for ${years} years`);
    assert.ok(info.selfSigned);
    // The key file is plain PKCS#8 and belongs to the certificate.
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(openssl(dir, ['pkey', '-in', 'ca.key', '-pubout']), openssl(dir, ['x509', '-in', 'ca.pem', '-noout', '-pubkey']));
    assert.doesNotThrow(() => checkCa(ca));
  });

  it('names two CAs differently, so clients can tell installations apart', async () => {
    const other = await createCa();
    assert.notEqual(describeCertificate(other.certPem).subject, describeCertificate(ca.certPem).subject);
    assert.throws(() => checkCa({ certPem: ca.certPem, keyPem: other.keyPem }), /CA key does not match/);
  });

  it('issues a server certificate that openssl verifies against the CA for TLS servers', async () => {
    const leaf = await issueCertificate(ca, [HOST, '*.prod.acme.lanes.localhost']);
    writeFileSync(path.join(dir, 'leaf.pem'), leaf.certPem);
    assert.equal(openssl(dir, ['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'leaf.pem']).trim(), 'leaf.pem: OK');
    const text = openssl(dir, ['x509', '-in', 'leaf.pem', '-noout', '-text']);
    assert.match(text, /DNS:prod\.acme\.lanes\.localhost, DNS:\*\.prod\.acme\.lanes\.localhost/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /Subject: CN ?= ?prod\.acme\.lanes\.localhost/);
    // The certificate and the key it comes with are a pair the validator accepts.
    const v = validateCustomCertificate({ certPem: leaf.certPem, keyPem: leaf.keyPem, hosts: [HOST, 'x.prod.acme.lanes.localhost'] });
    assert.deepEqual(v.info.names, [HOST, '*.prod.acme.lanes.localhost']);
    assert.equal(v.info.issuer, describeCertificate(ca.certPem).subject);
  });

  it('makes a fresh key per certificate and takes its lifetime from the caller (90 days by default)', async () => {
    const a = await issueCertificate(ca, [HOST]);
    const b = await issueCertificate(ca, [HOST], { lifetimeMs: 60_000 });
    assert.notEqual(a.keyPem, b.keyPem);
    const days = (Date.parse(a.notAfter) - Date.now()) / DAY;
    assert.ok(days > 89.9 && days <= 90, `default lifetime ${days} days`);
    const lifeMs = Date.parse(b.notAfter) - Date.parse(b.notBefore);
    assert.ok(lifeMs >= 60_000 && lifeMs <= 67_000, `short lifetime ${lifeMs} ms (plus a small backdate)`);
    await assert.rejects(issueCertificate(ca, ['Not A Name']), /names\[0\]: "Not A Name" is not a lower-case DNS name/);
    await assert.rejects(issueCertificate(ca, [HOST], { lifetimeMs: 5 }), /lifetime: 5 ms is shorter than the minimum/);
  });
});

describe('renewal rule', () => {
  const nb = new Date('2026-01-01T00:00:00Z');
  const na = new Date('2026-04-01T00:00:00Z'); // 90 days
  it('renews once less than a third of the lifetime is left', () => {
    assert.equal(renewalDue({ notBefore: nb, notAfter: na }, new Date('2026-01-02T00:00:00Z')), false);
    assert.equal(renewalDue({ notBefore: nb, notAfter: na }, new Date('2026-03-01T23:00:00Z')), false, '31 days left');
    assert.equal(renewalDue({ notBefore: nb, notAfter: na }, new Date('2026-03-03T00:00:00Z')), true, '29 days left');
    assert.equal(renewalDue({ notBefore: nb, notAfter: na }, new Date('2026-05-01T00:00:00Z')), true, 'expired');
  });
  it('renews what has nonsense dates', () => {
    assert.equal(renewalDue({ notBefore: 'garbage', notAfter: na }), true);
    assert.equal(renewalDue({ notBefore: na, notAfter: nb }), true);
  });
  it('is a pure function of the dates: every instant before the two-thirds point is not due, every one after is', () => {
    const life = na.getTime() - nb.getTime();
    const point = nb.getTime() + (2 * life) / 3;
    for (let i = 0; i < 200; i++) {
      const t = nb.getTime() + Math.floor(Math.random() * life * 1.2);
      assert.equal(renewalDue({ notBefore: nb.toISOString(), notAfter: na.toISOString() }, new Date(t)), t > point, new Date(t).toISOString());
    }
  });
});

describe('host name matching', () => {
  it('matches exactly (any case) or with a wildcard standing for one label', () => {
    assert.ok(nameCovers(HOST, 'PROD.acme.lanes.localhost'));
    assert.ok(nameCovers('*.acme.lanes.localhost', HOST));
    assert.ok(!nameCovers('*.lanes.localhost', HOST), 'a wildcard covers one label only');
    assert.ok(!nameCovers('*.acme.lanes.localhost', 'acme.lanes.localhost'));
    assert.ok(!nameCovers('*.localhost', 'x.localhost'), 'no wildcard for a whole top-level domain');
    assert.ok(!nameCovers('p*.acme.lanes.localhost', HOST), 'no partial wildcards');
  });
});

describe('custom certificate validation', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('lanes-pki-custom-');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts an openssl self-signed RSA certificate and returns the key as PKCS#8', () => {
    const c = selfSigned(dir, 'rsa', [HOST], { key: 'rsa' });
    const v = validateCustomCertificate({ certPem: c.cert, keyPem: c.key, hosts: [HOST] });
    assert.ok(v.info.selfSigned);
    assert.deepEqual(v.info.names, [HOST]);
    assert.match(v.keyPem, /^-----BEGIN PRIVATE KEY-----/);
    const fp = openssl(dir, ['x509', '-in', c.certFile, '-noout', '-fingerprint', '-sha256']).trim().split('=')[1];
    assert.equal(v.info.fingerprint256, fp);
  });

  it('accepts a traditional (PKCS#1) RSA key file', () => {
    const c = selfSigned(dir, 'rsa1', [HOST], { key: 'rsa' });
    const pkcs1 = openssl(dir, ['rsa', '-in', c.keyFile, '-traditional']);
    assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
    assert.doesNotThrow(() => validateCustomCertificate({ certPem: c.cert, keyPem: pkcs1, hosts: [HOST] }));
  });

  it('accepts a leaf with its intermediate (separate or in one file) or with the root too, as openssl verify does', () => {
    const ch = chain(path.join(dir, 'chain'), ['*.acme.lanes.localhost']);
    assert.equal(openssl(dir, ['verify', '-CAfile', ch.root.certFile, '-untrusted', ch.intermediate.certFile, ch.leaf.certFile]).trim(), `${ch.leaf.certFile}: OK`);
    const separate = validateCustomCertificate({ certPem: ch.leaf.cert, keyPem: ch.leaf.key, chainPem: ch.intermediate.cert, hosts: [HOST] });
    assert.equal(separate.info.issuer, 'CN=Test Intermediate CA');
    assert.equal((separate.certPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    const bundled = validateCustomCertificate({ certPem: ch.leaf.cert + ch.intermediate.cert, keyPem: ch.leaf.key, hosts: [HOST] });
    assert.equal(bundled.certPem, separate.certPem);
    const full = validateCustomCertificate({ certPem: ch.leaf.cert, keyPem: ch.leaf.key, chainPem: ch.intermediate.cert + ch.root.cert, hosts: [HOST] });
    assert.equal((full.certPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 3);
  });

  it('refuses a chain in the wrong order or with a link missing, naming the certificates', () => {
    const ch = chain(path.join(dir, 'chain2'), [HOST]);
    let r = refusal(() => validateCustomCertificate({ certPem: ch.leaf.cert, keyPem: ch.leaf.key, chainPem: ch.root.cert, hosts: [HOST] }));
    assert.equal(r.message, `chain: certificate 1 (CN=${HOST}) is not signed by certificate 2 (CN=Test Root CA); give the leaf first, then each issuer in order`);
    assert.equal(r.field, 'chainPem');
    r = refusal(() => validateCustomCertificate({ certPem: ch.intermediate.cert + ch.leaf.cert, keyPem: ch.leaf.key, hosts: [HOST] }));
    assert.equal(r.message, "key: does not match the certificate's public key", 'the first certificate is taken as the leaf');
    const other = selfSigned(dir, 'notca', ['a.example.com']);
    r = refusal(() => validateCustomCertificate({ certPem: ch.leaf.cert, keyPem: ch.leaf.key, chainPem: other.cert, hosts: [HOST] }));
    assert.equal(r.message, 'chain: certificate 2 (CN=a.example.com) is not a CA certificate; give the leaf first, then each issuer in order');
  });

  it('refuses an expired or not yet valid certificate with its date', () => {
    const old = withDates(dir, 'expired', [HOST], '20200101000000Z', '20200201000000Z');
    let r = refusal(() => validateCustomCertificate({ certPem: old.cert, keyPem: old.key, hosts: [HOST] }));
    assert.equal(r.message, 'cert: expired on 2020-02-01T00:00:00Z');
    assert.equal(r.field, 'certPem');
    const future = withDates(dir, 'future', [HOST], '20400101000000Z', '20400201000000Z');
    r = refusal(() => validateCustomCertificate({ certPem: future.cert, keyPem: future.key, hosts: [HOST] }));
    assert.equal(r.message, 'cert: not valid before 2040-01-01T00:00:00Z');
  });

  it('refuses a key that belongs to another certificate', () => {
    const a = selfSigned(dir, 'a', [HOST]);
    const b = selfSigned(dir, 'b', [HOST], { key: 'rsa' });
    const r = refusal(() => validateCustomCertificate({ certPem: a.cert, keyPem: b.key, hosts: [HOST] }));
    assert.equal(r.message, "key: does not match the certificate's public key");
    assert.equal(r.field, 'keyPem');
  });

  it('refuses a certificate that does not cover the environment host, listing its names', () => {
    const c = selfSigned(dir, 'other', ['a.example.com', '*.example.com']);
    const r = refusal(() => validateCustomCertificate({ certPem: c.cert, keyPem: c.key, hosts: [HOST] }));
    assert.equal(r.message, `cert: does not cover ${HOST} (names: a.example.com, *.example.com)`);
    const wild = selfSigned(dir, 'wild', ['*.acme.lanes.localhost']);
    assert.doesNotThrow(() => validateCustomCertificate({ certPem: wild.cert, keyPem: wild.key, hosts: [HOST] }));
  });

  it('refuses what is not a usable server certificate or key, each with one line', () => {
    const c = selfSigned(dir, 'ok', [HOST]);
    const client = selfSigned(dir, 'client', [HOST], { eku: 'clientAuth' });
    const encrypted = openssl(dir, ['pkey', '-in', c.keyFile, '-aes256', '-passout', 'pass:secret']);
    const weak = openssl(dir, ['genrsa', '1024']);
    const ed = openssl(dir, ['genpkey', '-algorithm', 'ed25519']);
    const cases: [Parameters<typeof validateCustomCertificate>[0], RegExp][] = [
      [{ certPem: 'hello', keyPem: c.key, hosts: [HOST] }, /^cert: no PEM certificate found; expected a file with -----BEGIN CERTIFICATE-----$/],
      [{ certPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', keyPem: c.key, hosts: [HOST] }, /^cert: certificate 1 is not a valid X\.509 certificate/],
      [{ certPem: c.cert, keyPem: 'nope', hosts: [HOST] }, /^key: no PEM private key found/],
      [{ certPem: c.cert, keyPem: encrypted, hosts: [HOST] }, /^key: is encrypted; give it without a passphrase/],
      [{ certPem: c.cert, keyPem: weak, hosts: [HOST] }, /^key: an RSA key of 1024 bits is too weak; use 2048 bits or more$/],
      [{ certPem: c.cert, keyPem: ed, hosts: [HOST] }, /^key: ed25519 keys are not accepted/],
      [{ certPem: client.cert, keyPem: client.key, hosts: [HOST] }, /^cert: is not a server certificate \(its extendedKeyUsage lacks serverAuth\)$/],
      [{ certPem: c.cert, keyPem: c.key, chainPem: 'junk', hosts: [HOST] }, /^chain: no PEM certificate found/],
    ];
    for (const [input, re] of cases) {
      const r = refusal(() => validateCustomCertificate(input));
      assert.match(r.message, re);
      assert.ok(!r.message.includes('\n'), `one line: ${r.message}`);
    }
  });
});
