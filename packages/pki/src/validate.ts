/**
 * Checks a certificate a user brings for an environment (`lanes cert set`) before the
 * gateway is given it, and reads the facts the API shows about any certificate. Every
 * refusal is one line naming what is wrong, e.g. `cert: expired on 2026-01-02T00:00:00Z`
 * or `key: does not match the certificate's public key`.
 *
 * What is accepted:
 * - the leaf first, then its issuers in order, in the certificate PEM and/or a separate
 *   chain PEM (appended after the certificate's); each certificate must be signed by the
 *   next one, and every one after the leaf must be a CA;
 * - a chain may stop at an intermediate (clients hold the root) or include the root
 *   (sent along; harmless). A self-signed leaf alone is accepted too: its clients must
 *   trust it themselves, as they must trust the platform CA. Whether the last issuer is
 *   trusted by anyone cannot be known here and is not checked;
 * - RSA keys of 2048 bits or more and ECDSA keys on P-256, P-384 or P-521, as PKCS#8,
 *   PKCS#1 or SEC1 PEM, unencrypted; the key must belong to the leaf;
 * - the leaf must be valid now (every certificate of the chain too), must cover every
 *   host name of the environment through its DNS subjectAltNames (exact, or a wildcard
 *   `*.` standing for exactly one label; the common name is ignored, as browsers do),
 *   and, when it has an extendedKeyUsage, must allow serverAuth.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { InputError } from '@lanes/spec';
import { x509 } from './x509.js';

/** What the API shows about a certificate (never the key). */
export interface CertificateInfo {
  /** e.g. "CN=prod.acme.lanes.localhost". */
  readonly subject: string;
  readonly issuer: string;
  /** DNS subjectAltNames. */
  readonly names: readonly string[];
  /** ISO-8601. */
  readonly notBefore: string;
  /** ISO-8601. */
  readonly notAfter: string;
  /** SHA-256 of the DER, "AB:CD:…" as openssl and browsers show it. */
  readonly fingerprint256: string;
  readonly selfSigned: boolean;
}

export interface CustomCertificateInput {
  readonly certPem: string;
  readonly keyPem: string;
  readonly chainPem?: string | undefined;
  /** The host names the certificate must cover (the environment's host). */
  readonly hosts: readonly string[];
  /** @default new Date() */
  readonly now?: Date;
}

export interface ValidatedCertificate {
  /** The leaf, then the chain, each as clean PEM (whatever else the input held is dropped). */
  readonly certPem: string;
  /** The key as unencrypted PKCS#8 PEM. */
  readonly keyPem: string;
  readonly info: CertificateInfo;
}

const CERT_BLOCK_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const MAX_CERTS = 10;
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_ANY = '2.5.29.37.0';
const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** `2026-01-02T00:00:00Z`: the time as certificates carry it (whole seconds, UTC). */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * True when a certificate should be renewed: less than a third of its lifetime is left
 * (or it is already expired, or its dates make no sense). A 90-day certificate is renewed
 * 30 days before it expires, as ACME clients do.
 */
export function renewalDue(validity: { readonly notBefore: string | Date; readonly notAfter: string | Date }, now: Date = new Date()): boolean {
  const from = new Date(validity.notBefore).getTime();
  const to = new Date(validity.notAfter).getTime();
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) return true;
  return to - now.getTime() < (to - from) / 3;
}

/** True when a DNS name of a certificate covers `host`: equal, or `*.` standing for exactly one label. */
export function nameCovers(name: string, host: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!n.startsWith('*.')) return n === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === n.slice(2) && n.slice(2).includes('.');
}

/** The PEM blocks of certificates in `text`, in order. */
export function splitCertificates(text: string): string[] {
  return [...text.matchAll(CERT_BLOCK_RE)].map((m) => `${m[0].replace(/\r\n/g, '\n')}\n`);
}

/** The facts of the first certificate in `certPem`. */
export function describeCertificate(certPem: string): CertificateInfo {
  const first = splitCertificates(certPem)[0];
  if (first === undefined) throw new InputError('cert: no PEM certificate found', 'certPem');
  return infoOf(new X509Certificate(first), first);
}

function infoOf(cert: X509Certificate, pem: string): CertificateInfo {
  return {
    subject: nameLine(cert.subject),
    issuer: nameLine(cert.issuer),
    names: dnsNames(pem),
    notBefore: isoSeconds(Date.parse(cert.validFrom)),
    notAfter: isoSeconds(Date.parse(cert.validTo)),
    fingerprint256: cert.fingerprint256,
    selfSigned: cert.checkIssued(cert) && cert.verify(cert.publicKey),
  };
}

/** Node writes a distinguished name one attribute per line. */
function nameLine(dn: string): string {
  return dn.split('\n').filter((l) => l !== '').join(', ');
}

/** The DNS subjectAltNames of a certificate (PEM), read with a real ASN.1 parser. */
function dnsNames(pem: string): string[] {
  const san = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
  if (san === null) return [];
  return san.names.items.filter((n) => n.type === 'dns').map((n) => n.value);
}

/** "certificate 2 (CN=Example Intermediate)" */
function label(index: number, cert: X509Certificate): string {
  return `certificate ${index + 1} (${nameLine(cert.subject) || 'no subject'})`;
}

