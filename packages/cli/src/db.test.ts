import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { decodeDatabase, formatBytes, renderBackups, renderDatabases, renderDatabaseStatus } from './db.js';
import { configFromEnv, type CliConfig } from './home.js';
import { assertUsageError as assertUsageShape, runCli, type CliRun } from './test-helpers.js';

// A fixture standing in for the control plane on a loopback port: it records every request
// and answers with whatever the test put in `reply`. Only the CLI is under test.
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly auth: string | undefined;
  readonly body: unknown;
}
let seen: Seen[] = [];
let reply: (req: Seen) => { status: number; body: unknown; type?: string } = () => ({ status: 500, body: { detail: 'no reply set' } });
let server: http.Server;
let config: CliConfig;

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
      seen.push(s);
      const r = reply(s);
      res.writeHead(r.status, { 'content-type': r.type ?? 'application/json' });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  config = configFromEnv({ LANES_HOME: '/nonexistent/lanes-home-for-tests', LANES_API_URL: `http://127.0.0.1:${address.port}`, LANES_TOKEN: 'tok-db' });
});

after(() => {
  server.close();
});

async function lanes(...argv: string[]) {
  seen = [];
  return runCli(config, argv);
}

/** A usage error that never reached the API. */
function assertUsageError(r: CliRun, expected: RegExp): void {
  assertUsageShape(r, expected);
  assert.deepEqual(seen, [], 'no API call');
}

const BACKUP = {
  id: '20260102T030000Z-a',
  member: 'a',
  startedAt: '2026-01-02T03:00:00.000Z',
  finishedAt: '2026-01-02T03:00:04.000Z',
  timeline: 2,
  startLsn: '0/3000028',
  stopLsn: '0/3000100',
  sizeBytes: 26_529_792,
  files: ['base.tar.gz'],
  verified: { at: '2026-01-02T03:00:09.000Z', ok: true, message: 'restored and queried' },
};

const DB = {
  name: 'main',
  engine: 'postgres',
  tenant: 'acme',
  environment: 'prod',
  lane: 'double',
  source: 'api',
  restoredFrom: null,
  url: 'postgres://app:****@127.0.0.1:30002/app',
  variables: ['DATABASE_URL', 'DATABASE_URL_MAIN'],
  tcp: { address: '127.0.0.1', port: 30002 },
  primary: 'b',
  members: [
    { name: 'a', role: 'standby', zone: 'a', instance: 'i-a', pid: 4101, state: 'streaming', healthy: true, lagBytes: 0, replayDelaySeconds: 0, checkUrl: 'http://127.0.0.1:41001/primary', message: '' },
    { name: 'b', role: 'primary', zone: 'b', instance: 'i-b', pid: 4202, state: 'primary', healthy: true, lagBytes: null, replayDelaySeconds: null, checkUrl: 'http://127.0.0.1:41002/primary', message: '' },
    { name: 'arbiter', role: 'arbiter', zone: 'c', instance: 'i-c', pid: 4303, state: 'running', healthy: true, lagBytes: null, replayDelaySeconds: null, checkUrl: null, message: '' },
  ],
  backup: { interval: '24h', retention: '10d', last: BACKUP },
  failovers: [
    { at: '2026-01-02T04:00:00.000Z', term: 2, primary: 'b', reason: 'a lost its lease (zone a down)' },
    { at: '2026-01-02T05:30:00.000Z', term: 13, primary: 'b', reason: 'switchover' },
  ],
  someFutureField: { kept: true },
};

