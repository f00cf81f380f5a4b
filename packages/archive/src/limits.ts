/**
 * Size and count limits for app packages. One set of numbers guards both directions: what
 * `packDirectory` agrees to pack and what `extractArchive` agrees to unpack from untrusted
 * input, so a package that packs always unpacks.
 */
import { InputError } from '@lanes/spec';

export interface ArchiveLimits {
  /** Total bytes of file content once unpacked. @default 104857600 (100 MiB) */
  readonly maxTotalBytes: number;
  /** Number of entries (files and directories). @default 10000 */
  readonly maxEntries: number;
  /** Bytes of one file. @default 52428800 (50 MiB) */
  readonly maxFileBytes: number;
  /** Bytes of one entry's path relative to the package root (UTF-8). @default 1024 */
  readonly maxPathBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxTotalBytes: 100 * 1024 * 1024,
  maxEntries: 10_000,
  maxFileBytes: 50 * 1024 * 1024,
  maxPathBytes: 1024,
});

/** Fills in defaults and rejects limits that are not positive integers. */
export function resolveLimits(limits: Partial<ArchiveLimits> = {}): Readonly<ArchiveLimits> {
  const out = { ...DEFAULT_ARCHIVE_LIMITS, ...limits };
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InputError(`limits.${key}: ${String(value)} is not a positive integer`, `limits.${key}`);
    }
  }
  return Object.freeze(out);
}
