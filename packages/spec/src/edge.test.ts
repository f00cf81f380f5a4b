import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_EDGE,
  describeEdge,
  formatByteSize,
  formatHstsMaxAge,
  formatIpAddress,
  formatRateLimit,
  isDefaultEdge,
  isEdgeSettings,
  mergeEdge,
  parseByteSize,
  parseCidrBlock,
  parseCidrList,
  parseConnectionLimit,
  parseEdgePatch,
  parseEdgeSettings,
  parseHstsMaxAge,
  parseIpAddress,
  parseRateLimit,
  sameEdge,
} from './edge.js';
import { InputError } from './errors.js';

/** Asserts an InputError naming `field`, with a message matching `re`. */
function refuses(fn: () => unknown, field: string, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InputError, `an InputError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    assert.match(err.message, re);
    return true;
  });
}

describe('edge settings: addresses and CIDRs', () => {
  it('parses IPv4 and IPv6 addresses, refusing look-alikes', () => {
    assert.deepEqual(parseIpAddress('192.0.2.7'), { family: 4, parts: [192, 0, 2, 7] });
    assert.deepEqual(parseIpAddress('::1')?.parts, [0, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(parseIpAddress('2001:db8::8:800:200c:417a')?.parts, [0x2001, 0xdb8, 0, 0, 0x8, 0x800, 0x200c, 0x417a]);
    assert.deepEqual(parseIpAddress('::ffff:127.0.0.1')?.parts, [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]);
    for (const bad of ['256.0.0.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1::2::3', ':1::', '12345::', 'fe80::1%eth0', '', 'example.com', '1:2:3:4:5:6:7:8:9']) {
      assert.equal(parseIpAddress(bad), null, bad);
    }
  });

  it('formats IPv6 the RFC 5952 way', () => {
    const f = (s: string) => {
      const ip = parseIpAddress(s);
      assert.ok(ip, s);
      return formatIpAddress(ip);
    };
    assert.equal(f('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(f('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
    assert.equal(f('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(f('0:0:0:0:0:0:0:0'), '::');
  });

  it('normalizes CIDRs; a bare address is one host', () => {
    assert.equal(parseCidrBlock('allow.0', '10.0.0.0/8').text, '10.0.0.0/8');
    assert.equal(parseCidrBlock('allow.0', '203.0.113.7').text, '203.0.113.7/32');
    assert.equal(parseCidrBlock('allow.0', '2001:DB8::/32').text, '2001:db8::/32');
    assert.equal(parseCidrBlock('allow.0', '::1').text, '::1/128');
    assert.equal(parseCidrBlock('allow.0', '0.0.0.0/0').text, '0.0.0.0/0');
    assert.equal(parseCidrBlock('allow.0', '::/0').text, '::/0');
  });

  it('refuses host bits, bad prefixes and junk, naming the field and the value', () => {
    refuses(() => parseCidrBlock('deny.3', '10.0.0.1/8'), 'deny.3', /"10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8/);
    refuses(() => parseCidrBlock('deny.0', '2001:db8::1/32'), 'deny.0', /host bits set; use 2001:db8::\/32/);
    refuses(() => parseCidrBlock('deny.0', '10.0.0.0/33'), 'deny.0', /prefix length; use \/0 to \/32/);
    refuses(() => parseCidrBlock('deny.0', '10.0.0.0/'), 'deny.0', /prefix length/);
    refuses(() => parseCidrBlock('allow.1', 'localhost'), 'allow.1', /"localhost" is not a CIDR/);
    refuses(() => parseCidrBlock('allow.1', 42), 'allow.1', /42 is not a CIDR/);
  });

  it('parses lists from arrays or comma text, without duplicates', () => {
    assert.deepEqual(parseCidrList('--allow', '10.0.0.0/8, 192.0.2.1,10.0.0.0/8'), ['10.0.0.0/8', '192.0.2.1/32']);
    assert.deepEqual(parseCidrList('--allow', 'none'), []);
    assert.deepEqual(parseCidrList('allow', []), []);
    refuses(() => parseCidrList('allow', ['10.0.0.0/8', '10.1.0.0/8']), 'allow.1', /host bits/);
    refuses(() => parseCidrList('allow', { a: 1 }), 'allow', /not a list of CIDRs/);
    refuses(() => parseCidrList('allow', Array.from({ length: 1001 }, () => '10.0.0.0/8')), 'allow', /at most 1000/);
  });
});

describe('edge settings: rates, sizes, ages', () => {
  it('parses rates per second, minute and hour, with a default burst of one second', () => {
    assert.deepEqual(parseRateLimit('clientRate', '100/s'), { rps: 100, burst: 100 });
    assert.deepEqual(parseRateLimit('clientRate', '6000/m'), { rps: 100, burst: 100 });
    assert.deepEqual(parseRateLimit('clientRate', '50/s,200'), { rps: 50, burst: 200 });
    assert.deepEqual(parseRateLimit('clientRate', '50 / s, 200'), { rps: 50, burst: 200 });
    assert.deepEqual(parseRateLimit('clientRate', '10/m'), { rps: 10 / 60, burst: 1 });
    assert.deepEqual(parseRateLimit('clientRate', { rps: 5, burst: 10 }), { rps: 5, burst: 10 });
    assert.deepEqual(parseRateLimit('clientRate', { rps: 5 }), { rps: 5, burst: 5 });
    assert.equal(parseRateLimit('clientRate', 'off'), null);
    assert.equal(parseRateLimit('clientRate', null), null);
  });

  it('refuses rates that are zero, too large, malformed or with a bad burst', () => {
    refuses(() => parseRateLimit('clientRate', '0/s'), 'clientRate', /"0\/s" is out of range/);
    refuses(() => parseRateLimit('clientRate', '100'), 'clientRate', /"100" is not a rate; use e\.g\. 100\/s/);
    refuses(() => parseRateLimit('clientRate', '100/d'), 'clientRate', /is not a rate/);
    refuses(() => parseRateLimit('clientRate', '2000000/s'), 'clientRate', /at most 1000000\/s/);
    refuses(() => parseRateLimit('environmentRate', { rps: 5, burst: 0 }), 'environmentRate', /burst 0/);
    refuses(() => parseRateLimit('environmentRate', { rps: 5, burst: 1.5 }), 'environmentRate', /burst 1\.5/);
    refuses(() => parseRateLimit('environmentRate', { rps: 5, per: 's' }), 'environmentRate', /unknown key "per"/);
    refuses(() => parseRateLimit('environmentRate', 7), 'environmentRate', /7 is not a rate/);
  });

  it('parses sizes in powers of 1024', () => {
    assert.equal(parseByteSize('maxBodyBytes', '10mb'), 10 * 1024 * 1024);
    assert.equal(parseByteSize('maxBodyBytes', '10MiB'), 10 * 1024 * 1024);
    assert.equal(parseByteSize('maxBodyBytes', '512k'), 512 * 1024);
    assert.equal(parseByteSize('maxBodyBytes', '1.5kb'), 1536);
    assert.equal(parseByteSize('maxBodyBytes', '1000'), 1000);
    assert.equal(parseByteSize('maxBodyBytes', 0), 0);
    assert.equal(parseByteSize('maxBodyBytes', 'default'), null);
    refuses(() => parseByteSize('maxBodyBytes', '10 furlongs'), 'maxBodyBytes', /"10 furlongs" is not a size/);
    refuses(() => parseByteSize('maxBodyBytes', '2tb'), 'maxBodyBytes', /out of range/);
    refuses(() => parseByteSize('maxBodyBytes', -1), 'maxBodyBytes', /-1 is out of range/);
    refuses(() => parseByteSize('maxBodyBytes', 1.5), 'maxBodyBytes', /1\.5 is out of range/);
  });

  it('parses HSTS max-ages and connection limits', () => {
    assert.equal(parseHstsMaxAge('hstsMaxAgeS', '1y'), 31_536_000);
    assert.equal(parseHstsMaxAge('hstsMaxAgeS', '180d'), 180 * 86_400);
    assert.equal(parseHstsMaxAge('hstsMaxAgeS', '600'), 600);
    assert.equal(parseHstsMaxAge('hstsMaxAgeS', 0), 0);
    assert.equal(parseHstsMaxAge('hstsMaxAgeS', 'off'), null);
    refuses(() => parseHstsMaxAge('hstsMaxAgeS', '1 year'), 'hstsMaxAgeS', /"1 year" is not an HSTS max-age/);
    refuses(() => parseHstsMaxAge('hstsMaxAgeS', -5), 'hstsMaxAgeS', /out of range/);
    assert.equal(parseConnectionLimit('maxConnectionsPerClient', '20'), 20);
    assert.equal(parseConnectionLimit('maxConnectionsPerClient', 'default'), null);
    refuses(() => parseConnectionLimit('maxConnectionsPerClient', 0), 'maxConnectionsPerClient', /0 is not a connection limit/);
  });

  it('formats values back the way a person writes them', () => {
    assert.equal(formatRateLimit({ rps: 100, burst: 100 }), '100/s (burst 100)');
    assert.equal(formatRateLimit({ rps: 10 / 60, burst: 1 }), '10/m (burst 1)');
    assert.equal(formatRateLimit({ rps: 1 / 3600, burst: 1 }), '1/h (burst 1)');
    assert.equal(formatByteSize(10 * 1024 * 1024), '10mb');
    assert.equal(formatByteSize(1500), '1500b');
    assert.equal(formatHstsMaxAge(31_536_000), '1y');
    assert.equal(formatHstsMaxAge(90), '90s');
  });
});

describe('edge settings: whole objects', () => {
  it('fills defaults and recognizes default settings', () => {
    const e = parseEdgeSettings({});
    assert.deepEqual(e, DEFAULT_EDGE);
    assert.ok(isDefaultEdge(e));
    assert.ok(Object.isFrozen(e) && Object.isFrozen(e.allow));
    assert.ok(isEdgeSettings(e));
    assert.equal(isEdgeSettings({ ...e, allow: 'x' }), false);
  });

  it('accepts wire and text forms alike', () => {
    const e = parseEdgeSettings({ deny: ['127.0.0.1'], clientRate: '5/s,10', maxBodyBytes: '1kb', hstsMaxAgeS: '1y', httpsRedirect: 'on' });
    assert.deepEqual(e, { ...DEFAULT_EDGE, deny: ['127.0.0.1/32'], clientRate: { rps: 5, burst: 10 }, maxBodyBytes: 1024, hstsMaxAgeS: 31_536_000, httpsRedirect: true });
    assert.deepEqual(parseEdgeSettings(JSON.parse(JSON.stringify(e))), e, 'the wire form parses to itself');
    assert.equal(isDefaultEdge(e), false);
    const reordered = Object.fromEntries(Object.entries(e).reverse());
    assert.ok(isEdgeSettings(reordered) && sameEdge(e, reordered), 'key order does not matter');
    assert.ok(!sameEdge(e, { ...e, deny: [] }));
    assert.deepEqual(describeEdge(e), ['deny 127.0.0.1/32', 'client rate 5/s (burst 10)', 'max body 1kb', 'HTTP redirected to HTTPS', 'HSTS max-age 1y']);
  });

  it('patches only the fields given; null clears a nullable field', () => {
    const base = parseEdgeSettings({ allow: ['10.0.0.0/8'], clientRate: '5/s' });
    const patch = parseEdgePatch({ clientRate: null, maxConnectionsPerClient: 3 });
    assert.deepEqual(patch, { clientRate: null, maxConnectionsPerClient: 3 });
    const merged = mergeEdge(base, patch);
    assert.deepEqual(merged.allow, ['10.0.0.0/8']);
    assert.equal(merged.clientRate, null);
    assert.equal(merged.maxConnectionsPerClient, 3);
  });

  it('refuses unknown keys and bad values with the field path', () => {
    refuses(() => parseEdgePatch({ alow: [] }), 'alow', /unknown setting; use one of allow, deny/);
    refuses(() => parseEdgeSettings({ deny: ['10.0.0.0/8', 'x'] }, 'table.hosts[0].edge'), 'table.hosts[0].edge.deny.1', /"x" is not a CIDR/);
    refuses(() => parseEdgeSettings([], 'edge'), 'edge', /is not an object of edge settings/);
    refuses(() => parseEdgeSettings({ httpsRedirect: 'yes' }), 'httpsRedirect', /"yes" is not on or off/);
  });
});
