import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { readChildren, readProcStat, treeCpuTicks } from './procfs.js';

describe('treeCpuTicks', () => {
  it('counts the CPU of a process\'s descendants (a sandbox\'s runtime → init → program)', async () => {
    // sh (idle) → node burning CPU for a moment: sh's own time stays near zero.
    const root = spawn('/bin/sh', ['-c', `${JSON.stringify(process.execPath)} -e "const t=Date.now(); while (Date.now()-t < 600) {} setTimeout(()=>{}, 5000)"`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 900));
      const pid = root.pid as number;
      const tree = treeCpuTicks(pid, readChildren());
      const own = readProcStat(pid)?.cpuTicks ?? 0;
      assert.ok(tree !== null && tree >= own + 30, `the tree's ticks (${tree}) include the busy child's, not only sh's (${own})`);
      assert.equal(treeCpuTicks(2 ** 22 + 12345, readChildren()), null, 'a missing pid');
    } finally {
      for (const c of readChildren().get(root.pid as number) ?? []) process.kill(c, 'SIGKILL');
      root.kill('SIGKILL');
    }
  });
});
