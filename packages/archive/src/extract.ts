/**
 * Unpacks an UNTRUSTED `.tgz` into an empty directory. The tar stream is read sequentially
 * here (tar's Header decodes each 512-byte block) and every file is written by this module,
 * so every rule is checked before a byte reaches the disk: only regular files and
 * directories, no absolute paths, no `..`, no links or devices, limits on counts and sizes,
 * and the decompressed stream itself is metered so a gzip bomb stops early. On any error
 * everything written is removed and the destination is left empty.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, mkdir, open as openFile, readdir, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { InputError } from '@lanes/spec';
import { Header } from 'tar';
import type { HashedFile } from './hash.js';
import { contentHash } from './hash.js';
import type { ArchiveLimits } from './limits.js';
import { resolveLimits } from './limits.js';
import { isGitPath, normaliseEntryPath, packageError, quote } from './paths.js';

export interface ExtractResult {
  /** The release content hash (see `hashDirectory`). */
  readonly hash: string;
  /** Regular files written. */
  readonly files: number;
  /** Bytes of file content written. */
  readonly bytes: number;
}

const BLOCK = 512;
/** Largest pax or GNU long-name body accepted; real ones hold a path and a few fields. */
const MAX_META_BYTES = 64 * 1024;
/**
 * Decompressed bytes allowed per header beyond the file content: the header, a pax header
 * with a long path, and padding. Anything beyond that is not a package but a bomb.
 */
const OVERHEAD_PER_HEADER_BYTES = 4096;
/** Trailing zero blocks: tar pads archives to 10240-byte records. */
const OVERHEAD_TRAILER_BYTES = 20_480;
const NOT_AN_ARCHIVE = 'package: not a gzip-compressed tar archive';
/** O_EXCL + O_NOFOLLOW: never overwrite, never write through a link. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

class Truncated extends Error {}

/** Pulls the decompressed stream on demand, metering every byte against `onBytes`. */
class StreamReader {
  #buf: Buffer = Buffer.alloc(0);
  #done = false;
  #bytes = 0;
  constructor(
    private readonly source: AsyncIterator<Buffer>,
    private readonly onBytes: (total: number) => void,
  ) {}

  async #pull(): Promise<boolean> {
    if (this.#done) return false;
    let r: IteratorResult<Buffer>;
    try {
      r = await this.source.next();
    } catch (err) {
      if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_')) {
        throw new InputError(NOT_AN_ARCHIVE, 'package');
      }
      throw err;
    }
    if (r.done) {
      this.#done = true;
      return false;
    }
    this.#bytes += r.value.length;
    this.onBytes(this.#bytes);
    this.#buf = this.#buf.length === 0 ? r.value : Buffer.concat([this.#buf, r.value]);
    return true;
  }

