/** App packages: deterministic packing, safe unpacking of untrusted archives, content hashing. */
export { DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits } from './limits.js';
export { packDirectory } from './pack.js';
export { extractArchive, type ExtractResult } from './extract.js';
export { hashDirectory, contentHash, type HashedFile } from './hash.js';
export { readPackageManifest } from './manifest.js';
