/**
 * Running programs: argv arrays end to end (hostile arguments reach the program unchanged,
 * through setpriv too), the minimal environment, errors quoting the program, and the
 * parsers of LSNs and pg_controldata.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asUser, parseControlData, parseLsn, runTool, toolEnv } from './pgexec.js';

const HOSTILE = ["it's; touch /tmp/pwned", '$(id) `id` $HOME', '--flag=1 && echo 2', 'a\nb', ''];

describe('command builders', () => {
  it('asUser puts setpriv in front and keeps every argument one argv element', () => {
    assert.deepEqual(asUser(null, '/bin/prog', ['-D', 'x y']), { file: '/bin/prog', args: ['-D', 'x y'] });
    assert.deepEqual(asUser({ uid: 101, gid: 104 }, '/bin/prog', ['-D', "x'y"]), {
      file: 'setpriv',
      args: ['--reuid=101', '--regid=104', '--clear-groups', '--', '/bin/prog', '-D', "x'y"],
    });
  });

  it('hostile arguments reach the program unchanged (no shell anywhere)', async () => {
    const { stdout } = await runTool({ file: 'printf', args: ['[%s]\\n', ...HOSTILE], timeoutMs: 5_000 });
    assert.equal(stdout, HOSTILE.map((a) => `[${a}]\n`).join(''));
  });

  it('hostile arguments reach the program unchanged through setpriv', async (t) => {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      t.skip('needs root to switch users');
      return;
    }
    const { file, args } = asUser({ uid: 65534, gid: 65534 }, 'printf', ['[%s]\\n', ...HOSTILE]);
    const { stdout } = await runTool({ file, args, timeoutMs: 5_000 });
    assert.equal(stdout, HOSTILE.map((a) => `[${a}]\n`).join(''));
  });

  it('gives programs a minimal environment, never the caller\'s', async () => {
    process.env['LANES_SECRET_PROBE'] = 'leak';
    try {
      const { stdout } = await runTool({ file: 'env', args: [], timeoutMs: 5_000, env: { PGPASSFILE: '/x' } });
      assert.ok(!stdout.includes('LANES_SECRET_PROBE'));
      assert.match(stdout, /^PGPASSFILE=\/x$/m);
      assert.deepEqual(Object.keys(toolEnv()).sort(), ['LANG', 'LC_ALL', 'PATH']);
    } finally {
      delete process.env['LANES_SECRET_PROBE'];
    }
  });

  it('fails with the program name, how it ended and its last words', async () => {
    await assert.rejects(runTool({ file: 'sh', args: ['-c', 'echo first >&2; echo last words >&2; exit 3'], timeoutMs: 5_000 }), /^UnavailableError: sh exited with 3: first \| last words$/);
    await assert.rejects(runTool({ file: 'sleep', args: ['5'], timeoutMs: 100 }), /sleep timed out after 100 ms/);
    await assert.rejects(runTool({ file: '/nonexistent/prog', args: [], timeoutMs: 1_000 }), /prog could not start/);
  });
});

describe('parsers', () => {
  it('reads LSNs as byte positions', () => {
    assert.equal(parseLsn('0/3000028'), 0x3000028n);
    assert.equal(parseLsn('1/0'), 1n << 32n);
    assert.ok((parseLsn('0/3023F10') ?? 0n) > (parseLsn('0/3023E68') ?? 0n));
    assert.equal(parseLsn('nope'), null);
    assert.equal(parseLsn(null), null);
  });

  it('reads pg_controldata', () => {
    const text = "pg_control version number:            1300\nDatabase cluster state:               shut down\nLatest checkpoint location:           0/3023E68\nLatest checkpoint's TimeLineID:       2\n";
    assert.deepEqual(parseControlData(text), { state: 'shut down', checkpointLsn: '0/3023E68', timeline: 2 });
  });
});
