import assert from 'node:assert/strict';
import { test } from 'node:test';
import { databaseService, databaseVariable, formatDuration, parseDatabaseSpec, parseManifest } from './index.js';

const api = (name: unknown, body: unknown) => parseDatabaseSpec({ base: '', nameField: 'name' }, name, body);

test('a manifest declares databases: engine postgres, daily backups kept 10 days by default', () => {
  const m = parseManifest('name: shop\nservices:\n  web: { command: node web.js, http: true }\ndatabases:\n  main: { engine: postgres }\n  audit:\n    backup: { interval: 6h, retention: 30d }\n');
  assert.deepEqual(m.databases, [
    { name: 'main', engine: 'postgres', backupIntervalMs: 86_400_000, backupRetentionMs: 864_000_000 },
    { name: 'audit', engine: 'postgres', backupIntervalMs: 21_600_000, backupRetentionMs: 2_592_000_000 },
  ]);
  assert.equal(parseManifest('name: shop\nservices:\n  web: { command: node web.js }\n').databases, undefined, 'none declared: no field');
});

test('bad databases in a manifest are named by their path, in one line', () => {
  const bad = (yaml: string, re: RegExp) => assert.throws(() => parseManifest(`name: shop\nservices:\n  web: { command: node web.js }\n${yaml}`), re);
  bad('databases:\n  main: { engine: mysql }\n', /^InputError: lanes\.yaml: databases\.main\.engine: "mysql" is not a known engine; use postgres$/);
  bad('databases:\n  Main: {}\n', /lanes\.yaml: databases\.Main: "Main" is not a valid database name/);
  bad('databases:\n  main: { engine: postgres, size: 10 }\n', /lanes\.yaml: databases\.main\.size: unknown key "size"/);
  bad('databases:\n  main: { backup: { interval: soon } }\n', /lanes\.yaml: databases\.main\.backup\.interval: "soon" is not a duration/);
  bad('databases:\n  main: { backup: { interval: 2d, retention: 1d } }\n', /databases\.main\.backup\.retention: must be at least the backup interval \(2d\)/);
  bad('databases:\n  main: { backup: { interval: 10s } }\n', /databases\.main\.backup\.interval: "10s" must be between 60s and 3650d/);
  assert.throws(() => parseManifest('name: shop\nservices:\n  db-main: { command: node web.js }\ndatabases:\n  main: {}\n'), /services\.db-main: the name is taken by database main's members/);
});

test('the API body: the same rules, fields named as sent', () => {
  assert.deepEqual(api('main', {}), { name: 'main', engine: 'postgres', backupIntervalMs: 86_400_000, backupRetentionMs: 864_000_000 });
  assert.throws(() => api('main', { engine: 'mongo' }), /^InputError: engine: "mongo" is not a known engine; use postgres$/);
  assert.throws(() => api(undefined, {}), /^InputError: name: undefined is not a valid database name/);
  assert.throws(() => api('a-very-long-database-name-over-27', {}), /name: .* is not a valid database name; use 1-27 characters/);
  assert.throws(() => api('main', { backup: 'daily' }), /backup: expected a mapping/);
});

test('names derived from a database', () => {
  assert.equal(databaseService('main'), 'db-main');
  assert.equal(databaseVariable('order-store'), 'DATABASE_URL_ORDER_STORE');
  assert.equal(formatDuration(864_000_000), '10d');
  assert.equal(formatDuration(5_400_000), '90m');
  assert.equal(formatDuration(1500), '1500ms');
});
