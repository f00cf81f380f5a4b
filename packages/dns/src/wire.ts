/**
 * The DNS wire format. Queries are parsed here by hand, strictly and with every length
 * checked before it is used: a query has one question, no answer or authority records and
 * at most two additional records (OPT, perhaps a signature we ignore); anything else is a
 * FORMERR, and a message that cannot even carry a header, or is itself a response, is
 * dropped without a word (so two servers can never answer each other in a loop).
 * Responses are encoded with dns2's Packet codec (name compression included).
 */
import { Packet } from 'dns2';
import type { Resource } from 'dns2';
import { QTYPE, RCODE } from './answer.js';
import type { Answer, Question, Rcode, ResourceRecord } from './answer.js';

/** Queries are small; a larger message is refused as malformed. */
export const MAX_QUERY_BYTES = 4096;
/** Without EDNS a UDP answer must fit 512 bytes (RFC 1035). */
export const CLASSIC_UDP_BYTES = 512;
/** The UDP payload we advertise and never exceed, whatever the client offers (DNS flag day 2020). */
export const EDNS_UDP_BYTES = 1232;
/** The largest message over TCP (a 16-bit length prefix). */
export const MAX_TCP_BYTES = 65_535;
/** RFC 6891: BADVERS, sent for an EDNS version other than 0. */
const RCODE_BADVERS = 16;

export interface Edns {
  /** The UDP payload size the client can take. */
  readonly payloadSize: number;
  readonly version: number;
}

export type ParsedQuery =
  | { readonly kind: 'drop'; readonly reason: string }
  | { readonly kind: 'error'; readonly rcode: Rcode; readonly reason: string; readonly response: Buffer }
  | { readonly kind: 'query'; readonly id: number; readonly rd: number; readonly question: Question; readonly edns: Edns | null };

/** A response with the header only (no question echoed): for queries we cannot or will not read. */
export function headerOnly(id: number, opcode: number, rd: number, rcode: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id & 0xffff, 0);
  b.writeUInt16BE(0x8000 | ((opcode & 0xf) << 11) | ((rd & 1) << 8) | (rcode & 0xf), 2);
  return b;
}

/** Label bytes we echo back: printable ASCII except '.', which dns2's codec could not carry. */
function printableLabel(label: Buffer): boolean {
  for (const byte of label) if (byte < 0x21 || byte > 0x7e || byte === 0x2e) return false;
  return true;
}

/** Skips a (possibly compressed) name at `off`; answers the offset after it, or -1 when it is malformed. */
function skipName(msg: Buffer, off: number): number {
  let total = 1;
  for (;;) {
    if (off >= msg.length) return -1;
    const len = msg[off] as number;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= msg.length ? off + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    total += len + 1;
    if (total > 255) return -1;
    off += 1 + len;
  }
}

/** Reads one query message. Never throws. */
export function parseQuery(msg: Buffer): ParsedQuery {
  if (msg.length < 12) return { kind: 'drop', reason: 'shorter than a DNS header' };
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) !== 0) return { kind: 'drop', reason: 'a response, not a query' };
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags >> 8) & 1;
  const fail = (rcode: Rcode, reason: string): ParsedQuery => ({ kind: 'error', rcode, reason, response: headerOnly(id, opcode, rd, RCODE[rcode]) });
  if (opcode !== 0) return fail('NOTIMP', `opcode ${opcode} is not QUERY`);
  if (msg.length > MAX_QUERY_BYTES) return fail('FORMERR', `${msg.length} bytes is larger than a query may be`);
  const qdcount = msg.readUInt16BE(4);
  const ancount = msg.readUInt16BE(6);
  const nscount = msg.readUInt16BE(8);
  const arcount = msg.readUInt16BE(10);
  if (qdcount !== 1 || ancount !== 0 || nscount !== 0 || arcount > 2) {
    return fail('FORMERR', `section counts ${qdcount}/${ancount}/${nscount}/${arcount} are not those of a query`);
  }
  // The question: plain labels only (compression has nothing to point back to here).
  const labels: Buffer[] = [];
  let off = 12;
  let total = 1;
  for (;;) {
    if (off >= msg.length) return fail('FORMERR', 'the question name runs past the end');
    const len = msg[off++] as number;
    if (len === 0) break;
    if ((len & 0xc0) !== 0) return fail('FORMERR', 'the question name is compressed or has a bad label length');
    total += len + 1;
    if (total > 255 || off + len > msg.length) return fail('FORMERR', 'the question name is too long or truncated');
    labels.push(msg.subarray(off, off + len));
    off += len;
  }
  if (off + 4 > msg.length) return fail('FORMERR', 'the question has no type and class');
  const type = msg.readUInt16BE(off);
  const cls = msg.readUInt16BE(off + 2);
  off += 4;
  let edns: Edns | null = null;
  for (let i = 0; i < arcount; i++) {
    off = skipName(msg, off);
    if (off < 0 || off + 10 > msg.length) return fail('FORMERR', 'an additional record is truncated');
    const rtype = msg.readUInt16BE(off);
    const rclass = msg.readUInt16BE(off + 2);
    const ttl = msg.readUInt32BE(off + 4);
    const rdlength = msg.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlength > msg.length) return fail('FORMERR', 'an additional record is truncated');
    if (rtype === QTYPE.OPT) {
      if (edns !== null) return fail('FORMERR', 'two OPT records');
      edns = { payloadSize: rclass, version: (ttl >>> 16) & 0xff };
    }
    off += rdlength;
  }
  if (!labels.every(printableLabel)) return fail('REFUSED', 'the question name has bytes no name of this zone has');
  const name = labels.map((l) => l.toString('latin1')).join('.');
  return { kind: 'query', id, rd, question: { name, type, class: cls }, edns };
}