test('lanes db names the argument or flag that is missing or wrong, in one line, without asking the API', async () => {
  assertUsageError(await lanes('db', 'status', 'acme/prod'), /db status: missing argument; usage: lanes db status TENANT\/ENV NAME/);
  assertUsageError(await lanes('db', 'create', 'acme/prod'), /db create: missing argument; usage: lanes db create TENANT\/ENV NAME/);
  assertUsageError(await lanes('db', 'backup', 'acme/prod', 'main', 'extra'), /db backup: unexpected argument "extra"/);
  assertUsageError(await lanes('db', 'list'), /db list: missing argument/);
  assertUsageError(await lanes('db', 'status', 'acme', 'main'), /environment: "acme" should be TENANT\/ENV/);
  assertUsageError(await lanes('db', 'status', 'acme/prod', 'Main'), /database: "Main" is not a valid database name/);
  assertUsageError(await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00Z'), /db restore: --as is required/);
  assertUsageError(await lanes('db', 'restore', 'acme/prod', 'main', '--as', 'main-restored'), /db restore: --to-time is required/);
  assertUsageError(await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', 'yesterday', '--as', 'old'), /--to-time: "yesterday" is not a time; use e\.g\. 2026-01-02T15:04:05Z/);
  assertUsageError(await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00Z', '--as', 'Old_DB'), /--as: "Old_DB" is not a valid database name/);
  assertUsageError(await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00Z', '--as', 'main'), /--as: "main" is the database being restored/);
  assertUsageError(await lanes('db', 'create', 'acme/prod', 'main', '--backup-interval', 'daily'), /--backup-interval: "daily" is not a duration; use e\.g\. 24h/);
  assertUsageError(await lanes('db', 'create', 'acme/prod', 'main', '--backup-interval', '24'), /--backup-interval: "24" is not a duration/);
  assertUsageError(await lanes('db', 'create', 'acme/prod', 'main', '--backup-retention', '10 days'), /--backup-retention: "10 days" is not a duration/);
  assertUsageError(await lanes('db', 'create', 'acme/prod', 'main', '--engine', ''), /--engine: give an engine/);
  assertUsageError(await lanes('db', 'create', 'acme/prod', 'main', '--lane', 'double'), /db create: unknown flag --lane/);
  assertUsageError(await lanes('db', 'switchover', 'acme/prod', 'main', '--json'), /db switchover: unknown flag --json/);
  assertUsageError(await lanes('db', 'switchover', 'acme/prod', 'main', '--to'), /db switchover: flag --to needs a value/);
  assertUsageError(await lanes('db', 'delete', 'acme/prod', 'main', '--json'), /db delete: unknown flag --json/);
  assertUsageError(await lanes('db', 'drop', 'acme/prod', 'main'), /db: unknown subcommand "drop"; use list, create, status, switchover, backup, backups, restore or delete/);
});

test('lanes db and each subcommand have help; db is in the command list', async () => {
  for (const c of [['db'], ['db', 'list'], ['db', 'create'], ['db', 'status'], ['db', 'switchover'], ['db', 'backup'], ['db', 'backups'], ['db', 'restore'], ['db', 'delete']]) {
    const r = await lanes(...c, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`usage: lanes ${c.join(' ')}`));
  }
  assert.match((await lanes('db')).stdout, /lanes db restore TENANT\/ENV NAME --to-time TIME --as NEWNAME/);
  assert.match((await lanes('help')).stdout, /\n  db +manage an environment's databases/);
  assert.match((await lanes('help', 'db', 'create')).stdout, /--backup-retention  how long backups and WAL are kept/);
  assert.deepEqual(seen, []);
});

test('db status renders the header, the members and the failovers', () => {
  assert.deepEqual(renderDatabaseStatus(decodeDatabase(DB)), [
    'database     main (acme/prod)',
    'engine       postgres',
    'lane         double',
    'url          postgres://app:****@127.0.0.1:30002/app',
    'variables    DATABASE_URL, DATABASE_URL_MAIN',
    'source       api (lanes db create)',
    'primary      b',
    'backups      every 24h, kept 10d',
    'last backup  20260102T030000Z-a at 2026-01-02T03:00:04.000Z, verified yes',
    '',
    'MEMBER   ROLE     ZONE  PID   STATE      LAG  HEALTHY',
    'a        standby  a     4101  streaming  0 B  yes',
    'b        primary  b     4202  primary    -    yes',
    'arbiter  arbiter  c     4303  running    -    yes',
    '',
    'failovers:',
    '  2026-01-02T04:00:00.000Z  term 2   primary b  a lost its lease (zone a down)',
    '  2026-01-02T05:30:00.000Z  term 13  primary b  switchover',
  ]);
});

test('db status of a young, restored database during a failover: no primary, pending verification, no failovers', () => {
  const lines = renderDatabaseStatus(
    decodeDatabase({
      ...DB,
      name: 'main-restored',
      source: 'restore',
      restoredFrom: { database: 'main', toTime: '2026-01-02T03:30:00Z' },
      primary: null,
      members: [
        { ...DB.members[0], role: 'candidate', pid: null, healthy: false, lagBytes: 1_572_864, message: 'waiting for the lease' },
        { ...DB.members[2] },
      ],
      backup: { interval: '24h', retention: '10d', last: { ...BACKUP, verified: null } },
      failovers: [],
    }),
  );
  assert.ok(lines.includes('restored from  main at 2026-01-02T03:30:00Z'), lines.join('\n'));
  assert.ok(lines.includes('source         restore (lanes db restore)'));
  assert.ok(lines.includes('primary        none'));
  assert.ok(lines.includes('last backup    20260102T030000Z-a at 2026-01-02T03:00:04.000Z, verified pending'));
  assert.ok(lines.includes('MEMBER   ROLE       ZONE  PID   STATE      LAG      HEALTHY  MESSAGE'));
  assert.ok(lines.includes('a        candidate  a     -     streaming  1.5 MiB  no       waiting for the lease'));
  assert.equal(lines[lines.length - 1], 'failovers: none');
});

test('answers with fields missing are read, not crashed on', () => {
  const d = decodeDatabase({ name: 'main' });
  assert.equal(d.primary, null);
  assert.deepEqual(d.members, []);
  assert.deepEqual(renderDatabaseStatus(d).slice(-3), ['no members yet', '', 'failovers: none']);
  assert.ok(renderDatabaseStatus(d).includes('last backup  none yet'));
  assert.throws(() => decodeDatabase({ engine: 'postgres' }), /the control plane sent a malformed database/);
  assert.deepEqual(renderDatabases([]), ['no databases']);
  assert.deepEqual(renderBackups({ backups: [], retention: '10d', oldestRestorableTime: null }), ['no backups', 'retention 10d; nothing to restore yet']);
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(26_529_792), '25.3 MiB');
});

test('db list and db backups print tables; --json prints the answer as is', async () => {
  const second = { ...DB, name: 'cache', lane: 'single', primary: null, url: 'postgres://app:****@127.0.0.1:30003/app', members: [] };
  reply = () => ({ status: 200, body: { items: [DB, second] } });
  let r = await lanes('db', 'list', 'acme/prod');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'NAME   ENGINE    LANE    PRIMARY  URL',
      'main   postgres  double  b        postgres://app:****@127.0.0.1:30002/app',
      'cache  postgres  single  -        postgres://app:****@127.0.0.1:30003/app',
      '',
    ].join('\n'),
  );
  assert.deepEqual(seen, [{ method: 'GET', url: '/v1/tenants/acme/environments/prod/databases', auth: 'Bearer tok-db', body: undefined }]);

  const list = { items: [BACKUP, { ...BACKUP, id: '20260103T030000Z-b', member: 'b', startedAt: '2026-01-03T03:00:00.000Z', sizeBytes: 900, timeline: 3, verified: { at: 'x', ok: false, message: 'pg_restore failed' } }], retention: '10d', oldestRestorableTime: '2026-01-02T03:00:04.000Z' };
  reply = () => ({ status: 200, body: list });
  r = await lanes('db', 'backups', 'acme/prod', 'main');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'ID                  STARTED                   SIZE      TIMELINE  VERIFIED',
      '20260102T030000Z-a  2026-01-02T03:00:00.000Z  25.3 MiB  2         yes',
      '20260103T030000Z-b  2026-01-03T03:00:00.000Z  900 B     3         no (pg_restore failed)',
      'retention 10d; restorable from 2026-01-02T03:00:04.000Z',
      '',
    ].join('\n'),
  );
  assert.equal(seen[0]?.url, '/v1/tenants/acme/environments/prod/databases/main/backups');

  for (const [argv, body] of [
    [['db', 'status', 'acme/prod', 'main', '--json'], DB],
    [['db', 'list', 'acme/prod', '--json'], { items: [DB] }],
    [['db', 'backups', 'acme/prod', 'main', '--json'], list],
  ] as const) {
    reply = () => ({ status: 200, body });
    r = await lanes(...argv);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${JSON.stringify(body, null, 2)}\n`, 'the body as is, unknown fields included');
  }
});

test('db status prints the status view from the API', async () => {
  reply = () => ({ status: 200, body: DB });
  const r = await lanes('db', 'status', 'acme/prod', 'main');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${renderDatabaseStatus(decodeDatabase(DB)).join('\n')}\n`);
  assert.deepEqual(seen.map((s) => `${s.method} ${s.url}`), ['GET /v1/tenants/acme/environments/prod/databases/main']);
});

