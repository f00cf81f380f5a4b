import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsFailoverRecord } from '@lanes/spec';
import { answerQuestion, QCLASS, QTYPE, type Answer, type ActiveTarget } from './answer.js';
import { DOMAIN, failoverRecord, snapshot } from './test-helpers.js';
import { buildZone, validateSnapshot } from './zone.js';

const primary: ActiveTarget = (r: DnsFailoverRecord) => r.primary;
const zone = buildZone(validateSnapshot(snapshot({ addresses: { v4: ['127.0.0.1', '192.0.2.1'], v6: ['::1'] }, failover: [failoverRecord(`www.dr.${DOMAIN}`)] })));
const ask = (name: string, type: number = QTYPE.A, active: ActiveTarget = primary, cls: number = QCLASS.IN): Answer => answerQuestion(zone, { name, type, class: cls }, active);
const data = (a: Answer): string[] => a.answers.map((r) => ('address' in r ? `${r.type} ${r.address}` : r.type === 'NS' ? `NS ${r.host}` : `SOA ${r.serial}`));

describe('answer logic', () => {
  it('answers A and AAAA of an environment host with the platform addresses, authoritatively', () => {
    const a = ask(`prod.acme.${DOMAIN}`);
    assert.equal(a.rcode, 'NOERROR');
    assert.equal(a.authoritative, true);
    assert.deepEqual(data(a), ['A 127.0.0.1', 'A 192.0.2.1']);
    assert.equal(a.answers[0]?.ttl, 30);
    assert.deepEqual(data(ask(`prod.acme.${DOMAIN}`, QTYPE.AAAA)), ['AAAA ::1']);
  });

  it('matches names case-insensitively and with a trailing dot', () => {
    assert.deepEqual(data(ask(`PROD.Acme.${DOMAIN.toUpperCase()}.`)), ['A 127.0.0.1', 'A 192.0.2.1']);
  });

  it('answers SOA and NS at the apex, with the name server addresses as additional records', () => {
    const soa = ask(DOMAIN, QTYPE.SOA);
    assert.equal(soa.answers[0]?.type, 'SOA');
    const rr = soa.answers[0];
    assert.ok(rr?.type === 'SOA');
    assert.equal(rr.serial, 100);
    assert.equal(rr.mname, `ns.${DOMAIN}`);
    assert.equal(rr.minimum, 30);
    const ns = ask(DOMAIN, QTYPE.NS);
    assert.deepEqual(data(ns), [`NS ns.${DOMAIN}`]);
    assert.deepEqual(ns.additionals.map((r) => r.name), [`ns.${DOMAIN}`, `ns.${DOMAIN}`, `ns.${DOMAIN}`]);
    assert.deepEqual(data(ask(`ns.${DOMAIN}`)), ['A 127.0.0.1', 'A 192.0.2.1']);
    assert.deepEqual(data(ask(DOMAIN)), ['A 127.0.0.1', 'A 192.0.2.1']);
  });

  it('answers NXDOMAIN with the SOA for an unknown name, and NOERROR without answers for a known name lacking the type', () => {
    const nx = ask(`nope.acme.${DOMAIN}`);
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.authoritative, true);
    assert.equal(nx.answers.length, 0);
    assert.equal(nx.authorities[0]?.type, 'SOA');
    const nodata = ask(`prod.acme.${DOMAIN}`, QTYPE.NS);
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers.length, 0);
    assert.equal(nodata.authorities[0]?.type, 'SOA');
    // A name below an existing host does not exist; an empty non-terminal does.
    assert.equal(ask(`x.prod.acme.${DOMAIN}`).rcode, 'NXDOMAIN');
    const ent = ask(`acme.${DOMAIN}`);
    assert.equal(ent.rcode, 'NOERROR');
    assert.equal(ent.answers.length, 0);
    assert.equal(ask(`dr.${DOMAIN}`).rcode, 'NOERROR');
    assert.equal(ask(`mx.${DOMAIN}`, 15).rcode, 'NXDOMAIN');
  });

  it('refuses names outside the domain, other classes and zone transfers, without the AA bit', () => {
    for (const a of [ask('example.com'), ask(`x${DOMAIN}`), ask(`prod.acme.${DOMAIN}`, QTYPE.A, primary, 3), ask(DOMAIN, QTYPE.AXFR), ask(DOMAIN, QTYPE.IXFR), ask('')]) {
      assert.equal(a.rcode, 'REFUSED');
      assert.equal(a.authoritative, false);
    }
  });

  it('answers SERVFAIL before it has a zone', () => {
    const a = answerQuestion(null, { name: `prod.acme.${DOMAIN}`, type: QTYPE.A, class: QCLASS.IN }, primary);
    assert.equal(a.rcode, 'SERVFAIL');
  });

  it('answers a failover record with the active target in its family, with the record TTL', () => {
    const name = `www.dr.${DOMAIN}`;
    const a = ask(name);
    assert.deepEqual(data(a), ['A 192.0.2.10']);
    assert.equal(a.answers[0]?.ttl, 10);
    assert.deepEqual(data(ask(name, QTYPE.A, (r) => r.secondary)), ['A 198.51.100.20']);
    const v6 = buildZone(validateSnapshot(snapshot({ failover: [failoverRecord(name, { secondary: { address: '2001:DB8::20', check: null } })] })));
    const viaSecondary = answerQuestion(v6, { name, type: QTYPE.AAAA, class: QCLASS.IN }, (r) => r.secondary);
    assert.deepEqual(data(viaSecondary), ['AAAA 2001:db8::20']);
    const noA = answerQuestion(v6, { name, type: QTYPE.A, class: QCLASS.IN }, (r) => r.secondary);
    assert.equal(noA.rcode, 'NOERROR');
    assert.equal(noA.answers.length, 0);
  });

  it('lets an environment host win over a failover record of the same name', () => {
    const z = buildZone(validateSnapshot(snapshot({ failover: [failoverRecord(`prod.acme.${DOMAIN}`)] })));
    assert.equal(z.failover.size, 0);
    const a = answerQuestion(z, { name: `prod.acme.${DOMAIN}`, type: QTYPE.A, class: QCLASS.IN }, primary);
    assert.deepEqual(data(a), ['A 127.0.0.1']);
  });

  it('answers ANY with every record of the name', () => {
    assert.deepEqual(data(ask(DOMAIN, QTYPE.ANY)), ['SOA 100', `NS ns.${DOMAIN}`, 'A 127.0.0.1', 'A 192.0.2.1', 'AAAA ::1']);
  });
});

