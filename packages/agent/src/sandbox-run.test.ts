/**
 * The supervisor with real runc sandboxes (root only): a tenant instance runs as its
 * environment's user with a clean runc environment, a kill -9 of the pid the supervisor
 * reports (runc's) takes the program with it and restarts the instance, and a container
 * orphaned by a runc killed while nobody watched is swept.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { descendants, isAlive, sleep, waitFor } from '@lanes/testkit';
import { SandboxRuntime, DEFAULT_LIMITS, sandboxTools } from './sandbox.js';
import { cleanupApps, desired, find, makeSupervisor, writeTestApps } from './test-helpers.js';

function usable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    sandboxTools();
    return false;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

test('a sandboxed instance: its own user, a clean runc, restarted whole after kill -9 of its reported pid', { skip: usable() }, async () => {
  const apps = await writeTestApps();
  const stateDir = path.join(apps.root, 'state');
  const sup = makeSupervisor(apps, stateDir, { sandbox: new SandboxRuntime({ dir: path.join(stateDir, 'sandbox') }) });
  try {
    await sup.start();
    sup.setDesired([desired('web-1', 'server.mjs', { argv: ['node', 'server.mjs'], user: { uid: 299001, gid: 299001 } })]);
    const first = await waitFor('healthy', () => {
      const o = find(sup, 'web-1');
      return o?.healthy ? o : false;
    }, { timeoutMs: 20_000 });
    const runc = first.pid as number;
    const inside = descendants(runc);
    const program = inside.at(-1) as number;
    assert.equal(uidOf(program), 299001, 'the program runs as the environment\'s user');
    assert.ok(!readFileSync(`/proc/${runc}/environ`, 'utf8').includes('GREETING'), 'runc (root) has none of the tenant\'s variables');
    const env = (await (await fetch(`http://127.0.0.1:${first.port}/env`)).json()) as Record<string, string>;
    assert.equal(env['GREETING'], 'hello');
    assert.equal(env['HOME'], '/data');
    process.kill(runc, 'SIGKILL');
    await waitFor('the program went with its runc', () => inside.every((p) => !isAlive(p)), { timeoutMs: 10_000 });
    const again = await waitFor('restarted and healthy', () => {
      const o = find(sup, 'web-1');
      return o?.healthy && o.pid !== runc ? o : false;
    }, { timeoutMs: 20_000 });
    assert.ok(again.restarts >= 1);
  } finally {
    await sup.shutdown({ stopInstances: true });
    await cleanupApps(apps);
  }
});

test('sweep removes a container whose runc was killed while nobody watched', { skip: usable() }, async () => {
  const apps = await writeTestApps();
  const runtime = new SandboxRuntime({ dir: path.join(apps.root, 'sandbox') });
  try {
    const argv = runtime.prepare({ id: 'orphan-1', argv: ['node', 'stubborn.mjs'], env: { PATH: '/usr/bin:/bin' }, packageDir: apps.dir, dataDir: path.join(apps.root, 'data'), netns: null, uid: 299002, gid: 299002, limits: DEFAULT_LIMITS });
    const runc = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore', detached: true });
    const inside = await waitFor('the program started', () => {
      const d = descendants(runc.pid as number);
      return d.length >= 2 ? d : false;
    }, { timeoutMs: 10_000 });
    process.kill(runc.pid as number, 'SIGKILL');
    await sleep(300);
    assert.ok(inside.some((p) => isAlive(p)), 'killing runc alone leaves the container running');
    assert.deepEqual(await runtime.sweep(new Set(['someone-else'])), ['orphan-1']);
    await waitFor('the orphan is gone', () => inside.every((p) => !isAlive(p)), { timeoutMs: 10_000 });
    assert.deepEqual(await runtime.sweep(new Set()), [], 'nothing left');
  } finally {
    await runtime.remove('orphan-1');
    await cleanupApps(apps);
  }
});
