import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZoneRegistry } from './zones.js';

describe('ZoneRegistry', () => {
  it('keeps zones routable right after a control-plane start, until the grace runs out unheard', () => {
    const z = new ZoneRegistry(['a', 'b'], 3000, 1000);
    assert.equal(z.routable('a', 2000), true, 'within the start grace');
    assert.equal(z.routable('a', 8500), true, 'the start grace covers the supervisors\' reconnect delay');
    assert.equal(z.routable('a', 9500), false, 'never heard from after the start grace');
    z.seen('a', '127.0.0.1', 'http://x', 9500);
    assert.equal(z.routable('a', 10_000), true);
    assert.equal(z.routable('a', 13_000), false, 'silent for longer than the grace');
  });

  it('counts a zone not yet heard from after a start as live, so nothing is rescheduled while supervisors reconnect', () => {
    const z = new ZoneRegistry(['a', 'b', 'c'], 2000, 0, 2000, 7000);
    z.seen('a', '127.0.0.1', 'http://x', 500);
    assert.deepEqual(z.live(1000), ['a', 'b', 'c'], 'b and c are awaited');
    assert.deepEqual(z.ready(1000), ['a'], 'but only a reports');
    assert.equal(z.list(1000).find((x) => x.name === 'b')?.state, 'awaiting');
    for (const t of [2000, 4000, 6000]) z.seen('a', '127.0.0.1', 'http://x', t);
    z.seen('b', '127.0.0.1', 'http://y', 6500);
    assert.deepEqual(z.live(6600), ['a', 'b', 'c'], 'b reports without a fence: it never went away for this control plane');
    assert.deepEqual(z.live(7100), ['a', 'b'], 'c unheard past the start grace: out');
    assert.equal(z.list(7200).find((x) => x.name === 'c')?.state, 'unavailable');
  });

  it('does not await a zone taken down', () => {
    const z = new ZoneRegistry(['a', 'b'], 2000, 0);
    z.setDown('b', true);
    assert.deepEqual(z.live(100), ['a']);
  });

  it('takes a down zone out of traffic and placement at once, and back when up', () => {
    const z = new ZoneRegistry(['a', 'b'], 3000, 0);
    z.seen('a', '127.0.0.1', 'http://x', 10);
    z.seen('b', '127.0.0.1', 'http://y', 10);
    assert.equal(z.setDown('a', true), true);
    assert.equal(z.setDown('a', true), false, 'idempotent');
    assert.equal(z.routable('a', 20), false);
    assert.deepEqual(z.ready(20), ['b']);
    assert.equal(z.list(20).find((x) => x.name === 'a')?.state, 'down');
    z.setDown('a', false);
    assert.deepEqual(z.ready(20), ['a', 'b']);
  });
});

describe('ZoneRegistry fencing', () => {
  it('re-admits a zone back from silence only after it has reported for the readmit period', () => {
    const z = new ZoneRegistry(['a'], 3000, 0, 2000);
    z.seen('a', '127.0.0.1', 'http://x', 100);
    assert.deepEqual(z.live(200), ['a'], 'first contact after start is not fenced');
    assert.deepEqual(z.live(5000), [], 'silent past the grace');
    z.seen('a', '127.0.0.1', 'http://x', 6000);
    assert.equal(z.isReady('a', 6100), true);
    assert.equal(z.routable('a', 6100), false, 'fenced: takes no traffic yet');
    assert.deepEqual(z.live(6100), []);
    assert.equal(z.list(6100)[0]?.state, 'readmitting');
    z.seen('a', '127.0.0.1', 'http://x', 7000);
    assert.equal(z.routable('a', 8100), true);
    assert.deepEqual(z.live(8100), ['a']);
  });

  it('fences a zone taken down and up again', () => {
    const z = new ZoneRegistry(['a'], 3000, 0, 60_000);
    z.seen('a', '127.0.0.1', 'http://x');
    z.setDown('a', true);
    z.setDown('a', false);
    assert.equal(z.routable('a'), false);
    assert.deepEqual(z.live(), []);
  });
});
