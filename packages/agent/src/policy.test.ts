import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RESTART_POLICY, decideRestart, initialHistory } from './policy.js';

const P = DEFAULT_RESTART_POLICY;

test('backoff doubles from 1 s to at most 30 s', () => {
  let h = initialHistory(P);
  const delays: number[] = [];
  let now = 0;
  for (let i = 0; i < 8; i++) {
    now += 100;
    const d = decideRestart(h, P, 100, now, 0.5);
    delays.push(d.delayMs);
    h = d.history;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('jitter stays within ±20 %', () => {
  const h = initialHistory(P);
  assert.equal(decideRestart(h, P, 0, 0, 0).delayMs, 800);
  assert.equal(decideRestart(h, P, 0, 0, 0.999999).delayMs, 1200);
});

test('a run of 10 s or more resets the backoff', () => {
  const h = { backoffMs: 16_000, exitTimesMs: [] };
  assert.equal(decideRestart(h, P, 9_999, 0, 0.5).delayMs, 16_000);
  assert.equal(decideRestart(h, P, 10_000, 0, 0.5).delayMs, 1000);
});

test('five exits within 60 s is a crash loop; older exits fall out of the window', () => {
  let h = initialHistory(P);
  const flags: boolean[] = [];
  for (const t of [0, 1000, 2000, 3000, 4000]) {
    const d = decideRestart(h, P, 10, t, 0.5);
    flags.push(d.crashLooping);
    h = d.history;
  }
  assert.deepEqual(flags, [false, false, false, false, true]);
  const later = decideRestart(h, P, 10, 62_500, 0.5);
  assert.equal(later.exitsInWindow, 3, 'exits at 0, 1000 and 2000 ms are more than 60 s old');
  assert.equal(later.crashLooping, false);
});
