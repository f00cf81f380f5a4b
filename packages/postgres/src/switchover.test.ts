/**
 * A planned switchover under continuous writes: the primary stops accepting writes, the
 * standby replays everything and takes the next term, no acknowledged write is lost, and
 * the old primary rejoins as the new synchronous standby.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findPostgresBin, sleep, waitFor } from '@lanes/testkit';
import { Cluster, Writer } from './test-helpers.js';

const SKIP = findPostgresBin() !== null ? false : 'PostgreSQL binaries not found (install postgresql)';

describe('switchover', { skip: SKIP }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.start();
    await c.waitHealthy('a', 'b');
    await c.sql('a', 'create table t (id bigint primary key)');
  });
  after(async () => {
    await c?.close();
  });

  it('hands over to the synchronous standby without losing a write; the old primary follows', async (t) => {
    const w = new Writer(c);
    w.start();
    await waitFor('50 acknowledged writes on a', () => w.acked.size >= 50, { timeoutMs: 20_000, intervalMs: 20 });
    const refused = await c.post('a', '/switchover', { to: 'arbiter' });
    assert.equal(refused.status, 409);
    assert.match((refused.body as { detail: string }).detail, /only the synchronous standby b can take over/);

    const startedAt = Date.now();
    const res = await c.post('a', '/switchover', {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const body = res.body as { primary: string; term: number; reason: string };
    assert.equal(body.primary, 'b');
    assert.equal(body.term, 2);
    assert.match(body.reason, /^switched over from a to b: b replayed everything up to \d+\/[0-9A-F]+ and took term 2$/);
    const first = await waitFor('a write acknowledged by b', () => w.firstAckAfter(startedAt, 'b') ?? false, { timeoutMs: 10_000, intervalMs: 20 });
    assert.ok(first.at - startedAt < 5_000, `writes paused ${first.at - startedAt} ms`);
    t.diagnostic(`switchover requested → first write acknowledged by b: ${first.at - startedAt} ms`);
    await c.waitHealthy('b', 'a');
    await sleep(200);
    await w.stop();

    for (const m of ['a', 'b']) {
      const rows = new Set((await c.sql<{ id: string }>(m, 'select id from t')).map((r) => Number(r.id)));
      const lost = [...w.acked.keys()].filter((id) => !rows.has(id));
      assert.deepEqual(lost, [], `acknowledged writes missing on ${m}: ${lost.join(', ')}`);
    }
    assert.equal(await c.mirrorstatus('b'), 200);
    assert.equal(await c.mirrorstatus('a'), 503);
    const b = await c.status('b');
    // b wins with the first grant (a's or the arbiter's); the sentence names who agreed by then.
    assert.match(b.history.find((h) => h.term === 2)?.reason ?? '', /^promoted b: a handed over its term, b was its synchronous standby, (a|arbiter|a and arbiter|arbiter and a) agreed to term 2$/);
  });
});
