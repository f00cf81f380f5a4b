/**
 * Losing only the arbiter must never demote a primary that still has its synchronous
 * standby (Patroni's issues #1588 and #3572): the primary keeps its lease through the
 * standby's grants and keeps acknowledging writes; no failover happens; the arbiter
 * catches up when it returns.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, waitFor } from '@lanes/testkit';
import { Cluster, Writer } from './test-helpers.js';

const SKIP = findPostgresBin() !== null ? false : 'PostgreSQL binaries not found (install postgresql)';

describe('the arbiter killed', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start();
    await c.waitHealthy('a', 'b');
    await c.sql('a', 'create table t (id bigint primary key)');
  });
  after(async () => {
    await c?.close();
  });

  it('leaves the primary acknowledging writes, with no failover, for many leases', async () => {
    await c.killArbiter();
    const w = new Writer(c);
    w.start();
    const until = Date.now() + 8_000; // four leases
    while (Date.now() < until) {
      assert.equal(await c.mirrorstatus('a'), 200);
      await new Promise((r) => setTimeout(r, 200));
    }
    await w.stop();
    const acks = [...w.acked.values()].sort((x, y) => x.at - y.at);
    assert.ok(acks.length > 100, `${acks.length} writes acknowledged`);
    assert.ok(acks.every((a) => a.member === 'a'));
    let gap = 0;
    for (let i = 1; i < acks.length; i++) gap = Math.max(gap, (acks[i]?.at ?? 0) - (acks[i - 1]?.at ?? 0));
    assert.ok(gap < 1_000, `writes paused for ${gap} ms`);
    const a = await c.status('a');
    assert.equal(a.term, 1);
    assert.equal(a.role, 'primary');
    assert.equal(a.syncStandby, 'b');
    assert.equal((await c.status('b')).role, 'standby');
    assert.equal(w.events.filter((e) => !e.ok).length, 0, JSON.stringify(w.events.filter((e) => !e.ok)));
  });

  it('the returning arbiter learns the term again from the renewals', async () => {
    c.startArbiter();
    await waitFor('the arbiter renewing a', async () => {
      const res = await fetch(`${c.arbiter?.url ?? ''}/status`, { headers: { authorization: `Bearer ${c.token}` } }).catch(() => null);
      if (res?.status !== 200) return false;
      const s = (await res.json()) as { term: number; holder: string; promiseValidForMs: number };
      return s.term === 1 && s.holder === 'a';
    }, { timeoutMs: 10_000 });
  });
});
