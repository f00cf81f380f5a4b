import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_EDGE } from '@lanes/spec';
import { edgePatchFromFlags, renderEdge } from './edge.js';
import { configFromEnv } from './home.js';
import { assertUsageError, runCli } from './test-helpers.js';

// No platform is needed: every case fails (or prints help) before any network call.
const config = configFromEnv({ LANES_HOME: '/nonexistent/lanes-home-for-tests' });

const lanes = (...argv: string[]) => runCli(config, argv);

test('edge set flags become a patch of only the settings given, in the wire form', () => {
  assert.deepEqual(edgePatchFromFlags({ deny: '127.0.0.1/32, 10.0.0.0/8,127.0.0.1', 'client-rate': '50/s,100' }), {
    deny: ['127.0.0.1/32', '10.0.0.0/8'],
    clientRate: { rps: 50, burst: 100 },
  });
  assert.deepEqual(
    edgePatchFromFlags({ allow: 'none', 'env-rate': 'off', 'max-body': '10mb', 'max-conns-per-client': '20', 'https-redirect': 'on', hsts: '1y' }),
    { allow: [], environmentRate: null, maxBodyBytes: 10 * 1024 * 1024, maxConnectionsPerClient: 20, httpsRedirect: true, hstsMaxAgeS: 31_536_000 },
  );
  assert.deepEqual(edgePatchFromFlags({ 'max-body': 'default', 'max-conns-per-client': 'default', hsts: 'off' }), { maxBodyBytes: null, maxConnectionsPerClient: null, hstsMaxAgeS: null });
});

test('edge show renders every setting on its own line', () => {
  assert.deepEqual(renderEdge('acme/prod', DEFAULT_EDGE), [
    'edge settings of acme/prod',
    '  allow                 everyone',
    '  deny                  no one',
    '  client rate           off',
    '  environment rate      off',
    '  max body              gateway default',
    '  max conns per client  gateway default',
    '  https redirect        off',
    '  hsts                  off',
  ]);
  const lines = renderEdge('acme/prod', { ...DEFAULT_EDGE, deny: ['127.0.0.1/32'], clientRate: { rps: 5, burst: 10 }, maxBodyBytes: 1024, hstsMaxAgeS: 31_536_000 });
  assert.ok(lines.includes('  deny                  127.0.0.1/32'));
  assert.ok(lines.includes('  client rate           5/s (burst 10) per client IP'));
  assert.ok(lines.includes('  max body              1kb'));
  assert.ok(lines.includes('  hsts                  max-age 1y (31536000 s)'));
});

test('lanes edge refuses bad flags with one line naming the flag and the value, exit 2', async () => {
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--deny', '10.0.0.1/8'), /--deny: "10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--allow', '10.0.0.0/8,,192.0.2.1'), /--allow: "10\.0\.0\.0\/8,,192\.0\.2\.1" has an empty entry/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--client-rate', 'fast'), /--client-rate: "fast" is not a rate; use e\.g\. 100\/s/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--env-rate', '0/s'), /--env-rate: "0\/s" is out of range/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--max-body', 'huge'), /--max-body: "huge" is not a size/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--max-conns-per-client', '0'), /--max-conns-per-client: "0" is not a connection limit/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--https-redirect', 'maybe'), /--https-redirect: "maybe" is not on or off/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--hsts', 'forever'), /--hsts: "forever" is not an HSTS max-age/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod'), /edge set: give at least one setting; usage: lanes edge set TENANT\/ENV/);
  assertUsageError(await lanes('edge', 'set', 'acme/prod', '--rate', '5/s'), /edge set: unknown flag --rate/);
  assertUsageError(await lanes('edge', 'show'), /edge show: missing argument/);
  assertUsageError(await lanes('edge', 'show', 'acme'), /environment: "acme" should be TENANT\/ENV/);
  assertUsageError(await lanes('edge', 'open', 'acme/prod'), /edge: unknown subcommand "open"; use show, set or reset/);
});

test('lanes edge has help, and valid commands get as far as the API (not running here: exit 1)', async () => {
  for (const c of [['edge'], ['edge', 'show'], ['edge', 'set'], ['edge', 'reset']]) {
    const r = await lanes(...c, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`usage: lanes ${c.join(' ')}`));
  }
  assert.match((await lanes('help')).stdout, /\n  edge +access control at the gateway/);
  for (const argv of [['edge', 'show', 'acme/prod'], ['edge', 'reset', 'acme/prod'], ['edge', 'set', 'acme/prod', '--deny', '127.0.0.1', '--client-rate', '5/s']]) {
    const r = await lanes(...argv);
    assert.equal(r.code, 1, `lanes ${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^lanes: the platform is not running/);
  }
});
