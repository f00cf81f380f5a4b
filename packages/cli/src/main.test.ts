import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configFromEnv } from './home.js';
import { parseUpArgs } from './platform.js';
import { assertUsageError, runCli } from './test-helpers.js';

// No platform is needed: every case fails (or prints help) before any network call.
const config = configFromEnv({ LANES_HOME: '/nonexistent/lanes-home-for-tests' });

const lanes = (...argv: string[]) => runCli(config, argv);

test('an unknown command exits 2 naming the command', async () => {
  assertUsageError(await lanes('frobnicate'), /unknown command "frobnicate"/);
});

test('an unknown top-level flag exits 2 naming the flag', async () => {
  assertUsageError(await lanes('--frob'), /unknown flag --frob/);
});

test('an unknown flag of a command exits 2 naming the command and the flag', async () => {
  assertUsageError(await lanes('deploy', 'acme/prod', '.', '--fast'), /deploy: unknown flag --fast/);
  assertUsageError(await lanes('env', 'create', 'acme/prod', '--lanes', 'double'), /env create: unknown flag --lanes/);
  assertUsageError(await lanes('up', '--port', '80'), /up: unknown flag --port/);
  assertUsageError(await lanes('status', 'acme/prod', '-x'), /status: unknown flag -x/);
});

test('a flag without its value exits 2', async () => {
  assertUsageError(await lanes('logs', 'acme/prod', '--tail'), /logs: flag --tail needs a value/);
});

test('missing and extra arguments exit 2 with the synopsis', async () => {
  assertUsageError(await lanes('deploy', 'acme/prod'), /deploy: missing argument; usage: lanes deploy TENANT\/ENV PATH/);
  assertUsageError(await lanes('scale', 'acme/prod', 'web', '2', 'extra'), /scale: unexpected argument "extra"/);
  assertUsageError(await lanes('tenant', 'create'), /tenant create: missing argument/);
});

test('unknown subcommands exit 2', async () => {
  assertUsageError(await lanes('tenant', 'rename', 'x'), /tenant: unknown subcommand "rename"/);
  assertUsageError(await lanes('env', 'show', 'a/b'), /env: unknown subcommand "show"/);
});

test('names are validated locally before any call, naming the field', async () => {
  assertUsageError(await lanes('tenant', 'create', 'Acme'), /tenant: "Acme" is not a valid name/);
  assertUsageError(await lanes('status', 'acme'), /environment: "acme" should be TENANT\/ENV/);
  assertUsageError(await lanes('scale', 'acme/prod', 'web', 'many'), /instances: "many" is not a whole number/);
  assertUsageError(await lanes('env', 'create', 'acme/prod', '--lane', 'triple'), /--lane: "triple" is not a lane/);
  assertUsageError(await lanes('deploy', 'acme/prod', '.', '--timeout', 'soon'), /--timeout: "soon" is not a duration/);
  assertUsageError(await lanes('up', '--zones', 'a,A'), /--zones: "A" is not a valid zone name/);
  assertUsageError(await lanes('up', '--http-port', '70000'), /--http-port: 70000 is out of range/);
});

test('lanes up --trusted-proxies is checked and normalized before anything starts', async () => {
  const up = (...argv: string[]) => {
    const opts = parseUpArgs(argv);
    assert.notEqual(opts, 'help');
    return opts === 'help' ? [] : opts.trustedProxies;
  };
  assert.deepEqual(up(), []);
  assert.deepEqual(up('--trusted-proxies', 'none'), []);
  assert.deepEqual(up('--trusted-proxies', '10.0.0.0/8, 192.168.1.5,2001:DB8::/32,10.0.0.0/8'), ['10.0.0.0/8', '192.168.1.5/32', '2001:db8::/32']);
  assertUsageError(await lanes('up', '--trusted-proxies', '10.0.0.1/8'), /^lanes: --trusted-proxies: "10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8\n$/);
  assertUsageError(await lanes('up', '--trusted-proxies', '10.0.0.0/8,proxy.internal'), /--trusted-proxies: "proxy\.internal" is not a CIDR/);
  assertUsageError(await lanes('up', '--trusted-proxies', '10.0.0.0/33'), /--trusted-proxies: "10\.0\.0\.0\/33" has no valid prefix length/);
  assertUsageError(await lanes('up', '--trusted-proxies'), /up: flag --trusted-proxies needs a value/);
  assert.match((await lanes('up', '--help')).stdout, /\[--trusted-proxies CIDR,\.\.\.\]/);
});

test('every command has --help, printed on stdout with exit 0', async () => {
  const commands = [
    ['up'], ['down'], ['tenant'], ['tenant', 'create'], ['env'], ['env', 'create'], ['env', 'list'], ['env', 'delete'],
    ['deploy'], ['status'], ['scale'], ['logs'], ['events'], ['releases'],
    ['env', 'egress'], ['zone'], ['zone', 'list'], ['zone', 'down'], ['zone', 'up'],
  ];
  for (const c of commands) {
    const r = await lanes(...c, '--help');
    assert.equal(r.code, 0, `lanes ${c.join(' ')} --help: ${r.stderr}`);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`usage: lanes ${c.join(' ')}`));
  }
  const h = await lanes('help', 'deploy');
  assert.match(h.stdout, /usage: lanes deploy TENANT\/ENV PATH/);
  assert.match((await lanes('help')).stdout, /usage: lanes COMMAND/);
  assert.match((await lanes()).stdout, /usage: lanes COMMAND/);
  assert.match((await lanes('help')).stdout, /\n  zone +show zones, or simulate an availability-zone outage\n/);
  assert.match((await lanes('up', '--help')).stdout, /--isolation auto\|netns\|none\] \[--network-cidr 10\.88\.0\.0\/16\]/);
  assert.match((await lanes('help', 'env', 'create')).stdout, /--egress CIDR\[:PORT\],\.\.\./);
});

