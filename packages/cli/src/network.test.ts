import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError, UsageError } from './errors.js';
import { describeRemoved, isolationSummary, isolationWarning, parseIsolationRequest, parseNetworkCidr, resolveIsolation } from './network.js';

const NO_ROOT = { mode: 'none', reason: 'not running as root (uid 1000); namespaces and nftables need root' } as const;
const CAPABLE = { mode: 'netns', reason: 'root, iproute2 and nftables present' } as const;

test('--isolation netns on a host without namespaces fails with one line giving the reason', async () => {
  await assert.rejects(resolveIsolation('netns', ['a'], async () => NO_ROOT), (err: unknown) => {
    assert.ok(err instanceof CliError && !(err instanceof UsageError), 'exit 1, not a usage error');
    assert.equal(err.message, '--isolation netns: this host cannot isolate environments: not running as root (uid 1000); namespaces and nftables need root');
    return true;
  });
});

test('--isolation auto follows the host, and none never probes it', async () => {
  assert.deepEqual(await resolveIsolation('auto', ['a', 'b'], async () => NO_ROOT), NO_ROOT);
  assert.deepEqual(await resolveIsolation('auto', ['a', 'b'], async () => CAPABLE), CAPABLE);
  assert.deepEqual(await resolveIsolation('netns', ['a'], async () => CAPABLE), CAPABLE);
  const none = await resolveIsolation('none', ['a'], async () => assert.fail('detect must not run for --isolation none'));
  assert.equal(none.mode, 'none');
  // More zones than an environment's /24 has room for: auto falls back rather than failing.
  const many = await resolveIsolation('auto', ['a', 'b', 'c', 'd', 'e'], async () => CAPABLE);
  assert.equal(many.mode, 'none');
  assert.match(many.reason, /5 zones/);
});

test('the isolation warning is one line naming the reason', () => {
  assert.equal(isolationWarning('--isolation none was given'), "warning: isolation is off (--isolation none was given): environments share the host's loopback network");
  assert.equal(isolationSummary('netns', '10.88.0.0/16'), 'netns (10.88.0.0/16)');
  assert.equal(isolationSummary('none', null), 'none');
});

test('isolation flags are validated with one-line usage errors', () => {
  assert.equal(parseIsolationRequest(undefined), 'auto');
  assert.throws(() => parseIsolationRequest('vm'), (e: unknown) => e instanceof UsageError && /--isolation: "vm" is not an isolation mode; use auto, netns or none/.test(e.message));
  assert.equal(parseNetworkCidr(undefined, 'auto', ['a']), '10.88.0.0/16');
  assert.equal(parseNetworkCidr('10.99.0.0/16', 'netns', ['a', 'b']), '10.99.0.0/16');
  assert.throws(() => parseNetworkCidr('10.99.0.0', 'netns', ['a']), (e: unknown) => e instanceof UsageError && /^--network-cidr: "10\.99\.0\.0" is not a CIDR/.test(e.message));
  assert.throws(() => parseNetworkCidr('10.99.0.0/28', 'auto', ['a']), /--network-cidr: .*\/28; use \/8 to \/23/);
  assert.throws(() => parseNetworkCidr('10.99.0.0/16', 'none', ['a']), /--network-cidr: only used with --isolation netns or auto/);
  assert.throws(() => parseNetworkCidr(undefined, 'netns', ['a', 'b', 'c', 'd', 'e']), /--zones: 5 zones, but isolated environments have room for at most 4/);
});

test('removed network objects are counted in one phrase', () => {
  assert.equal(describeRemoved({ namespaces: [], links: [], tables: [] }), null);
  assert.equal(describeRemoved({ namespaces: [], links: ['lanes-br1'], tables: [] }), '1 link');
  assert.equal(
    describeRemoved({ namespaces: ['lanes-1-a', 'lanes-1-b'], links: ['lanes-br1', 'lanes-v1', 'lanes-v2'], tables: ['inet lanes-host', 'bridge lanes-host'] }),
    '2 namespaces, 3 links and 2 nftables tables',
  );
});
