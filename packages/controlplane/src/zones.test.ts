import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZoneRegistry } from './zones.js';

describe('ZoneRegistry', () => {
  it('keeps zones routable right after a control-plane start, until the grace runs out unheard', () => {
    const z = new ZoneRegistry(['a', 'b'], 3000, 1000);
    assert.equal(z.routable('a', 2000), true, 'within the start grace');
    assert.equal(z.routable('a', 5000), false, 'never heard from after the grace');
    z.seen('a', '127.0.0.1', 'http://x', 5000);
    assert.equal(z.routable('a', 6000), true);
    assert.equal(z.routable('a', 9000), false, 'silent for longer than the grace');
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
