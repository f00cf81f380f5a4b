/** Reads and validates the `lanes.yaml` at the root of an unpacked package. */
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from '@lanes/spec';
import { InputError, MANIFEST_FILE, MAX_MANIFEST_BYTES, parseManifest } from '@lanes/spec';

const NOT_FOUND = `package: ${MANIFEST_FILE} not found at the package root`;

export async function readPackageManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST_FILE);
  const st = await lstat(file).catch(() => null);
  if (!st) throw new InputError(NOT_FOUND, MANIFEST_FILE);
  if (!st.isFile()) throw new InputError(`package: ${MANIFEST_FILE} is not a regular file`, MANIFEST_FILE);
  // parseManifest checks the size too; checking first avoids reading a huge file at all.
  if (st.size > MAX_MANIFEST_BYTES) throw new InputError(`${MANIFEST_FILE}: is larger than ${MAX_MANIFEST_BYTES} bytes`, MANIFEST_FILE);
  return parseManifest(await readFile(file, 'utf8'));
}
