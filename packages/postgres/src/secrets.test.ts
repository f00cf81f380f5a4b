/** The cluster's passwords: generated once by the member creating it, required from the others. */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@lanes/testkit';
import { loadSecrets, renderPassfile } from './secrets.js';
import { Secret } from './secret.js';
import { inspect } from 'node:util';

describe('cluster secrets', () => {
  it('are generated once, in files of mode 0600, and read back unchanged', async () => {
    const dir = path.join(await tempDir('lanes-pgsec-'), 'secrets');
    const first = await loadSecrets(dir, true);
    const again = await loadSecrets(dir, false);
    assert.equal(again.superuser.reveal(), first.superuser.reveal());
    assert.match(first.replication.reveal(), /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(first.app.reveal(), first.superuser.reveal());
    for (const f of ['superuser-password', 'replication-password', 'app-password']) {
      assert.equal((await stat(path.join(dir, f))).mode & 0o777, 0o600);
      assert.equal((await readFile(path.join(dir, f), 'utf8')).trim().length, 32);
    }
  });

  it('must be given to the other members, naming the missing file', async () => {
    const dir = path.join(await tempDir('lanes-pgsec-'), 'secrets');
    await assert.rejects(loadSecrets(dir, false), /superuser-password is missing; every member needs the cluster's passwords/);
  });

  it('never print their value', () => {
    const s = new Secret('hunter2hunter2');
    assert.equal(String(s), '[redacted]');
    assert.equal(JSON.stringify({ s }), '{"s":"[redacted]"}');
    assert.equal(inspect(s), 'Secret([redacted])');
  });

  it('escape the password file', () => {
    assert.equal(renderPassfile({ superuser: new Secret('a:b\\c'), replication: new Secret('r'), app: new Secret('x') }, 'postgres', 'replicator'), '*:*:*:replicator:r\n*:*:*:postgres:a\\:b\\\\c\n');
  });
});