test('db create, switchover, backup, restore and delete send the documented bodies and say what happened', async () => {
  reply = () => ({ status: 201, body: { ...DB, primary: 'a', failovers: [] } });
  let r = await lanes('db', 'create', 'acme/prod', 'main', '--engine', 'postgres', '--backup-interval', '12h', '--backup-retention', '10d');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen, [
    { method: 'POST', url: '/v1/tenants/acme/environments/prod/databases', auth: 'Bearer tok-db', body: { name: 'main', engine: 'postgres', backup: { interval: '12h', retention: '10d' } } },
  ]);
  assert.equal(
    r.stdout,
    [
      'database main created in acme/prod (postgres, lane double): members a (zone a), b (zone b), arbiter (zone c)',
      'url: postgres://app:****@127.0.0.1:30002/app',
      'services get it in DATABASE_URL, DATABASE_URL_MAIN',
      '',
    ].join('\n'),
  );
  r = await lanes('db', 'create', 'acme/prod', 'main');
  assert.deepEqual(seen[0]?.body, { name: 'main' }, 'only the flags given are sent');

  reply = () => ({ status: 200, body: { primary: 'a', term: 3, reason: 'switchover requested' } });
  r = await lanes('db', 'switchover', 'acme/prod', 'main', '--to', 'a');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((s) => [s.method, s.url, s.body]), [['POST', '/v1/tenants/acme/environments/prod/databases/main/switchover', { to: 'a' }]]);
  assert.equal(r.stdout, 'switching over main of acme/prod to a…\nswitched over: primary is now a (term 3)\n');
  r = await lanes('db', 'switchover', 'acme/prod', 'main');
  assert.deepEqual(seen[0]?.body, {});

  reply = () => ({ status: 201, body: BACKUP });
  r = await lanes('db', 'backup', 'acme/prod', 'main');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((s) => `${s.method} ${s.url}`), ['POST /v1/tenants/acme/environments/prod/databases/main/backups']);
  assert.equal(r.stdout, 'taking a base backup of main (acme/prod)…\nbackup 20260102T030000Z-a taken (25.3 MiB, timeline 2)\n');
  r = await lanes('db', 'backup', 'acme/prod', 'main', '--json');
  assert.equal(r.stdout, `${JSON.stringify(BACKUP, null, 2)}\n`, 'no progress line mixed into the JSON');

  const restored = { ...DB, name: 'main-restored', restoredFrom: { database: 'main', toTime: '2026-01-02T03:30:00+01:00' }, primary: null, url: 'postgres://app:****@127.0.0.1:30004/app' };
  reply = () => ({ status: 201, body: restored });
  r = await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00+01:00', '--as', 'main-restored');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((s) => [s.method, s.url, s.body]), [
    ['POST', '/v1/tenants/acme/environments/prod/databases/main/restore', { toTime: '2026-01-02T03:30:00+01:00', as: 'main-restored' }],
  ]);
  r = await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00+01:00', '--as', 'main-restored', '--json');
  assert.equal(r.stdout, `${JSON.stringify(restored, null, 2)}\n`, 'no progress line mixed into the JSON');
  r = await lanes('db', 'restore', 'acme/prod', 'main', '--to-time', '2026-01-02T03:30:00+01:00', '--as', 'main-restored');
  assert.equal(
    r.stdout,
    [
      'copying a base backup of main (acme/prod) and replaying its WAL up to 2026-01-02T03:30:00+01:00…',
      'restoring main to 2026-01-02T03:30:00+01:00 as main-restored: members a (zone a), b (zone b), arbiter (zone c)',
      'url: postgres://app:****@127.0.0.1:30004/app',
      '',
    ].join('\n'),
  );

  reply = () => ({ status: 202, body: { name: 'main', phase: 'deleting' } });
  r = await lanes('db', 'delete', 'acme/prod', 'main');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((s) => `${s.method} ${s.url}`), ['DELETE /v1/tenants/acme/environments/prod/databases/main']);
  assert.equal(r.stdout, 'deleting database main of acme/prod (its members stop; backups are kept)\n');
});

