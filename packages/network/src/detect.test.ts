import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Runner, runCommand } from './commands.js';
import { detectIsolation } from './detect.js';

const isRoot = process.getuid?.() === 0;

test('without root, isolation is none and the reason says so', { skip: isRoot ? 'running as root' : false }, async () => {
  const r = await detectIsolation();
  assert.equal(r.mode, 'none');
  assert.match(r.reason, /^not running as root \(uid \d+\)/);
});

test('a missing nft means isolation none, naming the package to install', { skip: isRoot ? false : 'needs root' }, async () => {
  const runner: Runner = (argv, opts) => (argv[0] === 'nft' ? Promise.reject(new Error('nft: not found')) : runCommand(argv, opts));
  assert.deepEqual(await detectIsolation({ runner }), { mode: 'none', reason: 'nft is not usable; install nftables' });
});

test('a namespace that cannot be created means isolation none with the command\'s error', { skip: isRoot ? false : 'needs root' }, async () => {
  const runner: Runner = (argv, opts) => (argv[1] === 'netns' && argv[2] === 'add' ? Promise.reject(new Error('ip netns add lanes-probe-1 failed (exit 1): Operation not permitted')) : runCommand(argv, opts));
  const r = await detectIsolation({ runner });
  assert.equal(r.mode, 'none');
  assert.match(r.reason, /^cannot create a network namespace with nftables: ip netns add .* Operation not permitted$/);
});

test('as root with ip and nft, isolation is netns and the probe namespace is gone afterwards', { skip: isRoot ? false : 'needs root' }, async () => {
  const r = await detectIsolation();
  if (r.mode === 'none') {
    console.log(`# SKIP: ${r.reason}`);
    return;
  }
  assert.equal(r.mode, 'netns');
  assert.ok(!(await runCommand(['ip', 'netns', 'list'])).includes(`lanes-probe-${process.pid}`));
});
