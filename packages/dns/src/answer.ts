/**
 * The answer logic, pure: one question and the zone in force give the response code and
 * the records of each section. The wire format is wire.ts's job; which failover target
 * answers comes in as a function (failover.ts decides it from health).
 */
import { isIPv4 } from 'node:net';
import type { DnsFailoverRecord, DnsTarget } from '@lanes/spec';
import type { Zone } from './zone.js';
import { inZone } from './zone.js';

export const QTYPE = Object.freeze({ A: 1, NS: 2, SOA: 6, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 });
export const QCLASS = Object.freeze({ IN: 1, ANY: 255 });

export type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED';
export const RCODE: Readonly<Record<Rcode, number>> = Object.freeze({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 });

/** SOA timers in seconds (besides the minimum, which is the zone's TTL). */
export const SOA_TIMERS = Object.freeze({ refresh: 3600, retry: 600, expire: 1_209_600 });

export type ResourceRecord =
  | { readonly name: string; readonly ttl: number; readonly type: 'A'; readonly address: string }
  | { readonly name: string; readonly ttl: number; readonly type: 'AAAA'; readonly address: string }
  | { readonly name: string; readonly ttl: number; readonly type: 'NS'; readonly host: string }
  | {
      readonly name: string;
      readonly ttl: number;
      readonly type: 'SOA';
      readonly mname: string;
      readonly rname: string;
      readonly serial: number;
      readonly refresh: number;
      readonly retry: number;
      readonly expire: number;
      readonly minimum: number;
    };

export interface Question {
  /** As asked (case kept, no trailing dot). */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface Answer {
  readonly rcode: Rcode;
  /** The AA bit: set on every answer from the zone (NOERROR, NXDOMAIN), not on REFUSED or SERVFAIL. */
  readonly authoritative: boolean;
  readonly answers: readonly ResourceRecord[];
  readonly authorities: readonly ResourceRecord[];
  readonly additionals: readonly ResourceRecord[];
}

/** Which target a failover record answers with right now. */
export type ActiveTarget = (record: DnsFailoverRecord) => DnsTarget;

const empty = (rcode: Rcode, authoritative = false): Answer => ({ rcode, authoritative, answers: [], authorities: [], additionals: [] });

export function soaRecord(zone: Zone): ResourceRecord {
  const s = zone.snapshot;
  return {
    name: zone.domain,
    ttl: s.ttl,
    type: 'SOA',
    mname: zone.nsName,
    rname: `hostmaster.${zone.domain}`,
    serial: s.serial,
    ...SOA_TIMERS,
    minimum: s.ttl,
  };
}

function addressRecords(name: string, ttl: number, v4: readonly string[], v6: readonly string[]): ResourceRecord[] {
  return [...v4.map((address): ResourceRecord => ({ name, ttl, type: 'A', address })), ...v6.map((address): ResourceRecord => ({ name, ttl, type: 'AAAA', address }))];
}

/** Every record the zone has at `name` (lower case). */
export function recordsAt(zone: Zone, name: string, active: ActiveTarget): ResourceRecord[] {
  const s = zone.snapshot;
  const out: ResourceRecord[] = [];
  if (name === zone.domain) out.push(soaRecord(zone), { name, ttl: s.ttl, type: 'NS', host: zone.nsName });
  if (zone.addressNames.has(name)) out.push(...addressRecords(name, s.ttl, s.addresses.v4, s.addresses.v6));
  const record = zone.failover.get(name);
  if (record !== undefined) {
    const t = active(record);
    out.push(isIPv4(t.address) ? { name, ttl: record.ttl, type: 'A', address: t.address } : { name, ttl: record.ttl, type: 'AAAA', address: t.address });
  }
  return out;
}

const TYPE_NUMBER: Readonly<Record<ResourceRecord['type'], number>> = { A: QTYPE.A, AAAA: QTYPE.AAAA, NS: QTYPE.NS, SOA: QTYPE.SOA };

/**
 * Answers one question. `zone` null (no snapshot yet): SERVFAIL. A name outside the
 * platform domain, a class other than IN, or a zone transfer: REFUSED. A name that does
 * not exist: NXDOMAIN with the SOA (negative caching, RFC 2308). A name without records
 * of the asked type: NOERROR, no answer, the SOA.
 */
export function answerQuestion(zone: Zone | null, q: Question, active: ActiveTarget): Answer {
  if (zone === null) return empty('SERVFAIL');
  if (q.class !== QCLASS.IN && q.class !== QCLASS.ANY) return empty('REFUSED');
  const name = q.name.toLowerCase().replace(/\.$/, '');
  if (!inZone(name, zone.domain)) return empty('REFUSED');
  if (q.type === QTYPE.AXFR || q.type === QTYPE.IXFR) return empty('REFUSED');
  if (!zone.existing.has(name)) return { ...empty('NXDOMAIN', true), authorities: [soaRecord(zone)] };
  const all = recordsAt(zone, name, active);
  const answers = q.type === QTYPE.ANY ? all : all.filter((r) => TYPE_NUMBER[r.type] === q.type);
  if (answers.length === 0) return { ...empty('NOERROR', true), authorities: [soaRecord(zone)] };
  // The name server's addresses ride along with the NS answer, as a resolver will ask for them next.
  const additionals = answers.some((r) => r.type === 'NS') ? recordsAt(zone, zone.nsName, active).filter((r) => r.type === 'A' || r.type === 'AAAA') : [];
  return { rcode: 'NOERROR', authoritative: true, answers, authorities: [], additionals };
}
