/** The keeper's and arbiter's flags: defaults, the supervisor's variables, one-line errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArbiterConfig, parseKeeperConfig, parsePeer } from './config.js';

const BASE = ['--name', 'a', '--state-dir', '/var/lib/lanes/db/a', '--token-file', '/run/token'];

describe('keeper config', () => {
  it('has defaults for everything but the name, the state directory and the token', () => {
    const c = parseKeeperConfig(BASE, {});
    assert.equal(c.port, 7400);
    assert.equal(c.pgPort, 5432);
    assert.equal(c.leaseMs, 2000);
    assert.equal(c.leaseMarginMs, 300);
    assert.equal(c.dataDir, '/var/lib/lanes/db/a/pgdata');
    assert.equal(c.secretsDir, '/var/lib/lanes/db/a/secrets');
    assert.deepEqual(c.members, ['a']);
    assert.equal(c.initialPrimary, 'a');
    assert.equal(c.backupDir, null);
    assert.equal(c.backupIntervalMs, 86_400_000);
    assert.equal(c.backupRetentionMs, 10 * 86_400_000);
    assert.ok(Object.isFrozen(c));
  });

  it('takes peers, durations and sizes', () => {
    const c = parseKeeperConfig([...BASE, '--peer', 'b=http://10.88.2.5:7400,10.88.2.5:5432', '--peer', 'arbiter=http://10.88.3.5:7400', '--lease', '3s', '--sync-grace', '500ms', '--backup-retention', '7d'], {});
    assert.deepEqual(c.peers, [
      { name: 'b', url: 'http://10.88.2.5:7400', postgres: { host: '10.88.2.5', port: 5432 } },
      { name: 'arbiter', url: 'http://10.88.3.5:7400', postgres: null },
    ]);
    assert.deepEqual(c.members, ['a', 'b']);
    assert.equal(c.leaseMs, 3000);
    assert.equal(c.syncGraceMs, 500);
    assert.equal(c.backupRetentionMs, 7 * 86_400_000);
  });

  it('reads LANES_PG_* and a zone supervisor\'s PORT, CHECK_PORT and HOST', () => {
    const c = parseKeeperConfig([], {
      LANES_PG_NAME: 'b',
      LANES_PG_STATE_DIR: '/s',
      LANES_PG_TOKEN_FILE: '/t',
      LANES_PG_PEER: 'a=http://10.0.0.1:7400,10.0.0.1:5432 arbiter=http://10.0.0.3:7400',
      PORT: '30001',
      CHECK_PORT: '30002',
      HOST: '10.88.2.5',
      LANES_ZONE: 'b',
    });
    assert.equal(c.zone, 'b');
    assert.equal(c.pgPort, 30001);
    assert.equal(c.port, 30002);
    assert.equal(c.host, '10.88.2.5');
    assert.equal(c.pgListen, '10.88.2.5');
    assert.deepEqual(c.members, ['a', 'b']);
    assert.equal(c.initialPrimary, 'a');
  });

  it('prefers flags to the environment', () => {
    assert.equal(parseKeeperConfig([...BASE, '--pg-port', '6000'], { PORT: '30001', LANES_PG_PG_PORT: '7000' }).pgPort, 6000);
  });

  it('refuses bad input with one line naming the flag and the value', () => {
    const cases: [string[], RegExp][] = [
      [['--state-dir', '/s', '--token-file', '/t'], /^--name: missing$/],
      [[...BASE, '--name', 'A_1'], /^--name: must be lower-case letters, digits and -$/],
      [[...BASE, '--peer', 'b'], /^--peer: "b" is not a peer; use NAME=URL/],
      [[...BASE, '--peer', 'b=ftp://x'], /^--peer: "b=ftp:\/\/x" has a URL that is not http\(s\)/],
      [[...BASE, '--peer', 'b=http://x:1,host'], /has a bad PostgreSQL address "host"/],
      [[...BASE, '--peer', 'a=http://x:1'], /^--peer: the name "a" is used twice/],
      [[...BASE, '--allow', '10.0.0.0/8 trust'], /^--allow: "10.0.0.0\/8 trust" is not a network/],
      [[...BASE, '--lease', 'soon'], /^--lease: "soon" is not a duration from 300 ms/],
      [[...BASE, '--initial-primary', 'z'], /^--initial-primary: "z" is not a member/],
      [[...BASE, '--host', 'localhost'], /^--host: is not an IP address/],
      [[...BASE, '--frob'], /^flags: Unknown option '--frob'/],
    ];
    for (const [argv, re] of cases) {
      assert.throws(() => parseKeeperConfig(argv, {}), (err: Error) => {
        assert.match(err.message, re, argv.join(' '));
        assert.equal(err.message.split('\n').length, 1);
        return true;
      });
    }
  });

  it('parses IPv6 PostgreSQL addresses of peers', () => {
    assert.deepEqual(parsePeer('b=http://[::1]:7400,[::1]:5432').postgres, { host: '::1', port: 5432 });
  });
});

describe('arbiter config', () => {
  it('has defaults and reads PORT', () => {
    const c = parseArbiterConfig(['--state-dir', '/s', '--token-file', '/t'], { PORT: '31000' });
    assert.equal(c.name, 'arbiter');
    assert.equal(c.port, 31000);
    assert.equal(c.leaseMs, 2000);
  });

  it('names a missing flag', () => {
    assert.throws(() => parseArbiterConfig(['--token-file', '/t'], {}), /^InputError: --state-dir: missing$|--state-dir: missing/);
  });
});
