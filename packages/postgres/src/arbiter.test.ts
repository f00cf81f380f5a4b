/**
 * The arbiter process: grants and refusals by `vote`, its record kept across a kill -9, and
 * the full lease it assumes it promised just before a restart.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, sleep, tempDir, waitFor } from '@lanes/testkit';
import { fileURLToPath } from 'node:url';

const ARBITER_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'arbiter-main.js');

describe('arbiter process', () => {
  const procs: ChildProcess[] = [];
  after(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  });

  async function startArbiter(dir: string, port: number): Promise<ChildProcess> {
    const child = spawn(process.execPath, [ARBITER_MAIN, '--state-dir', path.join(dir, 'state'), '--token-file', path.join(dir, 'token'), '--port', String(port), '--lease', '1s'], { stdio: 'ignore' });
    procs.push(child);
    // Serving once it answers 401 (every route wants the token).
    await waitFor('the arbiter', async () => (await fetch(`http://127.0.0.1:${port}/status`).catch(() => null))?.status === 401, { timeoutMs: 10_000 });
    return child;
  }

  it('grants by the lease rules, keeps its record across kill -9 and assumes its promise after a restart', async () => {
    const dir = await tempDir('lanes-pga-');
    const token = randomBytes(24).toString('hex');
    await writeFile(path.join(dir, 'token'), token);
    const port = await freePort();
    const lease = async (body: object): Promise<{ granted: boolean; reason: string; record: { term: number; holder: string | null; syncStandby: string | null } }> => {
      const res = await fetch(`http://127.0.0.1:${port}/lease`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 200);
      return (await res.json()) as { granted: boolean; reason: string; record: { term: number; holder: string | null; syncStandby: string | null } };
    };
    let arbiter = await startArbiter(dir, port);

    assert.equal((await lease({ kind: 'elect', term: 1, holder: 'a', leaseMs: 1000, syncStandby: null })).granted, true);
    assert.equal((await lease({ kind: 'renew', term: 1, holder: 'a', leaseMs: 1000, syncStandby: 'b' })).granted, true);
    const early = await lease({ kind: 'elect', term: 2, holder: 'b', leaseMs: 1000, syncStandby: null });
    assert.equal(early.granted, false);
    assert.match(early.reason, /^promised term 1 to a for another \d+ ms$/);
    assert.deepEqual(early.record, { term: 1, holder: 'a', syncStandby: 'b' });

    arbiter.kill('SIGKILL');
    await once(arbiter, 'exit');
    const saved = JSON.parse(await readFile(path.join(dir, 'state', 'arbiter-state.json'), 'utf8')) as { record: unknown };
    assert.deepEqual(saved.record, { term: 1, holder: 'a', syncStandby: 'b' });
    await sleep(1100); // a's lease would have expired by now...
    arbiter = await startArbiter(dir, port);
    // ...but a restarted arbiter cannot know what it promised just before: a full lease.
    const afterRestart = await lease({ kind: 'elect', term: 2, holder: 'b', leaseMs: 1000, syncStandby: null });
    assert.equal(afterRestart.granted, false, afterRestart.reason);
    await sleep(1100);
    const later = await lease({ kind: 'elect', term: 2, holder: 'b', leaseMs: 1000, syncStandby: null });
    assert.equal(later.granted, true, later.reason);
    assert.equal((await lease({ kind: 'renew', term: 1, holder: 'a', leaseMs: 1000, syncStandby: 'b' })).reason, 'term 1 is stale: term 2 belongs to b');
    arbiter.kill('SIGTERM');
    const [code] = (await once(arbiter, 'exit')) as [number];
    assert.equal(code, 0);
  });
});
