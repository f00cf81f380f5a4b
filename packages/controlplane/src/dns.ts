/**
 * DNS in the control plane: the failover records API (`/v1/dns/records`), the zone
 * snapshot the authoritative DNS server follows (`GET /v1/dns/watch`, node token), and
 * the `--public-address` list its host records answer with. The snapshot is built from
 * the active environments (one host each) and the stored failover records; its SOA serial
 * goes up by one with every change, starting from the clock (seconds) at each start.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InputError, environmentHost, type DnsZoneSnapshot } from '@lanes/spec';
import type { DnsRecord, Environment } from '@lanes/store';
import { parseInput } from './http-errors.js';
import { Hub } from './hub.js';
import type { Platform } from './platform.js';

/** At most this many public addresses per family: every answer fits a classic 512-byte UDP message. */
const MAX_PUBLIC_ADDRESSES = 8;
/** The name server's own name under the apex (the DNS server answers it with the public addresses). */
const NS_LABEL = 'ns';
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** An IPv6 address in canonical form (as the DNS server writes it), or null. */
function canonicalIPv6(v: string): string | null {
  if (!isIPv6(v) || v.includes('%')) return null;
  try {
    return new URL(`http://[${v}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** `--public-address 203.0.113.10,2001:db8::10` (repeatable): the addresses host records answer with. */
export function parsePublicAddresses(field: string, text: string): { readonly v4: readonly string[]; readonly v6: readonly string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const raw of text.split(',').map((a) => a.trim()).filter((a) => a !== '')) {
    const six = canonicalIPv6(raw);
    if (isIPv4(raw)) v4.push(raw);
    else if (six !== null) v6.push(six);
    else throw new InputError(`${field}: ${JSON.stringify(raw)} is not an IP address; use e.g. --public-address 203.0.113.10,2001:db8::10`, field);
  }
  if (v4.length + v6.length === 0) throw new InputError(`${field}: give at least one address, e.g. 127.0.0.1`, field);
  if (v4.length > MAX_PUBLIC_ADDRESSES || v6.length > MAX_PUBLIC_ADDRESSES) throw new InputError(`${field}: at most ${MAX_PUBLIC_ADDRESSES} addresses per family`, field);
  return Object.freeze({ v4: Object.freeze([...new Set(v4)]), v6: Object.freeze([...new Set(v6)]) });
}

/** The parts of the control plane's configuration the zone is built from. */
export interface DnsConfigView {
  readonly domain: string;
  readonly dnsTtl: number;
  readonly publicAddressList: { readonly v4: readonly string[]; readonly v6: readonly string[] };
}

/** The zone as the DNS server gets it. Pure: environments and records in, snapshot out. */
export function buildDnsSnapshot(config: DnsConfigView, envs: readonly Environment[], records: readonly DnsRecord[], serial: number): DnsZoneSnapshot {
  const hosts = [...new Set(envs.filter((e) => e.phase === 'active').map((e) => environmentHost(e.name, e.tenant, config.domain)))].sort();
  const taken = new Set(hosts);
  return {
    domain: config.domain,
    serial: serial >>> 0,
    ttl: config.dnsTtl,
    addresses: { v4: [...config.publicAddressList.v4], v6: [...config.publicAddressList.v6] },
    hosts,
    // A record whose name an environment took after it was set yields to the environment.
    failover: records
      .filter((r) => !taken.has(r.name))
      .map((r) => ({ name: r.name, ttl: r.ttl, primary: { address: r.primary.address, check: r.primary.check }, secondary: { address: r.secondary.address, check: r.secondary.check } })),
  };
}

/** The zone feed: the latest snapshot per change, fanned out to the DNS servers' watch streams. */
export class DnsFeed {
  readonly hub = new Hub<DnsZoneSnapshot>();
  readonly #config: DnsConfigView;
  #serial = Math.floor(Date.now() / 1000);

  constructor(config: DnsConfigView) {
    this.#config = config;
  }

  /** Publishes the zone if it changed (the serial aside); true when it did. */
  publish(envs: readonly Environment[], records: readonly DnsRecord[]): boolean {
    const candidate = buildDnsSnapshot(this.#config, envs, records, this.#serial + 1);
    const changed = this.hub.publish('zone', candidate, encodeZone, (z) => JSON.stringify({ ...z, serial: 0 }));
    if (changed) this.#serial += 1;
    return changed;
  }

  get snapshot(): DnsZoneSnapshot | undefined {
    return this.hub.latest('zone');
  }
}

function encodeZone(z: DnsZoneSnapshot): string {
  return `${JSON.stringify({ type: 'zone', zone: z })}\n`;
}

// ---- the records API ----------------------------------------------------------------

const isIp = (v: string): boolean => isIPv4(v) || canonicalIPv6(v) !== null;
const isHttpUrl = (v: string): boolean => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
};

const checkSchema = z
  .strictObject({
    url: z.string().max(2048).refine(isHttpUrl, 'must be an http(s) URL, e.g. http://192.0.2.10/healthz'),
    intervalMs: z.number().int().min(200, 'must be at least 200').max(3_600_000, 'must be at most 3600000').optional(),
    timeoutMs: z.number().int().min(10, 'must be at least 10').max(60_000, 'must be at most 60000').optional(),
    healthyThreshold: z.number().int().min(1, 'must be 1-10').max(10, 'must be 1-10').optional(),
    unhealthyThreshold: z.number().int().min(1, 'must be 1-10').max(10, 'must be 1-10').optional(),
  })
  .transform((c) => {
    const intervalMs = c.intervalMs ?? 10_000;
    return { url: c.url, intervalMs, timeoutMs: c.timeoutMs ?? Math.min(2_000, intervalMs), healthyThreshold: c.healthyThreshold ?? 2, unhealthyThreshold: c.unhealthyThreshold ?? 3 };
  })
  .refine((c) => c.timeoutMs <= c.intervalMs, { message: 'must not exceed intervalMs (a check ends before the next starts)', path: ['timeoutMs'] });
const addressSchema = z.string().max(64).refine(isIp, 'must be an IPv4 or IPv6 address');
const recordBody = z.strictObject({
  ttl: z.number().int().min(0, 'must be 0-86400 seconds').max(86_400, 'must be 0-86400 seconds').optional(),
  primary: z.strictObject({ address: addressSchema, check: checkSchema }),
  secondary: z.strictObject({ address: addressSchema, check: checkSchema.nullable().optional() }),
});

/** A record name: lower case, no trailing dot, strictly inside the platform domain, not the name server's. */
export function checkRecordName(value: string, domain: string): string {
  const name = value.toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  if (name.length === 0 || name.length > 253 || !labels.every((l) => LABEL_RE.test(l))) {
    throw new InputError(`name: ${JSON.stringify(value)} is not a DNS name; use labels of a-z, 0-9 and '-', e.g. www.dr.${domain}`, 'name');
  }
  if (!name.endsWith(`.${domain}`)) throw new InputError(`name: ${name} is not inside the platform domain ${domain}; use e.g. www.dr.${domain}`, 'name');
  if (name === `${NS_LABEL}.${domain}`) throw new InputError(`name: ${name} is the platform's name server; pick another name`, 'name');
  return name;
}

function canonicalAddress(a: string): string {
  return isIPv4(a) ? a : (canonicalIPv6(a) ?? a);
}

function describeTarget(t: { address: string; check: DnsRecord['secondary']['check'] }): string {
  return t.check === null ? `${t.address} (unchecked)` : `${t.address} (checked at ${t.check.url} every ${t.check.intervalMs / 1000}s)`;
}

function recordOut(r: DnsRecord) {
  return { name: r.name, ttl: r.ttl, primary: r.primary, secondary: r.secondary, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

/** `PUT /v1/dns/records/:name`: creates or replaces a failover record; an event says what it is now. */
export async function setDnsRecord(platform: Platform, rawName: string, body: unknown): Promise<{ record: DnsRecord; created: boolean }> {
  const domain = platform.config.domain;
  const name = checkRecordName(rawName, domain);
  const input = parseInput(recordBody, body);
  const env = (await platform.store.listEnvironments()).find((e) => environmentHost(e.name, e.tenant, domain) === name);
  if (env !== undefined) throw new InputError(`name: ${name} is the host of environment ${env.tenant}/${env.name}; pick a name no environment serves`, 'name');
  const { created, ...record } = await platform.store.putDnsRecord({
    name,
    ttl: input.ttl ?? platform.config.dnsTtl,
    primary: { address: canonicalAddress(input.primary.address), check: input.primary.check },
    secondary: { address: canonicalAddress(input.secondary.address), check: input.secondary.check ?? null },
  });
  await platform.event({
    reason: created ? 'DnsRecordCreated' : 'DnsRecordReplaced',
    object: `dns/${name}`,
    message: `dns record ${name} ${created ? 'created' : 'replaced'}: primary ${describeTarget(record.primary)}, secondary ${describeTarget(record.secondary)}, ttl ${record.ttl}s`,
  });
  return { record, created };
}

export async function deleteDnsRecord(platform: Platform, rawName: string): Promise<void> {
  const name = checkRecordName(rawName, platform.config.domain);
  await platform.store.deleteDnsRecord(name);
  await platform.event({ reason: 'DnsRecordDeleted', object: `dns/${name}`, message: `dns record ${name} deleted` });
}

type OpenStream = (req: FastifyRequest, reply: FastifyReply, subscribe: (send: (line: string) => void) => () => void) => void;

/** The DNS routes. `openStream` is the API's NDJSON stream helper (pings, cleanup). */
export function registerDnsApi(app: FastifyInstance, platform: Platform, openStream: OpenStream): void {
  app.get('/v1/dns/records', async () => ({ items: (await platform.store.listDnsRecords()).map(recordOut) }));
  app.put<{ Params: { name: string } }>('/v1/dns/records/:name', async (req, reply) => {
    const { record, created } = await setDnsRecord(platform, req.params.name, req.body);
    return reply.code(created ? 201 : 200).send(recordOut(record));
  });
  app.delete<{ Params: { name: string } }>('/v1/dns/records/:name', async (req, reply) => {
    await deleteDnsRecord(platform, req.params.name);
    return reply.code(204).send();
  });
  app.get('/v1/dns/watch', async (req, reply) => {
    openStream(req, reply, (send) => platform.dns.hub.subscribe('zone', send, encodeZone));
  });
}
