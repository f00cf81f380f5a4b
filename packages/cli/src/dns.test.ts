import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTtlSeconds, renderDnsRecords } from './dns.js';
import { configFromEnv } from './home.js';
import { memoryIo } from './io.js';
import { run } from './main.js';

// No platform is needed: every case fails (or prints help) before any network call.
const config = configFromEnv({ LANES_HOME: '/nonexistent/lanes-home-for-tests' });

async function lanes(...argv: string[]) {
  const io = memoryIo();
  const code = await run(argv, io, config);
  return { code, stdout: io.text(), stderr: io.stderr.join('') };
}

test('lanes dns set names the flag that is missing or wrong, before asking anyone', async () => {
  const cases: [string[], RegExp][] = [
    [['dns', 'set', 'www.dr.lanes.localhost', '--secondary', '192.0.2.2', '--primary-check', 'http://x/'], /dns set: --primary is required/],
    [['dns', 'set', 'www.dr.lanes.localhost', '--primary', '192.0.2.1', '--secondary', '192.0.2.2'], /dns set: --primary-check is required/],
    [['dns', 'set', 'www', '--primary', 'nope', '--secondary', '192.0.2.2', '--primary-check', 'http://x/'], /--primary: "nope" is not an IP address/],
    [['dns', 'set', 'www', '--primary', '192.0.2.1', '--secondary', '192.0.2.2', '--primary-check', 'ftp://x/'], /--primary-check: "ftp:\/\/x\/" is not an http\(s\) URL/],
    [['dns', 'set', 'www', '--primary', '192.0.2.1', '--secondary', '192.0.2.2', '--primary-check', 'http://x/', '--ttl', '2d'], /--ttl: "2d" is not a TTL/],
    [['dns', 'set', 'www', '--primary', '192.0.2.1', '--secondary', '192.0.2.2', '--primary-check', 'http://x/', '--unhealthy-threshold', '0'], /--unhealthy-threshold: 0 is out of range; use 1-10/],
    [['dns', 'set', '--primary', '192.0.2.1'], /dns set: missing argument/],
    [['dns', 'frob'], /dns: unknown subcommand "frob"; use list, set or delete/],
    [['dns', 'delete'], /dns delete: missing argument/],
  ];
  for (const [argv, re] of cases) {
    const r = await lanes(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^lanes: [^\n]+\n$/);
    assert.match(r.stderr, re);
  }
});

test('lanes dns and its subcommands have help', async () => {
  assert.match((await lanes('dns')).stdout, /lanes dns set NAME --primary IP --primary-check URL --secondary IP/);
  assert.match((await lanes('dns', 'set', '--help')).stdout, /fail open/);
  assert.match((await lanes('help')).stdout, /dns +manage the platform DNS's failover records/);
  assert.match((await lanes('up', '--help')).stdout, /\[--dns-port 8053\]/);
});

test('TTLs and the record table', () => {
  assert.equal(parseTtlSeconds('30s'), 30);
  assert.equal(parseTtlSeconds('5m'), 300);
  assert.equal(parseTtlSeconds('0'), 0);
  assert.deepEqual(renderDnsRecords([]), ['no dns records']);
  const check = { url: 'http://192.0.2.1/healthz', intervalMs: 10_000, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3 };
  assert.deepEqual(renderDnsRecords([{ name: 'www.dr.l.test', ttl: 30, primary: { address: '192.0.2.1', check }, secondary: { address: '192.0.2.2', check: null } }]), [
    'NAME           TTL  PRIMARY    PRIMARY CHECK                       SECONDARY  SECONDARY CHECK',
    'www.dr.l.test  30s  192.0.2.1  http://192.0.2.1/healthz every 10s  192.0.2.2  none (always healthy)',
  ]);
});