function parseCertificates(field: string, what: string, text: string): { cert: X509Certificate; pem: string }[] {
  const blocks = splitCertificates(text);
  return blocks.map((pem, i) => {
    try {
      return { cert: new X509Certificate(pem), pem };
    } catch (err) {
      throw new InputError(`${what}: certificate ${i + 1} is not a valid X.509 certificate (${reason(err)})`, field);
    }
  });
}

function parseKey(keyPem: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(keyPem)) {
    throw new InputError('key: is encrypted; give it without a passphrase (e.g. openssl pkey -in key.pem -out plain-key.pem)', 'keyPem');
  }
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(keyPem)) {
    throw new InputError('key: no PEM private key found; expected a file with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)', 'keyPem');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (err) {
    throw new InputError(`key: is not a valid private key (${reason(err)})`, 'keyPem');
  }
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new InputError(`key: an RSA key of ${bits} bits is too weak; use 2048 bits or more`, 'keyPem');
  } else if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
    if (EC_CURVES[curve] === undefined) throw new InputError(`key: an ECDSA key on curve ${curve} is not accepted; use P-256, P-384 or P-521`, 'keyPem');
  } else {
    throw new InputError(`key: ${type ?? 'unknown'} keys are not accepted; use an RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521) key`, 'keyPem');
  }
  return key;
}

function checkValidity(what: string, field: string, cert: X509Certificate, nowMs: number, prefix = ''): void {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (nowMs > to) throw new InputError(`${what}: ${prefix}expired on ${isoSeconds(to)}`, field);
  if (nowMs < from) throw new InputError(`${what}: ${prefix}not valid before ${isoSeconds(from)}`, field);
}

/**
 * Validates a custom certificate, its key and chain for `hosts` (see the module comment
 * for what is accepted). Throws an InputError with one line naming what is wrong and the
 * field (`certPem`, `keyPem` or `chainPem`); returns the cleaned PEMs and the facts.
 */
export function validateCustomCertificate(input: CustomCertificateInput): ValidatedCertificate {
  const nowMs = (input.now ?? new Date()).getTime();
  const leafAndMore = parseCertificates('certPem', 'cert', input.certPem);
  if (leafAndMore.length === 0) {
    throw new InputError('cert: no PEM certificate found; expected a file with -----BEGIN CERTIFICATE-----', 'certPem');
  }
  const extra = input.chainPem === undefined ? [] : parseCertificates('chainPem', 'chain', input.chainPem);
  if (input.chainPem !== undefined && input.chainPem.trim() !== '' && extra.length === 0) {
    throw new InputError('chain: no PEM certificate found; expected a file with -----BEGIN CERTIFICATE-----', 'chainPem');
  }
  const all = [...leafAndMore, ...extra];
  const chainField = extra.length > 0 ? 'chainPem' : 'certPem';
  if (all.length > MAX_CERTS) throw new InputError(`chain: ${all.length} certificates are more than the limit of ${MAX_CERTS}`, chainField);
  const key = parseKey(input.keyPem);

  const leaf = all[0] as { cert: X509Certificate; pem: string };
  if (!leaf.cert.checkPrivateKey(key)) throw new InputError("key: does not match the certificate's public key", 'keyPem');
  checkValidity('cert', 'certPem', leaf.cert, nowMs);

  const eku = leaf.cert.keyUsage; // Node's name for the extendedKeyUsage OIDs
  if (eku !== undefined && eku.length > 0 && !eku.includes(EKU_SERVER_AUTH) && !eku.includes(EKU_ANY)) {
    throw new InputError('cert: is not a server certificate (its extendedKeyUsage lacks serverAuth)', 'certPem');
  }

  let names: string[];
  try {
    names = dnsNames(leaf.pem);
  } catch (err) {
    throw new InputError(`cert: its subjectAltName cannot be read (${reason(err)})`, 'certPem');
  }
  for (const host of input.hosts) {
    if (names.some((n) => nameCovers(n, host))) continue;
    const listed = names.length === 0 ? 'it has no DNS subjectAltName; clients ignore the common name' : `names: ${names.join(', ')}`;
    throw new InputError(`cert: does not cover ${host} (${listed})`, 'certPem');
  }

  for (let i = 0; i + 1 < all.length; i++) {
    const child = (all[i] as { cert: X509Certificate }).cert;
    const parent = (all[i + 1] as { cert: X509Certificate }).cert;
    if (!parent.ca) throw new InputError(`chain: ${label(i + 1, parent)} is not a CA certificate; give the leaf first, then each issuer in order`, chainField);
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new InputError(`chain: ${label(i, child)} is not signed by ${label(i + 1, parent)}; give the leaf first, then each issuer in order`, chainField);
    }
    checkValidity('chain', chainField, parent, nowMs, `${label(i + 1, parent)} `);
  }
  const last = (all[all.length - 1] as { cert: X509Certificate }).cert;
  if (last.checkIssued(last) && !last.verify(last.publicKey)) {
    throw new InputError(`${all.length === 1 ? 'cert' : 'chain'}: ${label(all.length - 1, last)} is self-signed but its signature does not verify`, chainField);
  }

  return {
    certPem: all.map((c) => c.pem).join(''),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    info: infoOf(leaf.cert, leaf.pem),
  };
}

function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] ?? text;
}