/** The largest UDP answer for a query: 512 bytes without EDNS, else what the client offers, capped. */
export function udpLimit(edns: Edns | null): number {
  if (edns === null) return CLASSIC_UDP_BYTES;
  return Math.min(Math.max(edns.payloadSize, CLASSIC_UDP_BYTES), EDNS_UDP_BYTES);
}

function resource(rr: ResourceRecord): Resource {
  const base = { name: rr.name, class: 1, ttl: rr.ttl };
  switch (rr.type) {
    case 'A':
      return new Packet.Resource({ ...base, type: QTYPE.A, address: rr.address });
    case 'AAAA':
      return new Packet.Resource({ ...base, type: QTYPE.AAAA, address: rr.address });
    case 'NS':
      return new Packet.Resource({ ...base, type: QTYPE.NS, ns: rr.host });
    case 'SOA':
      return new Packet.Resource({
        ...base,
        type: QTYPE.SOA,
        primary: rr.mname,
        admin: rr.rname,
        serial: rr.serial,
        refresh: rr.refresh,
        retry: rr.retry,
        expiration: rr.expire,
        minimum: rr.minimum,
      });
  }
}

/** Our OPT record: EDNS version 0, our payload size, no options. */
function optRecord(): Resource {
  return Object.assign(new Packet.Resource({ name: '', type: QTYPE.OPT, class: EDNS_UDP_BYTES, ttl: 0 }), { rdata: [] });
}

/**
 * Encodes the response to a parsed query. Past `maxBytes` the answer is truncated to its
 * header and question with the TC bit set, so the client asks again over TCP.
 */
export function encodeResponse(query: Extract<ParsedQuery, { kind: 'query' }>, answer: Answer, maxBytes: number): Buffer {
  const badVersion = query.edns !== null && query.edns.version !== 0;
  const build = (truncated: boolean): Buffer => {
    const p = new Packet();
    p.header = new Packet.Header({
      id: query.id,
      qr: 1,
      opcode: 0,
      aa: answer.authoritative && !badVersion ? 1 : 0,
      tc: truncated ? 1 : 0,
      rd: query.rd ? 1 : 0,
      ra: 0,
      rcode: badVersion ? RCODE_BADVERS : RCODE[answer.rcode],
    });
    const q = new Packet.Question(query.question.name, query.question.type, query.question.class);
    // dns2 swaps a 0 type or class for ANY; the echo must be exactly what was asked.
    q.type = query.question.type;
    q.class = query.question.class;
    p.questions = [q];
    const full = !truncated && !badVersion;
    p.answers = full ? answer.answers.map(resource) : [];
    p.authorities = full ? answer.authorities.map(resource) : [];
    p.additionals = [...(full ? answer.additionals.map(resource) : []), ...(query.edns !== null ? [optRecord()] : [])];
    return p.toBuffer();
  };
  try {
    const out = build(false);
    return out.length <= maxBytes ? out : build(true);
  } catch {
    // A name the codec cannot write (it was checked on the way in, so this is a bug): say so briefly.
    return headerOnly(query.id, 0, query.rd, RCODE.SERVFAIL);
  }
}
