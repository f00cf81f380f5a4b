/**
 * Lists a package directory on disk for packing and hashing: regular files and directories
 * only, `.git` skipped, sorted by path, limits enforced. Anything else (symlinks, devices,
 * sockets, FIFOs) is refused by name rather than silently dropped.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ArchiveLimits } from './limits.js';
import { comparePaths, normaliseEntryPath, packageError, quote } from './paths.js';

export interface WalkEntry {
  readonly rel: string;
  readonly abs: string;
  readonly kind: 'file' | 'dir';
  readonly size: number;
  readonly executable: boolean;
}

function describeOther(st: Awaited<ReturnType<typeof lstat>>): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file or directory';
}

export async function walkPackage(root: string, limits: Readonly<ArchiveLimits>): Promise<WalkEntry[]> {
  const rootStat = await stat(root).catch((err: unknown) => {
    throw packageError(`cannot read directory ${quote(root)}: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (!rootStat.isDirectory()) throw packageError(`${quote(root)} is not a directory`);
  const out: WalkEntry[] = [];
  let totalBytes = 0;
  const visit = async (relDir: string): Promise<void> => {
    const names = (await readdir(path.join(root, relDir))).sort(comparePaths);
    for (const name of names) {
      if (name === '.git') continue;
      const rel = normaliseEntryPath(relDir === '' ? name : `${relDir}/${name}`, limits.maxPathBytes);
      const abs = path.join(root, rel);
      const st = await lstat(abs);
      if (out.length + 1 > limits.maxEntries) throw packageError(`entry ${quote(rel)} exceeds the limit of ${limits.maxEntries} entries`);
      if (st.isDirectory()) {
        out.push({ rel, abs, kind: 'dir', size: 0, executable: true });
        await visit(rel);
      } else if (st.isFile()) {
        if (st.size > limits.maxFileBytes) {
          throw packageError(`entry ${quote(rel)} is ${st.size} bytes, more than the limit of ${limits.maxFileBytes} bytes per file`);
        }
        totalBytes += st.size;
        if (totalBytes > limits.maxTotalBytes) {
          throw packageError(`entry ${quote(rel)} brings the package over the limit of ${limits.maxTotalBytes} bytes`);
        }
        out.push({ rel, abs, kind: 'file', size: st.size, executable: (st.mode & 0o111) !== 0 });
      } else {
        throw packageError(`entry ${quote(rel)} is ${describeOther(st)}; packages may only contain regular files and directories`);
      }
    }
  };
  await visit('');
  return out.sort((a, b) => comparePaths(a.rel, b.rel));
}
