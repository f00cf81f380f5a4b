import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '@lanes/spec';
import fc from 'fast-check';
import {
  SLOTS_PER_ZONE,
  allocateAddress,
  egressAddress,
  instanceAddress,
  instanceNames,
  maxEnvironments,
  parseCidr,
  planEnvironment,
  zoneOfAddress,
} from './plan.js';

test('environment 12 of the default platform gets 10.88.12.0/24, its bridge, links and egress address', () => {
  const p = planEnvironment('10.88.0.0/16', 12, ['a', 'b', 'c']);
  assert.equal(p.subnet, '10.88.12.0/24');
  assert.equal(p.gatewayAddress, '10.88.12.1');
  assert.equal(p.supervisorAddress, '10.88.12.254');
  assert.equal(p.egressAddress, '10.88.255.12');
  assert.equal(egressAddress('10.88.0.0/16', 12), '10.88.255.12');
  assert.equal(p.bridge, 'lanes-br12');
  assert.equal(p.hostTable, 'lanes-host');
  assert.deepEqual(p.chains, { forward: 'fwd_12', egress: 'egress_12', nat: 'nat_12' });
  assert.deepEqual(p.zones.map((z) => [z.name, z.first, z.last]), [
    ['a', '10.88.12.2', '10.88.12.61'],
    ['b', '10.88.12.66', '10.88.12.125'],
    ['c', '10.88.12.130', '10.88.12.189'],
  ]);
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.zones));
});

test('a larger platform CIDR is carved the same way and its last /24 is the egress pool', () => {
  const p = planEnvironment('172.20.0.0/20', 3, ['a']);
  assert.equal(p.subnet, '172.20.3.0/24');
  assert.equal(p.egressAddress, '172.20.15.3');
  assert.equal(maxEnvironments('172.20.0.0/20'), 14);
  assert.equal(maxEnvironments('10.88.0.0/16'), 254);
  assert.equal(maxEnvironments('10.0.0.0/8'), 254);
});

test('bad plans are refused naming the field', () => {
  assert.throws(() => planEnvironment('10.88.0.1/16', 1, ['a']), /cidr: "10.88.0.1\/16" has host bits set; use 10.88.0.0\/16/);
  assert.throws(() => planEnvironment('10.88.0.0/24', 1, ['a']), /prefix \/24; use \/8 to \/23/);
  assert.throws(() => planEnvironment('10.88.0.0', 1, ['a']), /is not a CIDR/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 0, ['a']), /index: 0 is out of range; platform 10.88.0.0\/16 holds environments 1-254/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 255, ['a']), /out of range/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, []), /zones: 0 zones given/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, ['a', 'b', 'c', 'd', 'e']), /use 1-4/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, ['a', 'a']), /names a zone twice/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, ['a; rm']), InputError);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, ['a'], { prefix: 'lanes-v' }), /prefix: "lanes-v" is not allowed/);
  assert.throws(() => planEnvironment('10.88.0.0/16', 1, ['a'], { prefix: 'other-' }), /prefix/);
  assert.equal(planEnvironment('10.88.0.0/16', 1, ['a'], { prefix: 'lanes-t' }).bridge, 'lanes-tbr1');
});

test('instance addresses come from the zone slice; the allocator fills it lowest first and then says it is full', () => {
  const p = planEnvironment('10.88.0.0/16', 5, ['a', 'b']);
  assert.equal(instanceAddress(p, 'b', 0), '10.88.5.66');
  assert.equal(instanceAddress(p, 'b', SLOTS_PER_ZONE - 1), '10.88.5.125');
  assert.throws(() => instanceAddress(p, 'b', SLOTS_PER_ZONE), /slot: 60 is out of range; use 0-59/);
  assert.throws(() => instanceAddress(p, 'c', 0), /zone: "c" is not a zone of environment 5; use one of a, b/);
  assert.equal(allocateAddress(p, 'a', []), '10.88.5.2');
  assert.equal(allocateAddress(p, 'a', ['10.88.5.2', '10.88.5.4']), '10.88.5.3');
  const all = Array.from({ length: SLOTS_PER_ZONE }, (_, i) => instanceAddress(p, 'a', i));
  assert.throws(() => allocateAddress(p, 'a', all), /zone a of environment 5 has no free address: all 60 are in use/);
  assert.equal(zoneOfAddress(p, '10.88.5.70'), 'b');
  assert.equal(zoneOfAddress(p, '10.88.5.1'), null);
});

test('property: addresses of different (environment, zone, slot) never collide and never hit a host address', () => {
  const zones = ['a', 'b', 'c', 'd'];
  fc.assert(
    fc.property(
      fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 59 })),
      fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 59 })),
      ([e1, z1, s1], [e2, z2, s2]) => {
        const p1 = planEnvironment('10.88.0.0/16', e1, zones);
        const p2 = planEnvironment('10.88.0.0/16', e2, zones);
        const a1 = instanceAddress(p1, zones[z1] ?? 'a', s1);
        const a2 = instanceAddress(p2, zones[z2] ?? 'a', s2);
        const same = e1 === e2 && z1 === z2 && s1 === s2;
        for (const host of [p1.gatewayAddress, p1.supervisorAddress, p1.egressAddress]) assert.notEqual(a1, host);
        assert.ok(!a1.endsWith('.255') && !a1.endsWith('.0'));
        return same === (a1 === a2);
      },
    ),
  );
});

test('names are short, deterministic and distinct per instance', () => {
  const p = planEnvironment('10.88.0.0/16', 250, ['a']);
  const n = instanceNames(p, 'acme-prod-web-7f3a9c', '10.88.250.2');
  assert.equal(n.netns, 'lanes-250-acme-prod-web-7f3a9c');
  assert.match(n.veth, /^lanes-v[0-9a-f]{8}$/);
  assert.equal(n.veth.length, 15);
  assert.equal(n.mac, '02:6c:0a:58:fa:02');
  assert.deepEqual(instanceNames(p, 'acme-prod-web-7f3a9c', '10.88.250.2'), n);
  assert.notEqual(instanceNames(p, 'acme-prod-web-7f3a9d', '10.88.250.2').veth, n.veth);
  const t = planEnvironment('10.88.0.0/16', 250, ['a'], { prefix: 'lanes-t' });
  assert.equal(instanceNames(t, 'x', '10.88.250.2').veth.length, 15);
});

test('instance ids that could escape a name are refused before any name is built', () => {
  const p = planEnvironment('10.88.0.0/16', 1, ['a']);
  for (const bad of ['a b', 'a;rm -rf /', '$(reboot)', 'a\nb', '../etc', '-x', '', 'a/b', '`id`', 'x'.repeat(64), "a'b", 'a"b']) {
    assert.throws(() => instanceNames(p, bad, '10.88.1.2'), /instance.id: .* is not a valid instance id/, JSON.stringify(bad));
  }
  assert.throws(() => parseCidr('cidr', '10.88.0.0/16; nft flush ruleset'), InputError);
  assert.throws(() => instanceNames(p, 'ok', '10.88.1.2 ; x'), /address: .* is not an IPv4 address/);
});
