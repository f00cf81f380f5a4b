/**
 * PostgreSQL's archive_command and restore_command (rendered by the keeper; PostgreSQL runs
 * them through `sh -c`, every argument quoted):
 *   node wal-main.js archive --store DIR <%p> <%f>   archives one WAL file (exit 0: stored or
 *                                                   an identical copy already there)
 *   node wal-main.js restore --store DIR <%f> <%p>   restores one (exit 1: not in the archive)
 * Any failure exits non-zero with one line on stderr (it lands in the PostgreSQL log), and
 * PostgreSQL retries the file later.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DirectoryBackupStore, checkWalName } from './backup.js';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true, options: { store: { type: 'string' } } });
  const [command, a, b] = positionals;
  if (values.store === undefined || a === undefined || b === undefined || positionals.length !== 3) {
    process.stderr.write('wal: usage: wal-main.js archive|restore --store DIR PATH NAME | NAME PATH\n');
    return 2;
  }
  const store = new DirectoryBackupStore(values.store);
  if (command === 'archive') {
    const outcome = await store.putWal(checkWalName(b), path.resolve(a));
    if (outcome === 'duplicate') process.stderr.write(`wal: ${b} was already archived (identical)\n`);
    return 0;
  }
  if (command === 'restore') return (await store.getWal(checkWalName(a), path.resolve(b))) ? 0 : 1;
  process.stderr.write(`wal: unknown command ${JSON.stringify(command)}; use archive or restore\n`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`wal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
