import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LatestWriter, readJsonFile, writeFileAtomic } from './files.js';

const dir = (): Promise<string> => mkdtemp(path.join(os.tmpdir(), 'lanes-runtime-'));

describe('state files', () => {
  it('writes atomically with mode 0600 and leaves no temporary file behind', async () => {
    const d = await dir();
    const file = path.join(d, 'state.json');
    await writeFileAtomic(file, '{"a":1}');
    await writeFileAtomic(file, '{"a":2}');
    assert.deepEqual(await readJsonFile(file), { a: 2 });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(d), ['state.json']);
  });

  it('reads a missing file as null and names a broken one', async () => {
    const d = await dir();
    assert.equal(await readJsonFile(path.join(d, 'absent.json')), null);
    const broken = path.join(d, 'broken.json');
    await writeFile(broken, '{"a":');
    await assert.rejects(readJsonFile(broken), new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`));
  });

  it('keeps only the newest pending content while a write runs, and reports failures', async () => {
    const d = await dir();
    const file = path.join(d, 'latest.json');
    const errors: unknown[] = [];
    const w = new LatestWriter(file, (err) => errors.push(err));
    for (let i = 0; i < 50; i++) w.write(JSON.stringify({ i }));
    await w.idle();
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { i: 49 });
    assert.deepEqual(errors, []);
    const failures: unknown[] = [];
    const failing = new LatestWriter(path.join(d, 'missing-dir', 'x.json'), (err) => failures.push(err));
    failing.write('{}');
    await failing.idle();
    assert.equal(failures.length, 1);
  });
});
