import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { InputError } from '@lanes/spec';
import { tempDir } from '@lanes/testkit';
import { Header } from 'tar';
import type { ArchiveLimits } from './index.js';
import { DEFAULT_ARCHIVE_LIMITS, extractArchive, hashDirectory, packDirectory, readPackageManifest } from './index.js';

const run = promisify(execFile);
const dirs: string[] = [];
async function scratch(): Promise<string> {
  const d = await tempDir('lanes-archive-');
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const MANIFEST = 'name: hello\nservices:\n  web:\n    command: node server.js\n    http: true\n';

async function sampleApp(root: string): Promise<void> {
  await mkdir(path.join(root, 'lib', 'deep'), { recursive: true });
  await mkdir(path.join(root, 'empty'));
  await mkdir(path.join(root, '.git'));
  await writeFile(path.join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  await writeFile(path.join(root, 'lanes.yaml'), MANIFEST);
  await writeFile(path.join(root, 'server.js'), 'console.log("hi")\n');
  await writeFile(path.join(root, 'lib', 'deep', 'data.bin'), randomBytes(70_000));
  await writeFile(path.join(root, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(root, 'run.sh'), 0o700);
  await writeFile(path.join(root, `${'long-name-'.repeat(20)}.txt`), 'a path longer than ustar allows\n');
  await writeFile(path.join(root, 'ünïcode.txt'), 'utf-8 name\n');
}

/** One tar entry (header, body, padding) built with tar's Header, for hostile archives. */
function entry(fields: ConstructorParameters<typeof Header>[0], body: Buffer = Buffer.alloc(0)): Buffer {
  const block = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: body.length, ...fields }).encode(block, 0);
  return Buffer.concat([block, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

function file(name: string, content: string | Buffer = 'x'): Buffer {
  return entry({ path: name, type: 'File' }, Buffer.from(content));
}

function paxPath(name: string): Buffer {
  const field = ` path=${name}\n`;
  let len = Buffer.byteLength(field) + 1;
  while (String(len).length + Buffer.byteLength(field) !== len) len++;
  return entry({ path: 'PaxHeader', type: 'ExtendedHeader' }, Buffer.from(`${len}${field}`));
}

function tgz(...parts: Buffer[]): Buffer {
  return gzipSync(Buffer.concat([...parts, Buffer.alloc(1024)]));
}

/** Extracts into parent/dest and checks the refusal, that dest is empty and nothing else appeared. */
async function assertRefused(archive: Buffer, pattern: RegExp, limits?: Partial<ArchiveLimits>): Promise<void> {
  const parent = await scratch();
  const dest = path.join(parent, 'dest');
  await mkdir(dest);
  await assert.rejects(extractArchive(archive, dest, limits), (err: unknown) => {
    assert.ok(err instanceof InputError, `expected an InputError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
  assert.deepEqual(await readdir(parent), ['dest']);
  assert.deepEqual(await readdir(dest), []);
}

describe('packDirectory and extractArchive', () => {
  it('round-trips a directory: the extracted hash equals hashDirectory of the source', async () => {
    const src = await scratch();
    await sampleApp(src);
    const dest = await scratch();
    const result = await extractArchive(await packDirectory(src), dest);
    assert.equal(result.hash, await hashDirectory(src));
    assert.equal(result.hash, await hashDirectory(dest));
    assert.equal(result.files, 6);
    assert.deepEqual((await readdir(dest)).sort(), [`${'long-name-'.repeat(20)}.txt`, 'empty', 'lanes.yaml', 'lib', 'run.sh', 'server.js', 'ünïcode.txt'].sort());
    assert.deepEqual(await readFile(path.join(dest, 'lib', 'deep', 'data.bin')), await readFile(path.join(src, 'lib', 'deep', 'data.bin')));
    assert.equal((await stat(path.join(dest, 'run.sh'))).mode & 0o777, 0o755);
    assert.equal((await stat(path.join(dest, 'server.js'))).mode & 0o777, 0o644);
    assert.equal(existsSync(path.join(dest, '.git')), false);
    assert.equal((await readPackageManifest(dest)).name, 'hello');
  });

  it('packs deterministically: same content, different mtimes and creation order give the same bytes', async () => {
    const a = await scratch();
    await sampleApp(a);
    const b = await scratch();
    // Created in another order, other timestamps, other permission bits but the same exec bit.
    await writeFile(path.join(b, 'ünïcode.txt'), 'utf-8 name\n');
    await writeFile(path.join(b, 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(b, 'run.sh'), 0o751);
    await mkdir(path.join(b, 'lib', 'deep'), { recursive: true });
    await writeFile(path.join(b, 'lib', 'deep', 'data.bin'), await readFile(path.join(a, 'lib', 'deep', 'data.bin')));
    await writeFile(path.join(b, `${'long-name-'.repeat(20)}.txt`), 'a path longer than ustar allows\n');
    await writeFile(path.join(b, 'server.js'), 'console.log("hi")\n');
    await chmod(path.join(b, 'server.js'), 0o600);
    await writeFile(path.join(b, 'lanes.yaml'), MANIFEST);
    await mkdir(path.join(b, 'empty'));
    await utimes(path.join(b, 'server.js'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const [pa, pb] = [await packDirectory(a), await packDirectory(b)];
    assert.ok(pa.equals(pb), 'the two archives differ');
    assert.ok((await packDirectory(a)).equals(pa), 'packing twice gives different bytes');
    assert.equal(await hashDirectory(a), await hashDirectory(b));
  });

  it('gives a different hash when only the exec bit changes', async () => {
    const src = await scratch();
    await writeFile(path.join(src, 'lanes.yaml'), MANIFEST);
    const before = await hashDirectory(src);
    await chmod(path.join(src, 'lanes.yaml'), 0o755);
    assert.notEqual(await hashDirectory(src), before);
  });

  it('extracts an archive made by GNU tar with ./ prefixes', async () => {
    const src = await scratch();
    await sampleApp(src);
    await rm(path.join(src, '.git'), { recursive: true });
    const out = path.join(await scratch(), 'app.tgz');
    await run('tar', ['-czf', out, '-C', src, '.']);
    const dest = await scratch();
    const result = await extractArchive(await readFile(out), dest);
    assert.equal(result.hash, await hashDirectory(src));
  });

  it('refuses symlinks, FIFOs and sockets in the source, naming the file', async () => {
    const src = await scratch();
    await writeFile(path.join(src, 'lanes.yaml'), MANIFEST);
    await symlink('/etc/passwd', path.join(src, 'passwd'));
    await assert.rejects(packDirectory(src), /package: entry "passwd" is a symbolic link/);
    await rm(path.join(src, 'passwd'));
    await run('mkfifo', [path.join(src, 'pipe')]);
    await assert.rejects(packDirectory(src), /package: entry "pipe" is a FIFO/);
    await rm(path.join(src, 'pipe'));
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(src, 'sock'), resolve));
    try {
      await assert.rejects(hashDirectory(src), /package: entry "sock" is a socket/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('enforces the limits when packing', async () => {
    const src = await scratch();
    await writeFile(path.join(src, 'big.bin'), Buffer.alloc(2000));
    await assert.rejects(packDirectory(src, { maxFileBytes: 1000 }), /entry "big.bin" is 2000 bytes, more than the limit of 1000/);
    await writeFile(path.join(src, 'b.bin'), 'b');
    await assert.rejects(packDirectory(src, { maxEntries: 1 }), /entry "big.bin" exceeds the limit of 1 entries/);
  });
});


describe('extractArchive refuses hostile archives', () => {
  const tmp = path.join('/tmp', `lanes-evil-${process.pid}-${Date.now()}`);
  after(async () => {
    await rm(tmp, { force: true });
  });

  const cases: [string, () => Buffer, RegExp][] = [
    ['../evil', () => tgz(file('ok.txt'), file('../evil')), /entry "\.\.\/evil" contains a '\.\.' segment/],
    ['a/../../evil', () => tgz(file('ok.txt'), file('a/../../evil')), /entry "a\/\.\.\/\.\.\/evil" contains a '\.\.' segment/],
    ['a/.. (dir)', () => tgz(entry({ path: 'a/../', type: 'Directory' })), /entry "a\/\.\.\/" contains a '\.\.' segment/],
    ['/etc/x (absolute)', () => tgz(file('ok.txt'), file(tmp)), /is an absolute path/],
    ['/etc/x via pax', () => tgz(file('ok.txt'), paxPath('/etc/x'), file('innocent')), /entry "\/etc\/x" is an absolute path/],
    ['symlink', () => tgz(file('ok.txt'), entry({ path: 'link', type: 'SymbolicLink', linkpath: '/etc' })), /entry "link" is a symbolic link/],
    ['symlink then file through it', () => tgz(entry({ path: 'l', type: 'SymbolicLink', linkpath: '..' }), file('l/evil')), /entry "l" is a symbolic link/],
    ['hard link', () => tgz(file('ok.txt'), entry({ path: 'hard', type: 'Link', linkpath: 'ok.txt' })), /entry "hard" is a hard link/],
    ['char device', () => tgz(file('ok.txt'), entry({ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 })), /entry "null" is a character device/],
    ['block device', () => tgz(entry({ path: 'sda', type: 'BlockDevice', devmaj: 8, devmin: 0 })), /entry "sda" is a block device/],
    ['FIFO', () => tgz(file('ok.txt'), entry({ path: 'fifo', type: 'FIFO' })), /entry "fifo" is a FIFO/],
    ['NUL in a pax path', () => tgz(paxPath('a\0b'), file('x')), /entry "a\\u0000b" has a NUL byte/],
    ['backslash', () => tgz(file('ok.txt'), file('..\\evil')), /entry "\.\.\\\\evil" has a backslash/],
    ['duplicate file', () => tgz(file('ok.txt'), file('ok.txt')), /entry "ok.txt" appears twice/],
    ['file under a file', () => tgz(file('ok.txt'), file('ok.txt/x')), /entry "ok.txt\/x" conflicts with an earlier entry "ok.txt"/],
    ['garbage', () => randomBytes(4096), /^package: not a gzip-compressed tar archive$/],
    ['gzip of garbage', () => gzipSync(Buffer.alloc(4096, 'not a tar ')), /^package: not a gzip-compressed tar archive$/],
    ['truncated gzip', () => tgz(file('ok.txt', randomBytes(100_000))).subarray(0, 50_000), /^package: not a gzip-compressed tar archive$/],
    ['truncated tar', () => gzipSync(file('ok.txt', Buffer.alloc(2000, 1)).subarray(0, 1000)), /package: the archive is truncated/],
  ];
  for (const [name, make, pattern] of cases) {
    it(`refuses ${name}`, async () => {
      await assertRefused(make(), pattern);
      assert.equal(existsSync(tmp), false);
    });
  }

  it('refuses too many entries', async () => {
    const parts = Array.from({ length: 6 }, (_, i) => file(`f${i}`));
    await assertRefused(tgz(...parts), /entry "f5" exceeds the limit of 5 entries/, { maxEntries: 5 });
  });

  it('refuses a single oversized file before writing it', async () => {
    await assertRefused(tgz(file('ok.txt'), file('big.bin', Buffer.alloc(5000))), /entry "big.bin" is 5000 bytes, more than the limit of 4096 bytes per file/, { maxFileBytes: 4096 });
  });

  it('refuses files that together exceed the total size', async () => {
    await assertRefused(tgz(file('a', Buffer.alloc(3000)), file('b', Buffer.alloc(3000))), /entry "b" brings the package over the limit of 5000 bytes/, { maxTotalBytes: 5000 });
  });

  it('refuses a path over the length limit', async () => {
    await assertRefused(tgz(file(`${'d/'.repeat(40)}f`)), /has a path longer than the limit of 64 bytes/, { maxPathBytes: 64 });
  });

  it('stops a gzip bomb while decompressing', async () => {
    // 64 MiB of zeros compress to ~64 KiB; with a 1 MiB limit it must stop early.
    const bomb = gzipSync(Buffer.concat([file('ok.txt'), Buffer.alloc(64 * 1024 * 1024)]));
    assert.ok(bomb.length < 200_000);
    const started = Date.now();
    await assertRefused(bomb, /the archive decompresses to more than the limit of 1048576 bytes \(after entry "ok.txt"\)/, { maxTotalBytes: 1024 * 1024 });
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  it('stops a bomb hidden in a file body by counting, whatever the header says', async () => {
    const bomb = gzipSync(file('zeros.bin', Buffer.alloc(8 * 1024 * 1024)));
    await assertRefused(bomb, /entry "zeros.bin" brings the package over the limit of 1048576 bytes/, { maxTotalBytes: 1024 * 1024 });
  });

  it('refuses a destination that is not empty', async () => {
    const dest = await scratch();
    await writeFile(path.join(dest, 'keep'), 'x');
    await assert.rejects(extractArchive(tgz(file('a')), dest), /destDir: .* is not empty/);
    assert.deepEqual(await readdir(dest), ['keep']);
  });
});

describe('readPackageManifest', () => {
  it('refuses a package without lanes.yaml at the root', async () => {
    const dir = await scratch();
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'sub', 'lanes.yaml'), MANIFEST);
    await assert.rejects(readPackageManifest(dir), { message: 'package: lanes.yaml not found at the package root' });
  });

  it('validates the manifest', async () => {
    const dir = await scratch();
    await writeFile(path.join(dir, 'lanes.yaml'), 'name: hello\nservices:\n  web:\n    command: x\n    comand: y\n');
    await assert.rejects(readPackageManifest(dir), /services\.web: unknown key "comand"/);
  });
});

describe('DEFAULT_ARCHIVE_LIMITS', () => {
  it('are the documented defaults', () => {
    assert.deepEqual({ ...DEFAULT_ARCHIVE_LIMITS }, { maxTotalBytes: 104_857_600, maxEntries: 10_000, maxFileBytes: 52_428_800, maxPathBytes: 1024 });
  });
});
