import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CommandError, argv, execArgv, runCommand } from './commands.js';
import { planEnvironment } from './plan.js';
import {
  CLOSED_POLICY,
  checkSecurityGroups,
  ingressPolicy,
  renderEgress,
  renderEnvironment,
  renderEnvironmentRemoval,
  renderHostBase,
  renderInstanceTable,
  renderPort,
  renderPortRemoval,
  type SecurityGroupRule,
} from './rules.js';

const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'testdata');
const UPDATE = process.env.LANES_UPDATE_GOLDEN === '1';

/** Compares with testdata/<name>; LANES_UPDATE_GOLDEN=1 rewrites the file. */
function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (UPDATE || !existsSync(file)) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, actual);
    if (!UPDATE) assert.fail(`golden file ${name} was missing and has been written; check it and re-run`);
    return;
  }
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs; if intended, re-run with LANES_UPDATE_GOLDEN=1`);
}

const plan = planEnvironment('10.88.0.0/16', 3, ['a', 'b', 'c']);
const rules: SecurityGroupRule[] = [
  { service: 'web', addresses: ['10.88.3.2', '10.88.3.66'], ports: [8080], allowFrom: null, http: true },
  { service: 'api', addresses: ['10.88.3.3'], allowFrom: ['web'], http: false },
  { service: 'db', addresses: ['10.88.3.67'], ports: [5432], allowFrom: ['api'], http: false },
];

test('default security group: every instance of the environment may connect; http adds the gateway', () => {
  assert.deepEqual(ingressPolicy(rules, 'web'), { peers: 'environment', ports: [8080], gateway: true });
});

test('allow_from limits sources to the listed services plus the service\'s own replicas', () => {
  assert.deepEqual(ingressPolicy(rules, 'api'), { peers: ['10.88.3.2', '10.88.3.3', '10.88.3.66'], ports: null, gateway: false });
  assert.deepEqual(ingressPolicy(rules, 'db'), { peers: ['10.88.3.3', '10.88.3.67'], ports: [5432], gateway: false });
});

test('an unknown service gets the closed policy (supervisor probes only)', () => {
  assert.equal(ingressPolicy(rules, 'cache'), CLOSED_POLICY);
});

test('security groups are validated: references, addresses inside the subnet, one owner per address, ports', () => {
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'db', addresses: [], allowFrom: ['nope'], http: false }]), /rules\[0\].allowFrom\[0\]: service "nope" is not in the rules/);
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'db', addresses: ['10.88.4.2'], allowFrom: null, http: false }]), /10.88.4.2 is not an instance address of 10.88.3.0\/24/);
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'db', addresses: ['10.88.3.1'], allowFrom: null, http: false }]), /is not an instance address/);
  assert.throws(
    () => checkSecurityGroups(plan, [
      { service: 'a', addresses: ['10.88.3.2'], allowFrom: null, http: false },
      { service: 'b', addresses: ['10.88.3.2'], allowFrom: null, http: false },
    ]),
    /10.88.3.2 belongs to both a and b/,
  );
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'db', addresses: [], ports: [0], allowFrom: null, http: false }]), /ports\[0\]: 0 is not a port/);
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'd b', addresses: [], allowFrom: null, http: false }]), /rules\[0\].service/);
  assert.throws(() => checkSecurityGroups(plan, [{ service: 'db";flush ruleset', addresses: [], allowFrom: null, http: false }]), /rules\[0\].service/);
});

const port = { veth: 'lanes-v0badcafe', mac: '02:6c:0a:58:03:42', address: '10.88.3.66' };
const SCRIPTS: Record<string, () => string> = {
  'host-base.nft': () => renderHostBase('lanes-'),
  'environment.nft': () => renderEnvironment(plan),
  'environment-removal.nft': () => renderEnvironmentRemoval(plan),
  'egress-open.nft': () => renderEgress(plan, null),
  'egress-list.nft': () => renderEgress(plan, [{ cidr: '192.0.2.0/24', port: 443 }, { cidr: '198.51.100.7/32' }]),
  'port.nft': () => renderPort(plan, port),
  'port-removal.nft': () => renderPortRemoval(plan, port.veth),
};
test('instances never reach link-local (the metadata address) or loopback, even with an open egress list', () => {
  const lines = renderEnvironment(plan).split('\n');
  const jump = lines.findIndex((l) => l.endsWith(`jump ${plan.chains.egress}`));
  const rejects = lines.map((l, i) => [l, i] as const).filter(([l]) => l.includes('ip daddr { 169.254.0.0/16, 127.0.0.0/8 }') && l.includes('reject'));
  assert.equal(rejects.length, 2, `rejects for link-local and loopback in:\n${lines.join('\n')}`);
  for (const [line, i] of rejects) assert.ok(i < jump, `${line} comes before the egress chain`);
  assert.match(renderEgress(plan, null), /accept/);
});

test('golden: host tables, environment chains, egress and ports', () => {
  for (const [name, render] of Object.entries(SCRIPTS)) golden(name, render());
});
test('golden: instance tables for web, api, db and a closed instance', () => {
  golden('instance-web.nft', renderInstanceTable(plan, ingressPolicy(rules, 'web')));
  golden('instance-api.nft', renderInstanceTable(plan, ingressPolicy(rules, 'api')));
  golden('instance-db.nft', renderInstanceTable(plan, ingressPolicy(rules, 'db')));
  golden('instance-closed.nft', renderInstanceTable(plan, CLOSED_POLICY));
});

test('egress entries may not reach into the platform network, and must be CIDRs and ports', () => {
  // Overlapping the platform network is allowed: the forward chain rejects it first.
  assert.doesNotThrow(() => renderEgress(plan, [{ cidr: '0.0.0.0/0', port: 443 }]));
  assert.throws(() => renderEgress(plan, [{ cidr: '1.2.3.4/32', port: 70000 }]), /egress\[0\].port: 70000 is not a port/);
  assert.throws(() => renderEgress(plan, [{ cidr: '1.2.3.4/32 } ; flush ruleset' }]), /egress\[0\].cidr/);
});

test('argv builders produce exact argv arrays', () => {
  assert.deepEqual(argv.vethAdd('lanes-v01234567', '02:6c:0a:58:03:02', 'lanes-3-web-1'), [
    'ip', 'link', 'add', 'lanes-v01234567', 'type', 'veth', 'peer', 'name', 'eth0', 'address', '02:6c:0a:58:03:02', 'netns', 'lanes-3-web-1',
  ]);
  assert.deepEqual(argv.nsConfigure('lanes-3-web-1', '10.88.3.2/24', '10.88.3.1'), {
    argv: ['ip', '-n', 'lanes-3-web-1', '-batch', '-'],
    input: 'link set dev lo up\nlink set dev eth0 addrgenmode none up\naddr replace 10.88.3.2/24 dev eth0\nroute replace default via 10.88.3.1\n',
  });
  assert.deepEqual(argv.nftApply('lanes-3-web-1'), ['ip', 'netns', 'exec', 'lanes-3-web-1', 'nft', '-f', '-']);
  assert.deepEqual(execArgv('lanes-3-web-1', ['node', 'server.js']), ['ip', 'netns', 'exec', 'lanes-3-web-1', 'node', 'server.js']);
  assert.deepEqual(execArgv('lanes-3-web-1', ['node'], { uid: 1000 }), ['ip', 'netns', 'exec', 'lanes-3-web-1', 'setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--no-new-privs', '--', 'node']);
  assert.deepEqual(
    execArgv('lanes-3-web-1', ['node'], { uid: 65534, ipPath: '/usr/sbin/ip', setprivPath: '/usr/bin/setpriv' }),
    ['/usr/sbin/ip', 'netns', 'exec', 'lanes-3-web-1', '/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs', '--', 'node'],
  );
});

test('injection: names with spaces, ;, $(), backticks, quotes or newlines never reach argv', () => {
  const hostile = ['lanes-a b', 'lanes-a;reboot', 'lanes-$(id)', 'lanes-`id`', 'lanes-a\nb', 'lanes-a"b', "lanes-a'b", 'lanes-../x', '-lanes', 'eth0'];
  for (const name of hostile) {
    assert.throws(() => argv.linkDelete(name), /interface: .* is not a platform interface name/, JSON.stringify(name));
    assert.throws(() => argv.netnsAdd(name), /netns: .* is not a platform namespace name/, JSON.stringify(name));
    assert.throws(() => execArgv(name, ['true']), /netns/, JSON.stringify(name));
  }
  assert.throws(() => argv.linkDelete('lanes-0123456789abc'), /interface/, 'interface names are at most 15 bytes');
  assert.throws(() => argv.portSet('lanes-v01234567', 'lanes-br3', 'x"; flush ruleset', true), /alias/);
  assert.throws(() => argv.portSet('lanes-v01234567', 'lanes-br3', 'a\nb', true), /alias/);
  assert.throws(() => argv.nsConfigure('lanes-3-web', '10.88.3.2/24 dev lo', '10.88.3.1'), /address/);
  assert.throws(() => argv.nsConfigure('lanes-3-web', '10.88.3.2/24', '10.88.3.1\nlink del eth0'), /via/);
  assert.throws(() => execArgv('lanes-3-web', ['x'], { uid: -1 }), /uid/);
  assert.throws(() => execArgv('lanes-3-web', []), /argv: empty/);
  for (const tool of ['ip; reboot', 'usr/sbin/ip', '/usr/../tmp/ip', '-ip', '/usr/sbin/ip\n', '']) {
    assert.throws(() => execArgv('lanes-3-web', ['x'], { ipPath: tool }), /ipPath/, JSON.stringify(tool));
    assert.throws(() => execArgv('lanes-3-web', ['x'], { uid: 1, setprivPath: tool }), /setprivPath/, JSON.stringify(tool));
  }
});

test('a failing command becomes one line naming the command and its stderr', async () => {
  const err = await runCommand(['ip', 'link', 'show', 'dev', 'lanes-nonexist']).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof CommandError);
  assert.match(err.message, /^ip link show dev lanes-nonexist failed \(exit 1\): .*lanes-nonexist/);
  assert.ok(!err.message.includes('\n'));
  const missing = await runCommand(['lanes-no-such-program']).then(() => null, (e: unknown) => e);
  assert.ok(missing instanceof CommandError);
  assert.match(missing.message, /lanes-no-such-program is not installed/);
  const slow = await runCommand(['sleep', '5'], { timeoutMs: 100 }).then(() => null, (e: unknown) => e);
  assert.ok(slow instanceof CommandError);
  assert.match(slow.message, /^sleep 5 failed \(timed out after 100 ms\)/);
});

const canCheck = process.getuid?.() === 0 && (await runCommand(['nft', '--version']).then(() => true, () => false));
test('the scripts are accepted by nft --check, in the orders the manager sends them', { skip: canCheck ? false : 'needs root and nft' }, async () => {
  const read = (name: string): string => readFileSync(path.join(GOLDEN_DIR, name), 'utf8');
  const sequences = [
    ['host-base.nft', 'environment.nft', 'egress-open.nft', 'port.nft'],
    ['host-base.nft', 'environment.nft', 'egress-list.nft'],
    ['host-base.nft', 'port-removal.nft', 'environment-removal.nft'],
  ];
  for (const seq of sequences) await runCommand(['nft', '--check', '-f', '-'], { input: seq.map(read).join('') });
  for (const name of ['instance-web.nft', 'instance-api.nft', 'instance-db.nft', 'instance-closed.nft']) {
    await runCommand(['nft', '--check', '-f', '-'], { input: read(name) });
  }
});

test('port and chain names that are not the platform\'s are refused', () => {
  assert.throws(() => renderPort(plan, { ...port, veth: 'eth0' }), /veth: "eth0" is not a platform port name/);
  assert.throws(() => renderPortRemoval(plan, 'lanes-v1"; flush ruleset'), /veth/);
  assert.throws(() => renderPort(plan, { ...port, mac: '02:6c:0a:58:03:42 accept' }), /mac/);
  assert.throws(() => argv.nftListChain('inet', 'lanes-host', 'fwd_1; flush'), /not a platform chain/);
});
