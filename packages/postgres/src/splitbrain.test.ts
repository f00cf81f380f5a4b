/**
 * Split brain: the primary is cut off from the standby and the arbiter — its lease
 * requests, its peers' requests to it, and the replication connection all go through
 * proxies that swallow traffic without closing anything — while a client in its zone keeps
 * writing through a connection to it. The isolated primary must stop acknowledging writes
 * (its client sees an error, not a hang) before the standby is promoted; nothing it
 * acknowledged may be missing on the new primary; healed, it rejoins as a standby.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, sleep, waitFor } from '@lanes/testkit';
import { Cluster, Writer } from './test-helpers.js';

const SKIP = findPostgresBin() !== null ? false : 'PostgreSQL binaries not found (install postgresql)';

describe('a primary cut off from its standby and the arbiter', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start({ links: true });
    await c.waitHealthy('a', 'b');
    await c.sql('a', 'create table t (id bigint primary key)');
  });
  after(async () => {
    await c?.close();
  });

  it('stops acknowledging writes before the standby is promoted', async (t) => {
    const w = new Writer(c, { pinned: 'a' });
    w.start();
    await waitFor('50 acknowledged writes on a', () => w.acked.size >= 50, { timeoutMs: 20_000, intervalMs: 20 });
    const cutAt = Date.now();
    for (const key of ['a>b', 'a>b:pg', 'a>arbiter', 'b>a', 'b>a:pg']) {
      const link = c.links.get(key);
      assert.ok(link, key);
      link.cut();
    }
    await waitFor('b promoted', async () => (await c.mirrorstatus('b')) === 200, { timeoutMs: 20_000, intervalMs: 50 });
    await sleep(300);
    await w.stop();

    const b = await c.status('b');
    const promotion = b.history.find((h) => h.term === 2 && h.primary === 'b');
    assert.ok(promotion, JSON.stringify(b.history));
    const promotedAt = Date.parse(promotion.at);
    const lastOnA = w.lastAck('a');
    assert.ok(lastOnA !== null);
    assert.ok(lastOnA.at < promotedAt, `a acknowledged a write at ${lastOnA.at}, after b's promotion at ${promotedAt}`);
    const refused = w.events.find((e) => e.member === 'a' && !e.ok && e.at >= cutAt);
    assert.ok(refused !== undefined, 'the client of the isolated primary saw an error');
    assert.ok(refused.at < promotedAt, `the client's error came at ${refused.at}, after the promotion at ${promotedAt}`);
    t.diagnostic(`after the cut: last write acknowledged by a at +${lastOnA.at - cutAt} ms, its client's error at +${refused.at - cutAt} ms (${refused.error ?? ''}), b promoted at +${promotedAt - cutAt} ms`);
    assert.equal(await c.mirrorstatus('a'), 503, 'the isolated primary no longer claims to be primary');
    const a = await c.status('a');
    assert.equal(a.role, 'fenced');
    assert.match(a.lastDecision?.reason ?? '', /lease of term 1 expired .* renewing before it runs as primary/);

    const onB = new Set((await c.sql<{ id: string }>('b', 'select id from t')).map((r) => Number(r.id)));
    const lost = [...w.acked.keys()].filter((id) => !onB.has(id));
    assert.deepEqual(lost, [], `acknowledged writes missing on the new primary: ${lost.join(', ')}`);
  });

  it('rejoins as a standby once the partition heals', async () => {
    for (const link of c.links.values()) link.heal();
    await c.waitHealthy('b', 'a');
    assert.equal(await c.mirrorstatus('a'), 503);
    assert.equal(await c.mirrorstatus('b'), 200);
  });
});
