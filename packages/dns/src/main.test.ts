/**
 * The DNS process as the launcher runs it: one-line flag errors with exit code 2; with a
 * persisted zone it answers at once, writes its ready file, and exits 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { tempDir, waitFor } from '@lanes/testkit';
import { READY_FILE, ZONE_FILE } from './persist.js';
import { dig, DOMAIN, snapshot } from './test-helpers.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');

function runMain(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 20_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr) });
    });
  });
}

describe('dns process', () => {
  it('refuses bad flags with one line naming the flag and exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [[], /^dns: --state-dir: missing/],
      [['--state-dir', '/tmp/x', '--port', '70000'], /^dns: --port: "70000" is out of range/],
      [['--state-dir', '/tmp/x', '--host', 'localhost'], /^dns: --host: "localhost" is not an IP address/],
      [['--state-dir', '/tmp/x', '--api', 'http://127.0.0.1:1'], /^dns: --token-file: missing/],
      [['--state-dir', '/tmp/x', '--control-plane-url', 'ftp://x'], /^dns: --control-plane-url: "ftp:\/\/x" is not an http\(s\) URL/],
      [['--state-dir', '/tmp/x', '--frob'], /^dns: flags: Unknown option '--frob'/],
    ];
    for (const [args, re] of cases) {
      const r = await runMain(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });

  it('answers from its persisted zone, writes its ready file, and stops cleanly on SIGTERM', async () => {
    const dir = await tempDir('lanes-dns-main-');
    await writeFile(path.join(dir, ZONE_FILE), JSON.stringify(snapshot({ serial: 42 })));
    const child = spawn(process.execPath, [MAIN, '--state-dir', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = once(child, 'exit');
    try {
      const ready = await waitFor('the ready file', async () => {
        const text = await readFile(path.join(dir, READY_FILE), 'utf8').catch(() => '');
        return text === '' ? false : (JSON.parse(text) as { pid: number; url: string; port: number });
      }, { timeoutMs: 15_000 });
      assert.equal(ready.pid, child.pid);
      assert.equal(ready.url, `dns://127.0.0.1:${ready.port}`);
      const r = await dig(ready.port, `prod.acme.${DOMAIN}`, 'A');
      assert.deepEqual(r.answers, [`prod.acme.${DOMAIN}. 30 IN A 127.0.0.1`]);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await exited;
    assert.equal(code, 0);
    assert.equal(existsSync(path.join(dir, READY_FILE)), false, 'the ready file is removed');
  });
});
