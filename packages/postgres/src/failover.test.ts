/**
 * Jepsen-style failover with real processes: a client writes one row per transaction to
 * whichever member answers /mirrorstatus 200, recording every acknowledged id; the
 * primary's keeper and postmaster are killed with SIGKILL at once (its zone crashed). The
 * synchronous standby must be promoted, every acknowledged id must be on it, writes must
 * resume, /mirrorstatus must follow the primary, and the old primary must rejoin as the
 * new synchronous standby after pg_rewind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, sleep, waitFor } from '@lanes/testkit';
import { Cluster, Writer } from './test-helpers.js';

const SKIP = findPostgresBin() !== null ? false : 'PostgreSQL binaries not found (install postgresql)';

describe('kill -9 of the primary', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start();
    await c.waitHealthy('a', 'b');
    await c.sql('a', 'create table t (id bigint primary key)');
  });
  after(async () => {
    await c?.close();
  });

  it('promotes the synchronous standby, loses no acknowledged write, and writes resume', async (t) => {
    assert.equal(await c.mirrorstatus('a'), 200);
    assert.equal(await c.mirrorstatus('b'), 503);
    const w = new Writer(c);
    w.start();
    await waitFor('100 acknowledged writes on a', () => w.acked.size >= 100, { timeoutMs: 20_000, intervalMs: 20 });
    const killedAt = Date.now();
    await c.killMember('a');
    const first = await waitFor('the first write acknowledged by b', () => w.firstAckAfter(killedAt, 'b') ?? false, { timeoutMs: 15_000, intervalMs: 20 });
    await sleep(300);
    await w.stop();

    const onB = new Set((await c.sql<{ id: string }>('b', 'select id from t')).map((r) => Number(r.id)));
    const lost = [...w.acked.keys()].filter((id) => !onB.has(id));
    assert.deepEqual(lost, [], `acknowledged writes missing on the new primary: ${lost.join(', ')}`);
    assert.ok([...w.acked.values()].filter((a) => a.member === 'b').length >= 2, 'writes resumed on b');
    const failoverMs = first.at - killedAt;
    t.diagnostic(`kill -9 of a → first write acknowledged by b: ${failoverMs} ms; ${w.acked.size} writes acknowledged, 0 lost`);
    assert.ok(failoverMs < 6_000, `failover took ${failoverMs} ms`);

    assert.equal(await c.mirrorstatus('b'), 200);
    assert.equal(await c.mirrorstatus('a'), 0, 'a is down');
    const b = await c.status('b');
    assert.equal(b.role, 'primary');
    assert.equal(b.term, 2);
    const promotion = b.history.find((h) => h.term === 2);
    assert.equal(promotion?.reason, "promoted b: a's lease expired, b was its synchronous standby, arbiter agreed to term 2");
  });

  it('rejoins the old primary as the synchronous standby after pg_rewind; /mirrorstatus answers 200 only on b', async () => {
    c.startKeeper('a');
    await c.waitHealthy('b', 'a');
    assert.equal(await c.mirrorstatus('b'), 200);
    assert.equal(await c.mirrorstatus('a'), 503);
    const a = await c.status('a');
    assert.equal(a.role, 'standby');
    assert.equal(a.postgres.upstream, 'b');
    assert.ok(a.history.some((h) => h.term === 2 && h.primary === 'b'), JSON.stringify(a.history));
    await c.sql('b', 'insert into t (id) values (-1)');
    const [onA] = await c.sql<{ n: string }>('a', 'select count(*) as n from t where id = -1');
    assert.equal(onA?.n, '1', 'a synchronous write on b is readable on a');
  });
});
