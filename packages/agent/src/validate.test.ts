import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseWatchMessage } from './client.js';
import { desired } from './test-helpers.js';
import { parseDesiredInstance, parseDesiredList, parseNetworkList } from './validate.js';

const NETWORK = { envIndex: 3, cidr: '10.88.0.0/16', zones: ['a', 'b'], address: '10.88.3.2' };
const ENV_NET = {
  envIndex: 3,
  cidr: '10.88.0.0/16',
  zones: ['a', 'b'],
  tenant: 'acme',
  environment: 'prod',
  egress: [{ cidr: '203.0.113.0/24', port: 443 }, { cidr: '198.51.100.7/32', port: null }],
  groups: [
    { service: 'web', addresses: ['10.88.3.2', '10.88.3.66'], ports: [8080], allowFrom: null, http: true },
    { service: 'db', addresses: ['10.88.3.3'], ports: null, allowFrom: ['web'], http: false },
  ],
};

test('an instance network is parsed; absent or null means loopback', () => {
  assert.deepEqual(parseDesiredInstance('i', { ...desired('w', 'server.mjs'), network: NETWORK }).network, NETWORK);
  assert.equal(parseDesiredInstance('i', { ...desired('w', 'server.mjs'), network: null }).network, null);
  const { network: _dropped, ...old } = desired('w', 'server.mjs');
  assert.equal(parseDesiredInstance('i', old).network, null, 'state files written before networks existed still load');
});

test('a garbage instance network is rejected with the field named', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ address: '10.88.3.256' }, /i\.network\.address: "10\.88\.3\.256" is not an IPv4 address/],
    [{ address: '10.88.3.2; reboot' }, /i\.network\.address/],
    [{ address: '10.88.4.2' }, /i\.network\.address: 10\.88\.4\.2 is not an instance address of environment 3/],
    [{ address: '10.88.3.254' }, /i\.network\.address/],
    [{ envIndex: 1.5 }, /i\.network\.envIndex: 1\.5 should be an integer/],
    [{ envIndex: '3' }, /i\.network\.envIndex/],
    [{ cidr: '10.88.0.0' }, /i\.network\.cidr: "10\.88\.0\.0" is not an IPv4 CIDR/],
    [{ cidr: '10.88.1.0/16' }, /i\.network: cidr: .*host bits set/],
    [{ zones: ['a', 'a'] }, /i\.network: zones: .*twice/],
    [{ zones: ['A'] }, /i\.network\.zones\[0\]/],
    [{ zones: 'a' }, /i\.network\.zones/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), network: { ...NETWORK, ...patch } }), re, JSON.stringify(patch));
  }
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), network: 'lanes-3' }), /i\.network: "lanes-3" should be an object or null/);
});

test('two instances on one address of one environment are rejected', () => {
  const a = { ...desired('w1', 'server.mjs'), network: NETWORK };
  const b = { ...desired('w2', 'server.mjs'), network: NETWORK };
  assert.throws(() => parseDesiredList('instances', [a, b]), /instances\[1\]\.network\.address: 10\.88\.3\.2 is also the address of instance w1/);
});

test('environment networks are parsed strictly', () => {
  assert.deepEqual(parseNetworkList('networks', [ENV_NET]), [ENV_NET]);
  assert.deepEqual(parseNetworkList('networks', undefined), [], 'an older control plane sends none');
  const bad: [unknown, RegExp][] = [
    [[ENV_NET, ENV_NET], /networks\[1\]\.envIndex: 3 appears twice/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[0], addresses: ['10.88.4.2'] }] }], /networks\[0\]: rules\[0\]\.addresses\[0\]: 10\.88\.4\.2 is not an instance address/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[0], addresses: ['x'] }] }], /networks\[0\]\.groups\[0\]\.addresses\[0\]: "x" is not an IPv4 address/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[1] }] }], /allowFrom\[0\]: service "web" is not in the rules/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[0], ports: [0] }] }], /networks\[0\]\.groups\[0\]\.ports\[0\]/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[0], http: 'yes' }] }], /networks\[0\]\.groups\[0\]\.http/],
    [[{ ...ENV_NET, groups: [{ ...ENV_NET.groups[0], service: 'Web;' }] }], /networks\[0\]\.groups\[0\]\.service/],
    [[{ ...ENV_NET, egress: [{ cidr: '10.88.9.0/33', port: null }] }], /networks\[0\]\.egress\[0\]\.cidr: "10\.88\.9\.0\/33" is not an IPv4 CIDR/],
    [[{ ...ENV_NET, egress: [{ cidr: '0.0.0.0/0', port: 70000 }] }], /networks\[0\]\.egress\[0\]\.port/],
    [[{ ...ENV_NET, egress: 'any' }], /networks\[0\]\.egress/],
    [[{ ...ENV_NET, tenant: '' }], /networks\[0\]\.tenant/],
    [[{ ...ENV_NET, envIndex: 255 }], /networks\[0\]\.envIndex/],
    [{}, /networks: \{\} should be an array/],
  ];
  for (const [value, re] of bad) assert.throws(() => parseNetworkList('networks', value), re, JSON.stringify(value).slice(0, 120));
});

test('a desired watch message carries its networks; a bad network rejects the message', () => {
  const line = JSON.stringify({ type: 'desired', revision: 7, instances: [{ ...desired('w', 'server.mjs'), network: NETWORK }], networks: [ENV_NET] });
  const msg = parseWatchMessage(line);
  assert.ok(msg.type === 'desired');
  assert.deepEqual(msg.networks, [ENV_NET]);
  assert.deepEqual(msg.instances[0]?.network, NETWORK);
  const bad = JSON.stringify({ type: 'desired', revision: 8, instances: [], networks: [{ ...ENV_NET, cidr: 'x' }] });
  assert.throws(() => parseWatchMessage(bad), /networks\[0\]\.cidr/);
});

test('a sandbox user and limits are parsed; root, garbage and absurd values are refused with the field named', () => {
  const d = parseDesiredInstance('i', { ...desired('w', 'server.mjs'), user: { uid: 200001, gid: 200001 }, limits: { memoryBytes: 268_435_456, cpus: 0.5, pids: 128 } });
  assert.deepEqual(d.user, { uid: 200001, gid: 200001 });
  assert.deepEqual(d.limits, { memoryBytes: 268_435_456, cpus: 0.5, pids: 128 });
  const plain = parseDesiredInstance('i', desired('w', 'server.mjs'));
  assert.equal(plain.user, undefined, 'the platform\'s own programs have no user');
  assert.equal(plain.limits, undefined);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), user: { uid: 0, gid: 0 } }), /i\.user\.uid/);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), user: 'root' }), /i\.user/);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), limits: { memoryBytes: 1, cpus: 1, pids: 10 } }), /i\.limits\.memoryBytes/);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), limits: { memoryBytes: 268_435_456, cpus: 'all', pids: 10 } }), /i\.limits\.cpus/);
});