test('the isolation, zone and egress commands reject bad input with one line, exit 2', async () => {
  assertUsageError(await lanes('up', '--isolation', 'vm'), /--isolation: "vm" is not an isolation mode; use auto, netns or none/);
  assertUsageError(await lanes('up', '--isolation'), /up: flag --isolation needs a value/);
  assertUsageError(await lanes('up', '--network-cidr', '10.0.0.0/30'), /--network-cidr: "10\.0\.0\.0\/30" has prefix \/30; use \/8 to \/23/);
  assertUsageError(await lanes('up', '--isolation', 'none', '--network-cidr', '10.0.0.0/16'), /--network-cidr: only used with --isolation netns or auto/);
  assertUsageError(await lanes('zone', 'freeze', 'a'), /zone: unknown subcommand "freeze"; use list, down or up/);
  assertUsageError(await lanes('zone', 'down'), /zone down: missing argument; usage: lanes zone down ZONE/);
  assertUsageError(await lanes('zone', 'up', 'a', 'b'), /zone up: unexpected argument "b"/);
  assertUsageError(await lanes('zone', 'down', 'Zone-B'), /zone: "Zone-B" is not a valid zone name/);
  assertUsageError(await lanes('zone', 'list', '--all'), /zone list: unknown flag --all/);
  assertUsageError(await lanes('env', 'create', 'acme/prod', '--egress', '10.0.0.0/8:0'), /--egress: "10\.0\.0\.0\/8:0" is not CIDR\[:PORT\]/);
  assertUsageError(await lanes('env', 'create', 'acme/prod', '--egress', ','), /--egress: give at least one CIDR\[:PORT\]/);
  assertUsageError(await lanes('env', 'egress', 'acme/prod'), /env egress: give either --allow CIDR\[:PORT\],\.\.\. or --any/);
  assertUsageError(await lanes('env', 'egress', 'acme/prod', '--any', '--allow', '10.0.0.0/8'), /env egress: give either/);
  assertUsageError(await lanes('env', 'egress', 'acme/prod', '--allow', '300.0.0.0/8'), /--allow: "300\.0\.0\.0\/8" is not CIDR\[:PORT\]/);
  assertUsageError(await lanes('env', 'egress', 'acme/prod', '--allow', '10.0.0.0/8:443:1'), /--allow: "10\.0\.0\.0\/8:443:1" is not CIDR/);
  assertUsageError(await lanes('env', 'egress', 'acme', '--any'), /environment: "acme" should be TENANT\/ENV/);
});

test('valid egress and zone commands get as far as the API (not running here: exit 1)', async () => {
  for (const argv of [['zone', 'list'], ['zone', 'down', 'b'], ['zone', 'up', 'b'], ['env', 'egress', 'acme/prod', '--allow', '0.0.0.0/0:443,10.1.0.0/16'], ['env', 'egress', 'acme/prod', '--any'], ['env', 'create', 'acme/prod', '--egress', '192.0.2.0/24:53']]) {
    const r = await lanes(...argv);
    assert.equal(r.code, 1, `lanes ${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^lanes: the platform is not running/);
  }
});

test('--version prints the version', async () => {
  const r = await lanes('--version');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^lanes \d+\.\d+\.\d+\n$/);
});

test('without a platform, API commands say it is not running (exit 1)', async () => {
  const r = await lanes('tenant', 'list');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'lanes: the platform is not running (no /nonexistent/lanes-home-for-tests/context.json); start it with lanes up\n');
});
