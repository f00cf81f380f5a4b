/**
 * The release content hash: sha256 over the sorted list of (path, exec bit, sha256 of the
 * content) of every regular file. Timestamps, owners, entry order and directories do not
 * take part, so the same content always gives the same hash however it was packed.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ArchiveLimits } from './limits.js';
import { resolveLimits } from './limits.js';
import { comparePaths } from './paths.js';
import { walkPackage } from './walk.js';

export interface HashedFile {
  /** Path relative to the package root, `/`-separated. */
  readonly path: string;
  readonly executable: boolean;
  /** sha256 hex of the file's content. */
  readonly sha256: string;
}

/** Version tag so that a future change of the scheme cannot collide with old hashes. */
const HASH_SCHEME = 'lanes-package-v1\n';

export function contentHash(files: readonly HashedFile[]): string {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  const h = createHash('sha256');
  h.update(HASH_SCHEME);
  // Paths cannot contain NUL, so NUL-separated records are unambiguous.
  for (const f of sorted) h.update(`${f.path}\0${f.executable ? 'x' : '-'}\0${f.sha256}\n`);
  return h.digest('hex');
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The content hash of a package directory: equal to the `hash` `extractArchive` returns for
 * `packDirectory(dir)`. Refuses what `packDirectory` refuses (symlinks, devices, limits).
 */
export async function hashDirectory(dir: string, limits?: Partial<ArchiveLimits>): Promise<string> {
  const entries = await walkPackage(dir, resolveLimits(limits));
  const files: HashedFile[] = [];
  for (const e of entries) {
    if (e.kind !== 'file') continue;
    files.push({ path: e.rel, executable: e.executable, sha256: await hashFile(e.abs) });
  }
  return contentHash(files);
}