describe('zone validation', () => {
  it('names the first bad field', () => {
    const cases: [unknown, RegExp][] = [
      [null, /^zone: expected an object/],
      [{ ...snapshot(), domain: 'UPPER.test' }, /^domain: "UPPER.test" is not a lower-case DNS name/],
      [{ ...snapshot(), serial: -1 }, /^serial: -1 is not an integer 0-4294967295/],
      [{ ...snapshot(), addresses: { v4: ['::1'], v6: [] } }, /^addresses\.v4\.0: "::1" is not an IPv4 address/],
      [{ ...snapshot(), addresses: { v4: [], v6: ['fe80::1%eth0'] } }, /^addresses\.v6\.0: "fe80::1%eth0" is not an IPv6 address/],
      [{ ...snapshot(), hosts: ['prod.acme.other.test'] }, /^hosts\.0: prod\.acme\.other\.test is not below lanes\.test/],
      [{ ...snapshot(), failover: [{ ...failoverRecord(`a.${DOMAIN}`), primary: { address: '1.2.3.4', check: null } }] }, /^failover\.0\.primary\.check: missing/],
      [{ ...snapshot(), failover: [failoverRecord(`a.${DOMAIN}`, { secondary: { address: 'nope', check: null } })] }, /^failover\.0\.secondary\.address: "nope" is not an IP address/],
      [{ ...snapshot(), failover: [failoverRecord(`a.${DOMAIN}`, { primary: { address: '1.2.3.4', check: { url: 'ftp://x/', intervalMs: 1000, timeoutMs: 100, healthyThreshold: 1, unhealthyThreshold: 1 } } })] }, /^failover\.0\.primary\.check\.url: "ftp:\/\/x\/" is not http\(s\)/],
      [{ ...snapshot(), failover: [failoverRecord(`a.${DOMAIN}`, { primary: { address: '1.2.3.4', check: { url: 'http://x/', intervalMs: 1000, timeoutMs: 5000, healthyThreshold: 1, unhealthyThreshold: 1 } } })] }, /^failover\.0\.primary\.check\.timeoutMs: 5000 is not an integer 10-1000/],
    ];
    for (const [input, re] of cases) assert.throws(() => validateSnapshot(input), { name: 'InputError', message: re });
  });

  it('writes IPv6 addresses in canonical form', () => {
    const s = validateSnapshot(snapshot({ addresses: { v4: [], v6: ['2001:DB8:0:0:0:0:0:1', '::ffff:192.0.2.1'] } }));
    assert.deepEqual(s.addresses.v6, ['2001:db8::1', '::ffff:c000:201']);
  });
});
