/**
 * Backups and point-in-time recovery: the pure retention and restore-window rules, the
 * directory store, and with real PostgreSQL: a member archiving WAL and taking (and
 * verifying) its scheduled backup, then a restore to a time between two batches of writes
 * into a new directory holding exactly the rows committed before it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, freePort, sleep, tempDir, waitFor } from '@lanes/testkit';
import { chooseRestoreBackup, DirectoryBackupStore, planRetention, restoreCommandFor, restoreToTime, walSegment, type BackupInfo } from './backup.js';
import { LocalClient } from './pgclient.js';
import { resolveRunAs } from './pgexec.js';
import { Postmaster } from './postmaster.js';
import { Secret } from './secret.js';
import { Cluster } from './test-helpers.js';

const DIST = path.dirname(fileURLToPath(import.meta.url));
const DAY = 86_400_000;
const NOW = Date.parse('2026-12-20T12:00:00Z');

function backup(id: string, finishedAt: string, startLsn = '0/2000028'): BackupInfo {
  return { id, member: 'a', startedAt: finishedAt, finishedAt, timeline: 1, startLsn, stopLsn: startLsn, sizeBytes: 1, files: ['base.tar.gz'], verified: null };
}

const B1 = backup('20261201T000000Z-000001', '2026-12-01T00:00:00.000Z', '0/1000028');
const B2 = backup('20261205T000000Z-000002', '2026-12-05T00:00:00.000Z', '0/5000028');
const B3 = backup('20261212T000000Z-000003', '2026-12-12T00:00:00.000Z', '0/9000028');
const B4 = backup('20261219T000000Z-000004', '2026-12-19T00:00:00.000Z', '0/C000028');

describe('retention', () => {
  it('keeps the backups of the window and the newest one before it, and the WAL from that one on', () => {
    const wal = ['000000010000000000000003', '000000010000000000000004', '000000010000000000000005', '000000020000000000000009', '00000002.history', '000000010000000000000005.00000028.backup'];
    const plan = planRetention([B3, B1, B4, B2], wal, NOW, 10 * DAY);
    assert.deepEqual(plan.deleteBackups, [B1.id]);
    assert.deepEqual(plan.deleteWal, ['000000010000000000000003', '000000010000000000000004']);
  });

  it('removes nothing while every backup is within the window', () => {
    assert.deepEqual(planRetention([B3, B4], ['000000010000000000000001'], NOW, 10 * DAY), { deleteBackups: [], deleteWal: ['000000010000000000000001'] });
    assert.deepEqual(planRetention([], ['000000010000000000000001'], NOW, 10 * DAY), { deleteBackups: [], deleteWal: [] });
  });

  it('reads segment numbers from WAL names', () => {
    assert.equal(walSegment('0000000100000001000000A0'), 0x1a0n);
    assert.equal(walSegment('00000002.history'), null);
  });
});

describe('restore window', () => {
  const all = [B1, B2, B3, B4];
  it('starts from the newest backup finished by the target', () => {
    assert.equal(chooseRestoreBackup(all, new Date('2026-12-13T00:00:00Z'), NOW, 10 * DAY).id, B3.id);
    assert.equal(chooseRestoreBackup(all, null, NOW, 10 * DAY).id, B4.id);
  });

  it('names a target outside the retention window and the window', () => {
    assert.throws(
      () => chooseRestoreBackup(all, new Date('2026-12-02T00:00:00Z'), NOW, 10 * DAY),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'LANES_ERR_INPUT');
        assert.equal(err.message, '--to-time 2026-12-02T00:00:00.000Z is outside the retention window: the window is 2026-12-10T12:00:00.000Z to now (2026-12-20T12:00:00.000Z)');
        return true;
      },
    );
  });

  it('refuses the future, an unknown backup, and a backup that finished after the target', () => {
    assert.throws(() => chooseRestoreBackup(all, new Date('2026-12-21T00:00:00Z'), NOW, 10 * DAY), /--to-time 2026-12-21T00:00:00.000Z is in the future/);
    assert.throws(() => chooseRestoreBackup(all, null, NOW, 10 * DAY, 'nope'), (err: Error & { code?: string }) => err.code === 'LANES_ERR_NOT_FOUND' && /backup "nope" does not exist/.test(err.message));
    assert.throws(() => chooseRestoreBackup(all, new Date('2026-12-18T00:00:00Z'), NOW, 10 * DAY, B4.id), /is before backup 20261219T000000Z-000004 finished/);
    assert.throws(() => chooseRestoreBackup([], new Date('2026-12-18T00:00:00Z'), NOW, 10 * DAY), /there are no backups to restore from/);
  });
});

describe('directory store', () => {
  it('archives WAL once, accepts an identical copy, refuses a different one, and restores it', async () => {
    const dir = await tempDir('lanes-pgs-');
    const store = new DirectoryBackupStore(path.join(dir, 'store'));
    const seg = path.join(dir, 'seg');
    await writeFile(seg, randomBytes(64 * 1024));
    assert.equal(await store.putWal('000000010000000000000001', seg), 'stored');
    assert.equal(await store.putWal('000000010000000000000001', seg), 'duplicate');
    const other = path.join(dir, 'other');
    await writeFile(other, randomBytes(1024));
    await assert.rejects(store.putWal('000000010000000000000001', other), /already archived with different contents/);
    assert.equal(await store.getWal('000000010000000000000001', path.join(dir, 'back')), true);
    assert.deepEqual(await readFile(path.join(dir, 'back')), await readFile(seg));
    assert.equal(await store.getWal('000000010000000000000002', path.join(dir, 'none')), false);
    await assert.rejects(store.putWal('../../etc/passwd', seg), /is not a WAL file name/);
    assert.deepEqual(await store.listWal(), ['000000010000000000000001']);
    await assert.rejects(store.getBackup('20261201T000000Z-abcdef'), /does not exist/);
  });
});

const SKIP = findPostgresBin() !== null ? false : 'PostgreSQL binaries not found (install postgresql)';

describe('backups of a running member and point-in-time recovery', { skip: SKIP }, () => {
  let c: Cluster;
  let storeDir: string;
  before(async () => {
    const dir = await tempDir('lanes-pgb-');
    await chmod(dir, 0o755);
    storeDir = path.join(dir, 'store');
    c = await Cluster.start({ members: ['a'], arbiter: false, backupDir: storeDir });
    await c.waitHealthy('a', null);
  });
  after(async () => {
    await c?.close();
  });

  it('archives WAL, takes its first backup on schedule and verifies it by restoring it', async () => {
    const store = new DirectoryBackupStore(storeDir);
    const first = await waitFor('a verified backup', async () => (await store.listBackups()).find((b) => b.verified !== null), { timeoutMs: 60_000, intervalMs: 200 });
    assert.equal(first.verified?.ok, true, first.verified?.message);
    assert.match(first.verified?.message ?? '', /restored and queried: \d+ databases accept connections/);
    assert.deepEqual(first.files, ['backup_manifest', 'base.tar.gz', 'pg_wal.tar.gz']);
    const res = await fetch(`${c.member('a').url}/backups`, { headers: { authorization: `Bearer ${c.token}` } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { backups: BackupInfo[] }).backups.length, 1);
  });

  it('restores to a time between two batches of writes: exactly the rows committed before it', async () => {
    await c.sql('a', 'create table t (id bigint primary key)');
    for (let i = 1; i <= 30; i++) await c.sql('a', 'insert into t (id) values ($1)', [i]);
    const [mark] = await c.sql<{ t: Date }>('a', 'select clock_timestamp() as t');
    const target = mark?.t ?? new Date();
    await sleep(50);
    for (let i = 31; i <= 60; i++) await c.sql('a', 'insert into t (id) values ($1)', [i]);
    // Close the WAL segment so that the archive holds every commit of the second batch.
    const [sw] = await c.sql<{ f: string }>('a', 'select pg_walfile_name(pg_switch_wal()) as f', [], { superuser: true });
    await waitFor('the segment archived', async () => (await c.sql<{ w: string | null }>('a', 'select last_archived_wal as w from pg_stat_archiver', [], { superuser: true }))[0]?.w === sw?.f, { timeoutMs: 20_000 });

    const runAs = await resolveRunAs(null);
    const bin = findPostgresBin() ?? '';
    const work = await tempDir('lanes-pgr-');
    await chmod(work, 0o755);
    const dataDir = path.join(work, 'restored');
    const socketDir = path.join(work, 'run');
    const store = new DirectoryBackupStore(storeDir);
    const port = await freePort();
    const result = await restoreToTime({ store, tools: { bin, runAs }, dataDir, targetTime: target, retentionMs: 10 * DAY, restoreCommand: restoreCommandFor(storeDir, path.join(DIST, 'wal-main.js')), port, socketDir });
    assert.equal(result.dataDir, dataDir);

    const pm = new Postmaster({ bin, dataDir, runAs, logFile: path.join(socketDir, 'check.log') });
    pm.start();
    const client = new LocalClient({ socketDir, port, user: 'postgres', password: new Secret((await readFile(path.join(c.secretsDir, 'superuser-password'), 'utf8')).trim()), database: 'app' });
    try {
      const rows = await waitFor('the restored server', async () => client.query<{ n: string; max: string }>('select count(*) as n, max(id) as max from t'), { timeoutMs: 30_000 }).catch(async (err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}; its log: ${await readFile(path.join(socketDir, 'check.log'), 'utf8').catch(() => '')}`);
      });
      assert.deepEqual(rows[0], { n: '30', max: '30' });
      const [rec] = await client.query<{ r: boolean }>('select pg_is_in_recovery() as r');
      assert.equal(rec?.r, false);
    } finally {
      client.close();
      await pm.stop('fast');
    }

    // Never over an existing directory; bad input names the value.
    await assert.rejects(
      restoreToTime({ store, tools: { bin, runAs }, dataDir, targetTime: target, retentionMs: 10 * DAY, restoreCommand: '', port, socketDir }),
      (err: Error & { code?: string }) => err.code === 'LANES_ERR_CONFLICT' && err.message === `${dataDir} is not empty (it holds a cluster); a restore only goes into a new directory`,
    );
    const fresh = path.join(work, 'other');
    await mkdir(fresh);
    await assert.rejects(
      restoreToTime({ store, tools: { bin, runAs }, dataDir: fresh, targetTime: new Date('2020-01-01T00:00:00Z'), retentionMs: 10 * DAY, restoreCommand: '', port, socketDir }),
      (err: Error & { code?: string }) => err.code === 'LANES_ERR_INPUT' && /^--to-time 2020-01-01T00:00:00.000Z is outside the retention window: the window is /.test(err.message),
    );
  });

  it('the restore process exits 2 with one line for bad input', async () => {
    const run = (args: string[]): Promise<{ code: number; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, [path.join(DIST, 'restore-main.js'), ...args], { timeout: 30_000 }, (err, _o, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr) }));
      });
    const work = await tempDir('lanes-pgr-');
    const r1 = await run(['--store', storeDir, '--data-dir', path.join(work, 'x'), '--backup', '20990101T000000Z-abcdef']);
    assert.equal(r1.code, 2);
    assert.equal(r1.stderr, 'restore: backup "20990101T000000Z-abcdef" does not exist; list the backups for their ids\n');
    const r2 = await run(['--store', storeDir, '--data-dir', path.join(work, 'y'), '--to-time', 'yesterday']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /^restore: --to-time: "yesterday" is not a time/);
    const r3 = await run(['--data-dir', path.join(work, 'z')]);
    assert.equal(r3.code, 2);
    assert.equal(r3.stderr, 'restore: --store: missing\n');
  });
});
