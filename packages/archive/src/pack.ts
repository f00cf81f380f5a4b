/**
 * Packs a directory into a deterministic gzipped tar: entries sorted by path, mtime 0,
 * owner 0/0 without names, modes reduced to 0644/0755 (only the exec bit survives), so the
 * same content always gives the same bytes.
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header } from 'tar';
import type { ArchiveLimits } from './limits.js';
import { resolveLimits } from './limits.js';
import { packageError, quote } from './paths.js';
import { walkPackage } from './walk.js';

const EPOCH = new Date(0);
const BLOCK = 512;

function headerBlock(fields: ConstructorParameters<typeof Header>[0]): { block: Buffer; needPax: boolean } {
  const block = Buffer.alloc(BLOCK);
  const needPax = new Header(fields).encode(block, 0);
  return { block, needPax };
}

/** A pax extended header carrying a path that does not fit (or is not ASCII) in ustar. */
function paxPathHeader(entryPath: string): Buffer {
  const field = ` path=${entryPath}\n`;
  // The record length counts its own digits: grow until it is self-consistent.
  let len = Buffer.byteLength(field) + 1;
  while (String(len).length + Buffer.byteLength(field) !== len) len++;
  const body = Buffer.from(`${len}${field}`);
  const { block } = headerBlock({ path: '././@PaxHeader', type: 'ExtendedHeader', size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: EPOCH, uname: '', gname: '' });
  return Buffer.concat([block, body, padding(body.length)]);
}

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

async function* tarStream(dir: string, limits: Readonly<ArchiveLimits>): AsyncGenerator<Buffer> {
  const entries = await walkPackage(dir, limits);
  for (const e of entries) {
    const entryPath = e.kind === 'dir' ? `${e.rel}/` : e.rel;
    let data: Buffer | null = null;
    if (e.kind === 'file') {
      data = await readFile(e.abs);
      // The walk checked the size from stat; a file growing since must not slip through.
      if (data.length !== e.size) throw packageError(`entry ${quote(e.rel)} changed while it was being packed`);
    }
    const { block, needPax } = headerBlock({
      path: entryPath,
      type: e.kind === 'dir' ? 'Directory' : 'File',
      size: data?.length ?? 0,
      mode: e.executable ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: EPOCH,
      uname: '',
      gname: '',
    });
    if (needPax) yield paxPathHeader(entryPath);
    yield block;
    if (data) {
      yield data;
      yield padding(data.length);
    }
  }
  yield Buffer.alloc(2 * BLOCK);
}

/**
 * A deterministic `.tgz` of `dir` (see module header). Skips `.git`; refuses symlinks,
 * devices, sockets and FIFOs with an InputError naming the file; enforces `limits`.
 */
export async function packDirectory(dir: string, limits?: Partial<ArchiveLimits>): Promise<Buffer> {
  const resolved = resolveLimits(limits);
  const chunks: Buffer[] = [];
  await pipeline(Readable.from(tarStream(dir, resolved)), createGzip({ level: 9 }), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}
