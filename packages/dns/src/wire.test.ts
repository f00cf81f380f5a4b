import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packet } from 'dns2';
import { answerQuestion, QCLASS, QTYPE } from './answer.js';
import { DOMAIN, snapshot } from './test-helpers.js';
import { encodeResponse, parseQuery, udpLimit, type ParsedQuery } from './wire.js';
import { buildZone, validateSnapshot } from './zone.js';

/** A query as dig would send it, written by dns2's encoder. */
function query(name: string, type: number, opts: { id?: number; edns?: number | null; flags?: number } = {}): Buffer {
  const p = new Packet();
  p.header = new Packet.Header({ id: opts.id ?? 4242, rd: 1 });
  const q = new Packet.Question(name, type, QCLASS.IN);
  p.questions = [q];
  if (opts.edns !== null) p.additionals = [Object.assign(new Packet.Resource({ name: '', type: QTYPE.OPT, class: opts.edns ?? 1232, ttl: 0 }), { rdata: [] })];
  const b = p.toBuffer();
  if (opts.flags !== undefined) b.writeUInt16BE(opts.flags, 2);
  return b;
}

const zone = buildZone(validateSnapshot(snapshot({ addresses: { v4: Array.from({ length: 8 }, (_, i) => `192.0.2.${i + 1}`), v6: Array.from({ length: 8 }, (_, i) => `2001:db8::${i + 1}`) } })));

function respond(msg: Buffer, maxBytes?: number): Buffer | null {
  const q = parseQuery(msg);
  if (q.kind === 'drop') return null;
  if (q.kind === 'error') return q.response;
  return encodeResponse(q, answerQuestion(zone, q.question, (r) => r.primary), maxBytes ?? udpLimit(q.edns));
}

/** A tiny deterministic generator, so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 0x1_0000_0000;
  };
}

describe('wire format', () => {
  it('parses a query with EDNS and echoes id, question (case kept) and flags in the answer', () => {
    const q = parseQuery(query(`Prod.Acme.${DOMAIN}`, QTYPE.A, { id: 777 }));
    assert.equal(q.kind, 'query');
    assert.ok(q.kind === 'query');
    assert.deepEqual(q.question, { name: `Prod.Acme.${DOMAIN}`, type: QTYPE.A, class: QCLASS.IN });
    assert.deepEqual(q.edns, { payloadSize: 1232, version: 0 });
    const r = Packet.parse(encodeResponse(q, answerQuestion(zone, q.question, (x) => x.primary), 1232));
    assert.equal(r.header.id, 777);
    assert.equal(r.header.qr, 1);
    assert.equal(r.header.aa, 1);
    assert.equal(r.header.rd, 1);
    assert.equal(r.header.rcode, 0);
    assert.equal(r.questions[0]?.name, `Prod.Acme.${DOMAIN}`);
    assert.deepEqual(r.answers.map((a) => a.address), zone.snapshot.addresses.v4);
    assert.equal(r.additionals.find((a) => a.type === QTYPE.OPT)?.class, 1232);
  });

  it('truncates a UDP answer that does not fit, with TC set, and answers in full over TCP', () => {
    const any = query(DOMAIN, QTYPE.ANY, { edns: null });
    const small = respond(any);
    assert.ok(small !== null && small.length <= 512);
    const full = respond(any, 65_535);
    assert.ok(full !== null);
    const parsedSmall = Packet.parse(small);
    const parsedFull = Packet.parse(full);
    if (full.length > 512) {
      assert.equal(parsedSmall.header.tc, 1);
      assert.equal(parsedSmall.answers.length, 0);
    }
    assert.equal(parsedFull.header.tc, 0);
    assert.equal(parsedFull.answers.length, 18);
  });

  it('drops messages too short to answer and responses; answers FORMERR, NOTIMP and BADVERS where it can', () => {
    assert.equal(parseQuery(Buffer.alloc(5)).kind, 'drop');
    assert.equal(parseQuery(query(DOMAIN, QTYPE.A, { flags: 0x8100 })).kind, 'drop', 'QR set: a response');
    const kinds = (b: Buffer): string => {
      const q: ParsedQuery = parseQuery(b);
      return q.kind === 'error' ? q.rcode : q.kind;
    };
    assert.equal(kinds(query(DOMAIN, QTYPE.A, { flags: 0x2800 })), 'NOTIMP', 'opcode UPDATE');
    const twoQuestions = query(DOMAIN, QTYPE.A);
    twoQuestions.writeUInt16BE(2, 4);
    assert.equal(kinds(twoQuestions), 'FORMERR');
    const allCounts = Buffer.from([0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.equal(kinds(allCounts), 'FORMERR');
    const truncated = query(`prod.acme.${DOMAIN}`, QTYPE.A, { edns: null }).subarray(0, 20);
    assert.equal(kinds(truncated), 'FORMERR');
    const pointer = Buffer.concat([query(DOMAIN, QTYPE.A, { edns: null }).subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(kinds(pointer), 'FORMERR');
    const formerr = parseQuery(twoQuestions);
    assert.ok(formerr.kind === 'error');
    const h = Packet.parse(formerr.response).header;
    assert.equal(h.qr, 1);
    assert.equal(h.rcode, 1);
    assert.equal(h.id, 4242);
    const v1 = query(DOMAIN, QTYPE.SOA);
    // The OPT record's TTL is the last-but-two field: version 1 in its second byte.
    v1.writeUInt8(1, v1.length - 5);
    const badvers = respond(v1);
    assert.ok(badvers !== null);
    const bv = Packet.parse(badvers);
    assert.equal(bv.header.rcode, 16, 'BADVERS (extended rcode through OPT)');
  });

  it('never throws on random or mutated input', () => {
    const rand = prng(20261125);
    const seeds = [query(`prod.acme.${DOMAIN}`, QTYPE.A), query(DOMAIN, QTYPE.SOA, { edns: null }), query(DOMAIN, QTYPE.NS)];
    for (let i = 0; i < 3000; i++) {
      let msg: Buffer;
      if (i % 3 === 0) {
        msg = Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)));
      } else {
        msg = Buffer.from(seeds[i % seeds.length] as Buffer);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips; f++) msg[Math.floor(rand() * msg.length)] = Math.floor(rand() * 256);
        if (rand() < 0.2) msg = msg.subarray(0, Math.floor(rand() * msg.length));
      }
      const out = respond(msg);
      if (out !== null) assert.ok(out.length >= 12 && out.length <= 1232, `case ${i}: ${out.length} bytes`);
    }
  });
});