  /** Exactly `n` bytes, or null when the stream ended cleanly before any of them. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#buf.length < n) {
      if (!(await this.#pull())) {
        if (this.#buf.length === 0) return null;
        throw new Truncated();
      }
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async readAll(n: number): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    const out = await this.read(n);
    if (!out) throw new Truncated();
    return out;
  }

  /** The next `n` bytes in pieces, without buffering them all. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0 && !(await this.#pull())) throw new Truncated();
      const take = Math.min(left, this.#buf.length);
      const piece = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      left -= take;
      yield piece;
    }
  }

  /** Reads to the end (still metered), so trailing data cannot hide a bomb. */
  async drain(): Promise<void> {
    this.#buf = Buffer.alloc(0);
    while (await this.#pull()) this.#buf = Buffer.alloc(0);
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

interface PaxFields {
  path?: string;
  size?: number;
  link?: boolean;
}

/** Parses pax records (`LEN key=value\n`) by their lengths, so values may hold anything. */
function parsePax(body: Buffer, after: string): PaxFields {
  const out: PaxFields = {};
  const corrupt = (): InputError => packageError(`corrupt pax extended header after entry ${after}`);
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // NUL padding after the last record
    const space = body.indexOf(0x20, pos);
    if (space < 0) throw corrupt();
    const lenText = body.subarray(pos, space).toString('latin1');
    if (!/^[1-9][0-9]{0,6}$/.test(lenText)) throw corrupt();
    const len = Number(lenText);
    const record = body.subarray(pos, pos + len);
    if (record.length !== len || record[len - 1] !== 0x0a) throw corrupt();
    const kv = record.subarray(space - pos + 1, len - 1);
    const eq = kv.indexOf(0x3d);
    if (eq < 0) throw corrupt();
    const key = kv.subarray(0, eq).toString('utf8');
    const value = kv.subarray(eq + 1).toString('utf8');
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.link = true;
    else if (key === 'size') {
      if (!/^[0-9]{1,15}$/.test(value)) throw corrupt();
      out.size = Number(value);
    }
    pos += len;
  }
  return out;
}

/** A GNU long-name body: the name, NUL-terminated. A NUL inside the name is kept to be refused. */
function parseLongName(body: Buffer): string {
  let end = body.length;
  while (end > 0 && body[end - 1] === 0) end--;
  return body.subarray(0, end).toString('utf8');
}

function describeType(type: string): string {
  switch (type) {
    case 'SymbolicLink':
      return 'a symbolic link';
    case 'Link':
      return 'a hard link';
    case 'CharacterDevice':
      return 'a character device';
    case 'BlockDevice':
      return 'a block device';
    case 'FIFO':
      return 'a FIFO';
    default:
      return `of unsupported type ${type}`;
  }
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** The file being written, so the error path can close it before cleaning up. */
interface OpenFile {
  handle: FileHandle | null;
}

async function assertEmptyDirectory(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new InputError(`destDir: ${quote(dir)} is not an existing directory`, 'destDir');
  if ((await readdir(dir)).length > 0) throw new InputError(`destDir: ${quote(dir)} is not empty`, 'destDir');
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) {
    await rm(path.join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Unpacks untrusted `tgz` into `destDir`, an existing empty directory, and returns its
 * content hash. Throws an InputError naming the offending entry for anything unsafe or
 * over `limits`; on any error `destDir` is left empty.
 */
export async function extractArchive(tgz: Buffer, destDir: string, limits?: Partial<ArchiveLimits>): Promise<ExtractResult> {
  const lim = resolveLimits(limits);
  await assertEmptyDirectory(destDir);
  const root = await realpath(destDir);
  if (tgz.length < 2 || tgz[0] !== 0x1f || tgz[1] !== 0x8b) throw new InputError(NOT_AN_ARCHIVE, 'package');

  const gunzip = createGunzip();
  const open: OpenFile = { handle: null };
  try {
    gunzip.end(tgz);
    return await unpack(gunzip[Symbol.asyncIterator](), root, lim, open);
  } catch (err) {
    await open.handle?.close().catch(() => undefined);
    await emptyDirectory(root);
    if (err instanceof Truncated) throw packageError('the archive is truncated');
    throw err;
  } finally {
    gunzip.destroy();
  }
}

async function unpack(
  source: AsyncIterator<Buffer>,
  root: string,
  lim: Readonly<ArchiveLimits>,
  current: OpenFile,
): Promise<ExtractResult> {
  let headers = 0;
  let last: string | null = null;
  const where = (): string => (last === null ? '' : ` (after entry ${quote(last)})`);
  const reader = new StreamReader(source, (total) => {
    const cap = lim.maxTotalBytes + OVERHEAD_PER_HEADER_BYTES * (headers + 1) + OVERHEAD_TRAILER_BYTES;
    if (total > cap) throw packageError(`the archive decompresses to more than the limit of ${lim.maxTotalBytes} bytes${where()}`);
  });
  const made = new Set<string>(['']);
  const files: HashedFile[] = [];
  let entries = 0;
  let totalBytes = 0;
  let pending: PaxFields = {};

  const ensureDir = async (rel: string, entry: string): Promise<void> => {
    if (made.has(rel)) return;
    const parent = path.posix.dirname(rel);
    await ensureDir(parent === '.' ? '' : parent, entry);
    const abs = path.join(root, rel);
    try {
      await mkdir(abs, { mode: 0o755 });
    } catch (err) {
      const st = await lstat(abs).catch(() => null);
      if (!st?.isDirectory()) throw packageError(`entry ${quote(entry)} conflicts with an earlier entry ${quote(rel)}`);
      if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) throw err;
    }
    made.add(rel);
  };

  for (;;) {
    const block = await reader.read(BLOCK);
    if (block === null) {
      if (headers === 0) throw new InputError(NOT_AN_ARCHIVE, 'package');
      break;
    }
    if (isZeroBlock(block)) {
      const next = await reader.read(BLOCK);
      if (next === null || isZeroBlock(next)) break; // end-of-archive marker
      throw packageError(`corrupt tar header${where()}`);
    }
    headers++;
    if (headers > 3 * lim.maxEntries + 3) throw packageError(`the archive has more than the limit of ${lim.maxEntries} entries${where()}`);
    const exFields: { path?: string; size?: number } = {};
    if (pending.path !== undefined) exFields.path = pending.path;
    if (pending.size !== undefined) exFields.size = pending.size;
    const h = new Header(block, 0, exFields);
    if (!h.cksumValid) {
      if (last === null) throw new InputError(NOT_AN_ARCHIVE, 'package');
      throw packageError(`corrupt tar header${where()}`);
    }
    const size = h.size;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) throw packageError(`corrupt tar header${where()}`);
    const type = h.type;

    // Metadata headers describe the next entry.
    if (type === 'ExtendedHeader' || type === 'OldExtendedHeader' || type === 'GlobalExtendedHeader' || type === 'NextFileHasLongPath' || type === 'OldGnuLongPath' || type === 'NextFileHasLongLinkpath') {
      if (size > MAX_META_BYTES) throw packageError(`extended header of ${size} bytes is larger than ${MAX_META_BYTES}${where()}`);
      const body = await reader.readAll(size);
      await reader.readAll((BLOCK - (size % BLOCK)) % BLOCK);
      if (type === 'GlobalExtendedHeader') {
        // Global headers that change names or sizes of later entries are a parser-confusion trick.
        const g = parsePax(body, quote(last ?? '(start)'));
        if (g.path !== undefined || g.size !== undefined || g.link) throw packageError(`global extended header sets path, size or link${where()}`);
      } else if (type === 'NextFileHasLongLinkpath') {
        pending = { ...pending, link: true };
      } else if (type === 'NextFileHasLongPath' || type === 'OldGnuLongPath') {
        pending = { ...pending, path: parseLongName(body) };
      } else {
        pending = { ...pending, ...parsePax(body, quote(last ?? '(start)')) };
      }
      continue;
    }

    const raw = h.path ?? '';
    const isLink = pending.link === true || (h.linkpath ?? '') !== '';
    pending = {};
    last = raw;
    const q = quote(raw);
    const rel = normaliseEntryPath(raw, lim.maxPathBytes);
    const isFile = FILE_TYPES.has(type);
    if (!isFile && type !== 'Directory') {
      throw packageError(`entry ${q} is ${describeType(type)}; packages may only contain regular files and directories`);
    }
    if (isLink) throw packageError(`entry ${q} carries a link target; packages may only contain regular files and directories`);
    if (rel === '' && isFile) throw packageError(`entry ${q} has an empty path`);
    const abs = path.resolve(root, rel);
    if (rel !== '' && !abs.startsWith(root + path.sep)) throw packageError(`entry ${q} leaves the package directory`);

    if (isGitPath(rel)) {
      // Version-control state never belongs to a release (packDirectory skips it too).
      for await (const piece of reader.stream(size)) void piece;
      await reader.readAll((BLOCK - (size % BLOCK)) % BLOCK);
      continue;
    }
    if (rel === '') continue; // the root itself (`./`)

    entries++;
    if (entries > lim.maxEntries) throw packageError(`entry ${q} exceeds the limit of ${lim.maxEntries} entries`);

    if (type === 'Directory') {
      await ensureDir(rel, raw);
      continue;
    }
    if (size > lim.maxFileBytes) throw packageError(`entry ${q} is ${size} bytes, more than the limit of ${lim.maxFileBytes} bytes per file`);
    if (totalBytes + size > lim.maxTotalBytes) throw packageError(`entry ${q} brings the package over the limit of ${lim.maxTotalBytes} bytes`);

    const parent = path.posix.dirname(rel);
    await ensureDir(parent === '.' ? '' : parent, raw);
    const executable = ((h.mode ?? 0) & 0o111) !== 0;
    const mode = executable ? 0o755 : 0o644;
    let fh: FileHandle;
    try {
      fh = await openFile(abs, CREATE_FLAGS, mode);
    } catch (err) {
      if (err instanceof Error && 'code' in err && (err.code === 'EEXIST' || err.code === 'ELOOP' || err.code === 'EISDIR' || err.code === 'ENOTDIR')) {
        throw packageError(`entry ${q} appears twice or conflicts with an earlier entry`);
      }
      throw err;
    }
    current.handle = fh;
    const sha = createHash('sha256');
    let written = 0;
    for await (const piece of reader.stream(size)) {
      // Counted as written, not as announced: the header is never the only guard.
      written += piece.length;
      if (written > lim.maxFileBytes || totalBytes + written > lim.maxTotalBytes) throw packageError(`entry ${q} exceeds the size limits`);
      sha.update(piece);
      await fh.write(piece);
    }
    await fh.chmod(mode); // the umask must not decide the exec bit
    current.handle = null;
    await fh.close();
    totalBytes += written;
    files.push({ path: rel, executable, sha256: sha.digest('hex') });
    await reader.readAll((BLOCK - (size % BLOCK)) % BLOCK);
  }
  await reader.drain();
  return { hash: contentHash(files), files: files.length, bytes: totalBytes };
}
