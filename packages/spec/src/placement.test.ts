import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Placed } from './placement.js';
import { chooseSurplus, chooseZones, effectiveCount } from './placement.js';

const none = new Map<string, number>();

function spread(zones: readonly string[], chosen: readonly string[], existing: ReadonlyMap<string, number> = none): number[] {
  return zones.map((z) => (existing.get(z) ?? 0) + chosen.filter((c) => c === z).length);
}

describe('effectiveCount', () => {
  it('runs what was asked in a single lane', () => {
    assert.deepEqual([0, 1, 2, 5].map((n) => effectiveCount(n, 'single')), [0, 1, 2, 5]);
  });

  it('runs at least two in a double lane, and keeps 0 at 0', () => {
    assert.deepEqual([0, 1, 2, 5].map((n) => effectiveCount(n, 'double')), [0, 2, 2, 5]);
    assert.equal(effectiveCount(-3, 'double'), 0);
  });
});

describe('chooseZones', () => {
  it('spreads evenly in zone order', () => {
    assert.deepEqual(chooseZones(5, ['a', 'b', 'c'], none), ['a', 'b', 'c', 'a', 'b']);
  });

  it('fills the least-loaded zones first', () => {
    assert.deepEqual(chooseZones(3, ['a', 'b', 'c'], new Map([['a', 2], ['b', 1]])), ['c', 'b', 'c']);
  });

  it('ignores load in zones that are not offered', () => {
    assert.deepEqual(chooseZones(2, ['b', 'c'], new Map([['a', 5]])), ['b', 'c']);
  });

  it('is deterministic', () => {
    const existing = new Map([['b', 1]]);
    assert.deepEqual(chooseZones(7, ['a', 'b', 'c'], existing), chooseZones(7, ['a', 'b', 'c'], existing));
  });

  it('returns nothing without zones or count', () => {
    assert.deepEqual(chooseZones(3, [], none), []);
    assert.deepEqual(chooseZones(0, ['a'], none), []);
  });

  const zonesArb = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 1, maxLength: 6 });

  it('property: from empty zones the spread differs by at most 1', () => {
    fc.assert(
      fc.property(fc.nat(200), zonesArb, (count, zones) => {
        const chosen = chooseZones(count, zones, none);
        assert.equal(chosen.length, count);
        const s = spread(zones, chosen);
        assert.ok(Math.max(...s) - Math.min(...s) <= 1, `spread ${JSON.stringify(s)}`);
      }),
    );
  });

  it('property: adding to a balanced placement keeps it balanced', () => {
    fc.assert(
      fc.property(fc.nat(50), fc.nat(50), zonesArb, (first, second, zones) => {
        const placed = chooseZones(first, zones, none);
        const existing = new Map(zones.map((z) => [z, placed.filter((p) => p === z).length]));
        const s = spread(zones, chooseZones(second, zones, existing), existing);
        assert.ok(Math.max(...s) - Math.min(...s) <= 1, `spread ${JSON.stringify(s)}`);
      }),
    );
  });

  it('property: a double lane with >= 2 zones uses at least 2 distinct zones', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), zonesArb.filter((z) => z.length >= 2), (asked, zones) => {
        const chosen = chooseZones(effectiveCount(asked, 'double'), zones, none);
        assert.ok(new Set(chosen).size >= 2, `chosen ${JSON.stringify(chosen)}`);
      }),
    );
  });
});

describe('chooseSurplus', () => {
  const at = (id: string, zone: string, healthy = true, createdAt = '2024-01-01T00:00:00Z'): Placed => ({ id, zone, healthy, createdAt });

  it('removes unhealthy instances first', () => {
    const list = [at('a1', 'a'), at('a2', 'a'), at('b1', 'b', false), at('c1', 'c')];
    assert.deepEqual(chooseSurplus(list, 1), ['b1']);
  });

  it('then removes from the most crowded zone, newest first', () => {
    const list = [at('a1', 'a', true, '2024-01-01'), at('a2', 'a', true, '2024-01-03'), at('a3', 'a', true, '2024-01-02'), at('b1', 'b'), at('b2', 'b'), at('c1', 'c')];
    assert.deepEqual(chooseSurplus(list, 2), ['a2', 'a3']);
  });

  it('re-evaluates crowding after each removal', () => {
    const list = [at('a1', 'a', true, '1'), at('a2', 'a', true, '2'), at('b1', 'b', true, '1'), at('b2', 'b', true, '3')];
    assert.deepEqual(chooseSurplus(list, 2), ['b2', 'a2']);
  });

  it('never removes more than exist and does not mutate its input', () => {
    const list = [at('a1', 'a'), at('b1', 'b')];
    assert.deepEqual(chooseSurplus(list, 5).sort(), ['a1', 'b1']);
    assert.deepEqual(list.map((p) => p.id), ['a1', 'b1']);
  });

  it('property: what remains after removing surplus from a balanced set stays balanced', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.nat(60), fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 4 }), (total, remove, zones) => {
        const placed = chooseZones(total, zones, none).map((z, i) => at(`i${i}`, z, true, String(i).padStart(3, '0')));
        const removed = new Set(chooseSurplus(placed, remove));
        assert.equal(removed.size, Math.min(remove, total));
        const left = placed.filter((p) => !removed.has(p.id)).map((p) => p.zone);
        const s = zones.map((z) => left.filter((l) => l === z).length);
        assert.ok(Math.max(...s) - Math.min(...s) <= 1, `spread ${JSON.stringify(s)}`);
      }),
    );
  });
});
