/**
 * Point-in-time recovery into a new data directory, offline (what `lanes db restore … --as
 * NEWNAME` runs): `node restore-main.js --store DIR --data-dir NEW --to-time ISO [--backup
 * ID] [--retention 10d] [--run-as USER] [--pg-bin DIR]`. Prints one JSON line ({ backup,
 * dataDir }) and exits 0; bad input (a time outside the retention window, an unknown
 * backup, a data directory that is not empty) exits 2 with one line naming the value;
 * anything else exits 1. The new directory is left cleanly shut down, ready for a keeper.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { InputError, isLanesError } from '@lanes/spec';
import { DirectoryBackupStore, restoreCommandFor, restoreToTime } from './backup.js';
import { findPostgresBin, ownedDir, resolveRunAs } from './pgexec.js';

const schema = z.object({
  store: z.string().min(1),
  dataDir: z.string().min(1),
  /** ISO 8601; absent: the end of the newest backup. */
  toTime: z.string().optional(),
  backup: z.string().optional(),
  /** @default '10d' */
  retention: z.string().regex(/^\d{1,4}d$/, 'must be a number of days like 10d').default('10d'),
  runAs: z.string().optional(),
  pgBin: z.string().optional(),
  /** The port of the recovery run (nothing listens on TCP; it names the socket). @default 54329 */
  port: z.coerce.number().int().min(1).max(65_535).default(54_329),
});

async function main(): Promise<number> {
  let cfg: z.infer<typeof schema>;
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: { store: { type: 'string' }, 'data-dir': { type: 'string' }, 'to-time': { type: 'string' }, backup: { type: 'string' }, retention: { type: 'string' }, 'run-as': { type: 'string' }, 'pg-bin': { type: 'string' }, port: { type: 'string' } },
    });
    const parsed = schema.safeParse({ store: values.store, dataDir: values['data-dir'], toTime: values['to-time'], backup: values.backup, retention: values.retention, runAs: values['run-as'], pgBin: values['pg-bin'], port: values.port });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const key = String(issue?.path[0] ?? 'flags').replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`);
      throw new InputError(`--${key}: ${issue?.code === 'invalid_type' ? 'missing' : (issue?.message ?? 'invalid')}`, key);
    }
    cfg = parsed.data;
  } catch (err) {
    process.stderr.write(`restore: ${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)}\n`);
    return 2;
  }
  const target = cfg.toTime === undefined ? null : new Date(cfg.toTime);
  if (target !== null && Number.isNaN(target.getTime())) {
    process.stderr.write(`restore: --to-time: ${JSON.stringify(cfg.toTime)} is not a time; use ISO 8601, e.g. 2026-12-02T11:30:00Z\n`);
    return 2;
  }
  const bin = cfg.pgBin ?? findPostgresBin();
  if (bin === null) {
    process.stderr.write('restore: PostgreSQL binaries not found; install postgresql or give --pg-bin\n');
    return 1;
  }
  const runAs = await resolveRunAs(cfg.runAs ?? null);
  const dataDir = path.resolve(cfg.dataDir);
  const socketDir = `${dataDir}.run`;
  await ownedDir(socketDir, runAs, 0o700);
  const store = new DirectoryBackupStore(cfg.store);
  const walMain = path.join(path.dirname(new URL(import.meta.url).pathname), 'wal-main.js');
  const result = await restoreToTime({
    store,
    tools: { bin, runAs },
    dataDir,
    targetTime: target,
    ...(cfg.backup !== undefined ? { backupId: cfg.backup } : {}),
    retentionMs: Number(cfg.retention.slice(0, -1)) * 86_400_000,
    restoreCommand: restoreCommandFor(store.root, walMain),
    port: cfg.port,
    socketDir,
  });
  await rm(socketDir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ backup: result.backup.id, dataDir: result.dataDir })}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const input = isLanesError(err) && (err.code === 'LANES_ERR_INPUT' || err.code === 'LANES_ERR_NOT_FOUND' || err.code === 'LANES_ERR_CONFLICT');
    process.stderr.write(`restore: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(input ? 2 : 1);
  },
);
