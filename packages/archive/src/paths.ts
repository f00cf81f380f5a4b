/**
 * Validation of entry paths, shared by packing (names found on disk) and unpacking (names
 * found in untrusted archives). A valid path is relative, uses `/` only, has no `..`, no
 * NUL and no backslash, and stays within the length limits.
 */
import { InputError } from '@lanes/spec';

/** Linux NAME_MAX: longer segments could never be created anyway. */
const MAX_SEGMENT_BYTES = 255;

export function packageError(message: string): InputError {
  return new InputError(`package: ${message}`, 'package');
}

export function quote(name: string): string {
  return JSON.stringify(name);
}

/**
 * Normalises an archive entry path (`./a//b/` → `a/b`) or throws an InputError naming it.
 * Returns '' for the package root itself (`./`).
 */
export function normaliseEntryPath(raw: string, maxPathBytes: number): string {
  const q = quote(raw);
  if (raw.includes('\0')) throw packageError(`entry ${q} has a NUL byte in its name`);
  if (raw.includes('\\')) throw packageError(`entry ${q} has a backslash in its name; use / to separate directories`);
  if (raw.startsWith('/')) throw packageError(`entry ${q} is an absolute path; entries must be relative to the package root`);
  const segments = raw.split('/');
  if (segments.includes('..')) throw packageError(`entry ${q} contains a '..' segment`);
  const kept = segments.filter((s) => s !== '' && s !== '.');
  const rel = kept.join('/');
  if (Buffer.byteLength(rel) > maxPathBytes) {
    throw packageError(`entry ${q} has a path longer than the limit of ${maxPathBytes} bytes`);
  }
  if (kept.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    throw packageError(`entry ${q} has a name longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return rel;
}

/** True when a `.git` directory is on the path: packages never carry version-control state. */
export function isGitPath(rel: string): boolean {
  return rel.split('/').includes('.git');
}

/** Byte-wise ordering of UTF-8 paths, independent of locale. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
