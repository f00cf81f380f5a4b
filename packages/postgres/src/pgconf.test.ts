/**
 * The rendered configuration against golden files (LANES_UPDATE_GOLDEN=1 rewrites them),
 * and the quoting of every value against real parsers: `sh -c` for archive commands.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkCidr, commandLine, confString, conninfo, conninfoValue, quoteIdent, renderPgHba, renderPostgresqlConf, type PostgresConfInput } from './pgconf.js';

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'golden');

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env['LANES_UPDATE_GOLDEN'] === '1' || !existsSync(file)) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from its golden file; rerun with LANES_UPDATE_GOLDEN=1 if the change is meant`);
}

const BASE: PostgresConfInput = {
  member: 'a',
  listenAddresses: ['10.88.1.5'],
  port: 5432,
  socketDir: '/var/lib/lanes/db/a/run',
  maxConnections: 100,
  sharedBuffers: '128MB',
  walKeepSize: '512MB',
  fsync: true,
  role: 'primary',
  syncStandby: 'b',
  upstream: null,
  passfile: '/var/lib/lanes/db/a/run/pgpass',
  archive: {
    archiveCommand: commandLine(['/usr/bin/node', '/opt/lanes/packages/postgres/dist/wal-main.js', 'archive', '--store', '/var/lib/lanes/backups/acme-prod-main', { placeholder: '%p' }, { placeholder: '%f' }]),
    restoreCommand: commandLine(['/usr/bin/node', '/opt/lanes/packages/postgres/dist/wal-main.js', 'restore', '--store', '/var/lib/lanes/backups/acme-prod-main', { placeholder: '%f' }, { placeholder: '%p' }]),
  },
};

describe('postgresql.conf', () => {
  it('renders a primary waiting for its synchronous standby, archiving', () => {
    golden('primary.postgresql.conf', renderPostgresqlConf(BASE));
  });

  it('renders a standby streaming from its primary', () => {
    golden('standby.postgresql.conf', renderPostgresqlConf({ ...BASE, member: 'b', role: 'standby', syncStandby: 'a', upstream: { host: '10.88.2.5', port: 5432 }, archive: null }));
  });

  it('never names a synchronous standby on a standby, nor an upstream on a primary', () => {
    const standby = renderPostgresqlConf({ ...BASE, role: 'standby', syncStandby: 'b', upstream: null });
    assert.match(standby, /^synchronous_standby_names = ''$/m);
    assert.match(standby, /^primary_conninfo = ''$/m);
    const primary = renderPostgresqlConf({ ...BASE, upstream: { host: 'h', port: 1 } });
    assert.match(primary, /^primary_conninfo = ''$/m);
  });

  it('renders a lone primary without fsync for tests', () => {
    const conf = renderPostgresqlConf({ ...BASE, syncStandby: null, fsync: false, archive: null });
    assert.match(conf, /^synchronous_standby_names = ''$/m);
    assert.match(conf, /^fsync = off$/m);
    assert.match(conf, /^archive_mode = off$/m);
  });

  it('quotes member names that need it in synchronous_standby_names', () => {
    assert.match(renderPostgresqlConf({ ...BASE, syncStandby: 'zone-b' }), /^synchronous_standby_names = '"zone-b"'$/m);
  });

  it('refuses values that would break out of their line', () => {
    assert.throws(() => renderPostgresqlConf({ ...BASE, socketDir: "/tmp/x'\nfsync = off" }), /unix_socket_directories: .* contains a line break/);
  });
});

describe('pg_hba.conf', () => {
  it('renders SCRAM for the allowed networks only', () => {
    golden('pg_hba.conf', renderPgHba({ member: 'a', allow: ['10.88.1.0/24', '::1/128'] }));
  });

  it('refuses a malformed network, naming it', () => {
    assert.throws(() => renderPgHba({ member: 'a', allow: ['10.0.0.0/8 trust'] }), /allow: "10.0.0.0\/8 trust" is not a network/);
    assert.throws(() => checkCidr('10.0.0.1/33'), /is not a network/);
    assert.throws(() => checkCidr('all'), /is not a network/);
    assert.equal(checkCidr('fd00::/8'), 'fd00::/8');
  });
});

describe('quoting', () => {
  it('postgresql.conf strings double quotes and escape backslashes', () => {
    assert.equal(confString("it's"), "'it''s'");
    assert.equal(confString('a\\b'), "'a\\\\b'");
  });

  it('connection strings quote what libpq would split', () => {
    assert.equal(conninfoValue('10.0.0.1'), '10.0.0.1');
    assert.equal(conninfoValue('a b'), "'a b'");
    assert.equal(conninfoValue("x' host=evil"), "'x\\' host=evil'");
    assert.equal(conninfoValue(''), "''");
    assert.equal(conninfo({ host: '/tmp/my dir', port: 5432 }), "host='/tmp/my dir' port=5432");
  });

  it('identifiers double their quotes', () => {
    assert.equal(quoteIdent('a"b'), '"a""b"');
  });

  it('archive command arguments reach the program unchanged through PostgreSQL and sh -c', () => {
    const hostile = ["it's; touch /tmp/pwned", '$(id) `id` $HOME', '100% %p %f %%', 'back\\slash "dq"'];
    const line = commandLine(['printf', '[%s]\\n', ...hostile, { placeholder: '%p' }, { placeholder: '%f' }]);
    // PostgreSQL's substitution: %p and %f become the path and name, %% becomes %.
    const substituted = line.replace(/%(.)/g, (_m, c: string) => (c === 'p' ? 'pg_wal/000000010000000000000001' : c === 'f' ? '000000010000000000000001' : c === '%' ? '%' : `%${c}`));
    const out = execFileSync('sh', ['-c', substituted], { encoding: 'utf8' });
    assert.deepEqual(out.trim().split('\n'), [...hostile, 'pg_wal/000000010000000000000001', '000000010000000000000001'].map((a) => `[${a}]`));
  });
});
