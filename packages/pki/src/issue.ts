/**
 * The platform's own certificate authority: creating it, and issuing server certificates
 * for environment host names with it. Keys are ECDSA P-256 (small, fast handshakes,
 * accepted by every current client); the CA key signs leaves only (pathLength 0, no
 * intermediates), so one file pair under LANES_HOME is the whole PKI.
 */
import { createPrivateKey, randomBytes, X509Certificate, type webcrypto } from 'node:crypto';
import { InputError } from '@lanes/spec';
import { subtle, x509 } from './x509.js';

/** A certificate and its private key, both PEM (the key unencrypted PKCS#8). */
export interface KeyPairPem {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssuedCertificate extends KeyPairPem {
  /** ISO-8601. */
  readonly notBefore: string;
  /** ISO-8601. */
  readonly notAfter: string;
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** @default 10 years */
export const CA_LIFETIME_MS = 3650 * DAY_MS;
/** @default 90 days */
export const DEFAULT_CERT_LIFETIME_MS = 90 * DAY_MS;
/** Shortest leaf lifetime accepted (tests use seconds; nothing shorter makes sense). */
export const MIN_CERT_LIFETIME_MS = 10_000;
/**
 * Leaves are valid from a little before their issue time, so a client whose clock is
 * slightly behind does not see a certificate "not yet valid": a minute, or a tenth of a
 * short test lifetime.
 */
function backdateMs(lifetimeMs: number): number {
  return Math.min(60_000, Math.floor(lifetimeMs / 10));
}

/** X.509 times have whole seconds; rounding here keeps notBefore/notAfter exactly as stored. */
function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** A positive 128-bit serial number (RFC 5280: positive, at most 20 octets, unpredictable). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

const DNS_NAME_RE = /^(\*\.)?(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Checks the names a certificate is issued for: lower-case DNS names, a wildcard only as the whole first label. */
export function checkDnsNames(field: string, names: readonly string[]): readonly string[] {
  if (names.length === 0) throw new InputError(`${field}: at least one DNS name is needed`, field);
  if (names.length > 100) throw new InputError(`${field}: ${names.length} names is more than the limit of 100`, field);
  names.forEach((n, i) => {
    if (!DNS_NAME_RE.test(n)) throw new InputError(`${field}[${i}]: ${JSON.stringify(n)} is not a lower-case DNS name such as prod.acme.lanes.localhost`, field);
  });
  return names;
}

/**
 * Creates the platform CA: ECDSA P-256, self-signed, valid for `lifetimeMs` (10 years),
 * subject "CN=Lanes platform CA <random>" (the random part tells two installations apart
 * in a client's trust store), basicConstraints CA with pathLength 0, keyUsage
 * keyCertSign and cRLSign.
 */
export async function createCa(options: { now?: Date; lifetimeMs?: number } = {}): Promise<IssuedCertificate> {
  const now = (options.now ?? new Date()).getTime();
  const lifetimeMs = options.lifetimeMs ?? CA_LIFETIME_MS;
  const keys = await subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const notBefore = wholeSeconds(now - 60_000);
  const notAfter = wholeSeconds(now + lifetimeMs);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [`Lanes platform CA ${randomBytes(4).toString('hex')}`] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: pemOf(cert), keyPem: await exportKeyPem(keys.privateKey), notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
}

/** Checks that a CA pair loaded from disk is usable: a CA certificate, an EC key, and they belong together. */
export function checkCa(ca: KeyPairPem): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ca.certPem);
  } catch (err) {
    throw new InputError(`ca: the CA certificate is not a valid PEM certificate (${message(err)})`, 'ca');
  }
  if (!cert.ca) throw new InputError('ca: the CA certificate is not a CA (basicConstraints CA is not set)', 'ca');
  let key;
  try {
    key = createPrivateKey(ca.keyPem);
  } catch (err) {
    throw new InputError(`ca: the CA key is not a valid PEM private key (${message(err)})`, 'ca');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InputError(`ca: the CA key is ${key.asymmetricKeyType ?? 'unknown'}, not ECDSA P-256`, 'ca');
  }
  if (!cert.checkPrivateKey(key)) throw new InputError("ca: the CA key does not match the CA certificate's public key", 'ca');
}

/**
 * Issues a server certificate for `names` (subjectAltName DNS entries, the first also as
 * the common name when it fits in 64 characters) with a fresh ECDSA P-256 key, signed by
 * `ca`: extendedKeyUsage serverAuth, keyUsage digitalSignature, not a CA. `certPem` holds
 * the leaf only; the CA is the clients' trust anchor and is not sent.
 */
export async function issueCertificate(
  ca: KeyPairPem,
  names: readonly string[],
  options: { lifetimeMs?: number; now?: Date } = {},
): Promise<IssuedCertificate> {
  checkDnsNames('names', names);
  const lifetimeMs = options.lifetimeMs ?? DEFAULT_CERT_LIFETIME_MS;
  if (!Number.isInteger(lifetimeMs) || lifetimeMs < MIN_CERT_LIFETIME_MS) {
    throw new InputError(`lifetime: ${lifetimeMs} ms is shorter than the minimum of ${MIN_CERT_LIFETIME_MS} ms`, 'lifetime');
  }
  const now = (options.now ?? new Date()).getTime();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKeyDer = createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await subtle.importKey('pkcs8', caKeyDer, EC_P256, false, ['sign']);
  const keys = await subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const notBefore = wholeSeconds(now - backdateMs(lifetimeMs));
  const notAfter = wholeSeconds(now + lifetimeMs);
  const first = names[0] ?? '';
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: first.length <= 64 ? [{ CN: [first] }] : [{ O: ['Lanes'] }],
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      caSki !== null ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: pemOf(cert), keyPem: await exportKeyPem(keys.privateKey), notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
}

/** The PEM of a certificate with a final newline (what files and clients expect). */
function pemOf(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem').replace(/\r\n/g, '\n');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
