/**
 * Environment certificates: the platform CA (created at the first start under LANES_HOME,
 * read back on later starts), automatic issuance and renewal of a certificate for every
 * active environment's host, custom certificates users bring (validated by @lanes/pki),
 * and the TLS material the routing table carries to the gateway.
 *
 * Issuance runs inside the reconcile pass (every second and on every change): the check
 * is in memory and costs nothing until a certificate is missing, due for renewal (a third
 * of its lifetime left), issued for another host name or by another CA. A failed issuance
 * is retried after a minute, not on every pass.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  checkCa,
  createCa,
  describeCertificate,
  issueCertificate,
  nameCovers,
  renewalDue,
  validateCustomCertificate,
  type CertificateInfo,
  type KeyPairPem,
} from '@lanes/pki';
import { ConflictError, environmentHost, NotFoundError, type TlsMaterial } from '@lanes/spec';
import type { Environment, StoredCertificate, Store } from '@lanes/store';
import type { Config } from './config.js';

/** The CA certificate and its key, next to admin.token (both mode 0600). */
export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
/** After a failed issuance, the environment waits this long before the next attempt. @default 60000 */
const RETRY_MS = 60_000;

/** What the API shows about an environment's certificate (never the key). */
export interface CertificateView extends CertificateInfo {
  readonly source: 'platform' | 'custom';
  readonly host: string;
  /** When the platform renews it (a third of its lifetime left); null for a custom certificate. */
  readonly renewAfter: string | null;
}

interface Entry {
  readonly row: StoredCertificate;
  readonly tls: TlsMaterial;
  /** The leaf's DNS names. */
  readonly names: readonly string[];
  /** Signed by the CA in force (false: a CA created since, the certificate is replaced). */
  readonly byCa: boolean;
}

type EventFn = (e: { tenant?: string; environment?: string; reason: string; object?: string; message: string }) => Promise<void>;

export class Certificates {
  readonly #store: Store;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #event: EventFn;
  #ca: (KeyPairPem & { readonly x509: X509Certificate }) | null = null;
  readonly #entries = new Map<string, Entry>();
  #loaded = false;
  readonly #retryAt = new Map<string, number>();
  /** Custom certificates already warned about (by environment id and notAfter). */
  readonly #warned = new Set<string>();

  constructor(store: Store, config: Config, log: Logger, event: EventFn) {
    this.#store = store;
    this.#config = config;
    this.#log = log;
    this.#event = event;
  }

