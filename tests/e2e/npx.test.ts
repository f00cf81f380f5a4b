/**
 * The README's Quick start runs `npx lanes`: the workspace bin must be linked to an
 * executable script (a shebang, not a bare module), so the command works after `npm ci`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/platform.js';

describe('npx lanes', () => {
  it('is linked to an executable script with a node shebang', () => {
    const target = realpathSync(path.join(repoRoot, 'node_modules', '.bin', 'lanes'));
    assert.match(readFileSync(target, 'utf8'), /^#!\/usr\/bin\/env node\n/, `${target} starts with a shebang`);
  });

  it('runs and prints its version', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile('npx', ['--no-install', 'lanes', '--version'], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout)));
    });
    assert.match(out.trim(), /\d+\.\d+\.\d+/);
  });
});