test('a problem+json refusal is printed as its one-line detail, exit 1', async () => {
  reply = () => ({
    status: 409,
    type: 'application/problem+json',
    body: { type: 'about:blank', title: 'Conflict', status: 409, code: 'LANES_ERR_CONFLICT', detail: 'database main has no synchronous standby to switch over to\n(member a is down)' },
  });
  let r = await lanes('db', 'switchover', 'acme/prod', 'main');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'lanes: database main has no synchronous standby to switch over to (member a is down)\n');

  reply = () => ({ status: 400, type: 'application/problem+json', body: { title: 'Bad Request', status: 400, code: 'LANES_ERR_INPUT', detail: 'engine: "mysql" is not a known engine; use postgres', field: 'engine' } });
  r = await lanes('db', 'create', 'acme/prod', 'main', '--engine', 'mysql');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'lanes: engine: "mysql" is not a known engine; use postgres\n');
  assert.deepEqual(seen[0]?.body, { name: 'main', engine: 'mysql' }, 'the engine is passed through for the control plane to judge');

  reply = () => ({ status: 404, type: 'application/problem+json', body: { title: 'Not Found', status: 404, detail: 'database "nope" of acme/prod not found' } });
  r = await lanes('db', 'status', 'acme/prod', 'nope', '--json');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'lanes: database "nope" of acme/prod not found\n');

  reply = () => ({ status: 200, body: { items: 'nonsense' } });
  r = await lanes('db', 'list', 'acme/prod');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'lanes: the control plane sent a malformed list of databases\n');
});