  /** Loads the CA (creating it at the first start) and the stored certificates. */
  async start(): Promise<void> {
    const ca = await loadOrCreateCa(this.#config.home, this.#log);
    this.#ca = { ...ca, x509: new X509Certificate(ca.certPem) };
    for (const row of await this.#store.listCertificates()) this.#remember(row);
    this.#loaded = true;
  }

  /** The CA certificate (PEM) clients trust to reach environments over HTTPS. */
  get caPem(): string {
    return this.#requireCa().certPem;
  }

  #requireCa(): KeyPairPem & { readonly x509: X509Certificate } {
    if (this.#ca === null) throw new Error('certificates: start() has not run');
    return this.#ca;
  }

  #host(env: Environment): string {
    return environmentHost(env.name, env.tenant, this.#config.domain);
  }

  #remember(row: StoredCertificate): Entry {
    const ca = this.#requireCa();
    let names: readonly string[] = [];
    let byCa = false;
    try {
      names = describeCertificate(row.certPem).names;
      const leaf = new X509Certificate(row.certPem);
      byCa = leaf.checkIssued(ca.x509) && leaf.verify(ca.x509.publicKey);
    } catch (err) {
      this.#log.warn({ environmentId: row.environmentId, err: err instanceof Error ? err.message : String(err) }, 'stored certificate unreadable');
    }
    const entry: Entry = { row, names, byCa, tls: Object.freeze({ certPem: row.certPem, keyPem: row.keyPem, source: row.source, notAfter: row.notAfter }) };
    this.#entries.set(row.environmentId, entry);
    return entry;
  }

  /** The TLS material of an environment for the routing table; null before it has a certificate. */
  tlsOf(environmentId: string): TlsMaterial | null {
    return this.#entries.get(environmentId)?.tls ?? null;
  }

  /**
   * One pass over the environments: issues a certificate for every active one that has
   * none, renews platform certificates that are due (or name another host, or were issued
   * by another CA), warns once about a custom certificate near its end, and forgets the
   * certificates of environments that are gone.
   */
  async reconcile(envs: readonly Environment[], now: Date = new Date()): Promise<void> {
    if (!this.#loaded) return;
    const ids = new Set(envs.map((e) => e.id));
    for (const id of this.#entries.keys()) if (!ids.has(id)) this.#entries.delete(id);
    for (const env of envs) {
      if (env.phase !== 'active') continue;
      const host = this.#host(env);
      const entry = this.#entries.get(env.id);
      if (entry?.row.source === 'custom') {
        await this.#warnCustom(env, host, entry, now);
        continue;
      }
      const why =
        entry === undefined
          ? null
          : !entry.names.some((n) => nameCovers(n, host))
            ? `it does not cover ${host}`
            : !entry.byCa
              ? 'it was issued by another CA'
              : renewalDue(entry.row, now)
                ? 'less than a third of its lifetime is left'
                : undefined;
      if (why === undefined) continue;
      if ((this.#retryAt.get(env.id) ?? 0) > now.getTime()) continue;
      try {
        await this.#issue(env, host, why, now);
        this.#retryAt.delete(env.id);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // deleted meanwhile
        this.#retryAt.set(env.id, now.getTime() + RETRY_MS);
        this.#log.error({ tenant: env.tenant, environment: env.name, err: err instanceof Error ? err.message : String(err) }, 'certificate issuance failed');
      }
    }
  }

  /** Issues (or renews: `why` says why) a platform certificate; a custom one set meanwhile stays. */
  async #issue(env: Environment, host: string, why: string | null, now: Date): Promise<Entry> {
    const issued = await issueCertificate(this.#requireCa(), [host], { lifetimeMs: this.#config.certLifetimeMs, now });
    const row = await this.#store.putCertificate({ environmentId: env.id, source: 'platform', ...issued }, 'platform-only');
    if (row === null) {
      const current = await this.#store.getCertificate(env.id);
      if (current === null) throw new NotFoundError(`environment ${env.tenant}/${env.name} has no certificate`);
      return this.#remember(current);
    }
    const entry = this.#remember(row);
    const scope = { tenant: env.tenant, environment: env.name, object: `certificate/${host}` };
    if (why === null) {
      this.#log.info({ tenant: env.tenant, environment: env.name, host, notAfter: row.notAfter }, 'certificate issued');
      await this.#event({ ...scope, reason: 'CertificateIssued', message: `issued a certificate for ${host} by the platform CA, valid until ${row.notAfter}` });
    } else {
      this.#log.info({ tenant: env.tenant, environment: env.name, host, notAfter: row.notAfter, why }, 'certificate renewed');
      await this.#event({ ...scope, reason: 'CertificateRenewed', message: `renewed the certificate of ${host} (${why}); valid until ${row.notAfter}` });
    }
    return entry;
  }

  async #warnCustom(env: Environment, host: string, entry: Entry, now: Date): Promise<void> {
    if (!renewalDue(entry.row, now)) return;
    const key = `${env.id}/${entry.row.notAfter}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    const expired = Date.parse(entry.row.notAfter) <= now.getTime();
    await this.#event({
      tenant: env.tenant,
      environment: env.name,
      reason: 'CertificateExpiring',
      object: `certificate/${host}`,
      message: `the custom certificate of ${host} ${expired ? 'expired' : 'expires'} on ${entry.row.notAfter}; replace it (lanes cert set) or go back to a platform certificate (lanes cert clear)`,
    });
  }

  /** `GET …/certificate`. */
  async view(env: Environment): Promise<CertificateView> {
    const row = await this.#store.getCertificate(env.id);
    if (row === null) throw new NotFoundError(`environment ${env.tenant}/${env.name} has no certificate yet; the platform issues one within seconds`);
    return this.#viewOf(env, row);
  }

  #viewOf(env: Environment, row: StoredCertificate): CertificateView {
    const info = describeCertificate(row.certPem);
    const from = Date.parse(row.notBefore);
    const to = Date.parse(row.notAfter);
    return {
      source: row.source,
      host: this.#host(env),
      ...info,
      renewAfter: row.source === 'platform' ? new Date(to - (to - from) / 3).toISOString() : null,
    };
  }

  /** `PUT …/certificate`: validates and stores a custom certificate (the previous one stays when it is refused). */
  async setCustom(env: Environment, input: { certPem: string; keyPem: string; chainPem?: string | undefined }): Promise<CertificateView> {
    if (env.phase !== 'active') throw new ConflictError(`environment ${env.tenant}/${env.name} is being deleted`);
    const host = this.#host(env);
    const valid = validateCustomCertificate({ certPem: input.certPem, keyPem: input.keyPem, chainPem: input.chainPem, hosts: [host] });
    const row = await this.#store.putCertificate({
      environmentId: env.id,
      certPem: valid.certPem,
      keyPem: valid.keyPem,
      source: 'custom',
      notBefore: valid.info.notBefore,
      notAfter: valid.info.notAfter,
    });
    if (row === null) throw new NotFoundError(`environment ${env.tenant}/${env.name} not found`);
    this.#remember(row);
    this.#log.info({ tenant: env.tenant, environment: env.name, host, subject: valid.info.subject, notAfter: valid.info.notAfter }, 'custom certificate set');
    await this.#event({
      tenant: env.tenant,
      environment: env.name,
      reason: 'CertificateSet',
      object: `certificate/${host}`,
      message: `custom certificate for ${host} set: ${valid.info.subject}, issued by ${valid.info.issuer}, valid until ${valid.info.notAfter}`,
    });
    return this.#viewOf(env, row);
  }

  /** `DELETE …/certificate`: back to a platform certificate, issued at once so HTTPS never stops. */
  async clear(env: Environment): Promise<CertificateView> {
    if (env.phase !== 'active') throw new ConflictError(`environment ${env.tenant}/${env.name} is being deleted`);
    const host = this.#host(env);
    const current = await this.#store.getCertificate(env.id);
    if (current?.source === 'platform') return this.#viewOf(env, current);
    if (current !== null) await this.#store.deleteCertificate(env.id);
    this.#entries.delete(env.id);
    const entry = await this.#issue(env, host, null, new Date());
    if (current !== null) {
      await this.#event({
        tenant: env.tenant,
        environment: env.name,
        reason: 'CertificateCleared',
        object: `certificate/${host}`,
        message: `custom certificate of ${host} removed; served with a platform certificate valid until ${entry.row.notAfter}`,
      });
    }
    return this.#viewOf(env, entry.row);
  }
}

/**
 * The platform CA: read from LANES_HOME, or created there (mode 0600) when neither file
 * exists. A half-present or broken pair stops the start: making a new CA silently would
 * break every client that trusts the old one.
 */
export async function loadOrCreateCa(home: string, log: Logger): Promise<KeyPairPem> {
  const certFile = path.join(home, CA_CERT_FILE);
  const keyFile = path.join(home, CA_KEY_FILE);
  const [certPem, keyPem] = await Promise.all([readOptional(certFile), readOptional(keyFile)]);
  if (certPem !== null && keyPem !== null) {
    try {
      checkCa({ certPem, keyPem });
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)} (${certFile}, ${keyFile}); remove both files to create a new CA, which clients must then trust instead`);
    }
    return { certPem, keyPem };
  }
  if (certPem !== null || keyPem !== null) {
    throw new Error(`ca: ${certPem === null ? certFile : keyFile} is missing while ${certPem === null ? keyFile : certFile} exists; restore it, or remove both to create a new CA`);
  }
  const ca = await createCa();
  await writePrivate(keyFile, ca.keyPem);
  await writePrivate(certFile, ca.certPem);
  log.info({ file: certFile, subject: describeCertificate(ca.certPem).subject, notAfter: ca.notAfter }, 'platform CA created');
  return { certPem: ca.certPem, keyPem: ca.keyPem };
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'code' in err && err.code === 'ENOENT') return null;
    throw err;
  }
}

async function writePrivate(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
