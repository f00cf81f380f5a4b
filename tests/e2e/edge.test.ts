/**
 * Access control at the edge, end to end: `lanes edge set` on a running platform, and what
 * a client of the gateway then sees — 403 from a deny list and from an allow-list, 429 with
 * Retry-After from a client rate, 413 from a body limit — then `lanes edge reset`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { waitFor } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

describe('edge access control', () => {
  let p: TestPlatform;
  const ref = 'acme/prod';
  let host: string;

  /** A request through the gateway; the body makes it a POST. */
  async function call(body?: Buffer): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const r = await request(`http://127.0.0.1:${p.httpPort}/`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { host },
      body: body ?? null,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
  }

  /** Runs `lanes edge set` and waits until the gateway answers `status` (the table takes a moment to arrive). */
  async function edgeSet(flags: string[], status: number, body?: Buffer): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const r = await p.cli(['edge', 'set', ref, ...flags]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^edge settings of acme\/prod\n/);
    return waitFor(`the gateway answering ${status} after lanes edge set ${flags.join(' ')}`, async () => {
      const a = await call(body);
      return a.status === status ? a : false;
    }, { timeoutMs: 30_000, intervalMs: 100 });
  }

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b'] });
    host = p.host('prod', 'acme');
    assert.equal((await p.cli(['tenant', 'create', 'acme'])).code, 0);
    assert.equal((await p.cli(['env', 'create', ref, '--lane', 'single'])).code, 0);
    const d = await p.cli(['deploy', ref, helloDir], 120_000);
    assert.equal(d.code, 0, `deploy failed: ${d.stderr}\n${p.componentLogs()}`);
    await p.waitReady(ref);
    await waitFor('the environment served through the gateway', async () => (await call()).status === 200, { timeoutMs: 30_000 });
  });
  after(async () => {
    await p?.stop();
  });

  it('refuses a client on the deny list with 403', async () => {
    const a = await edgeSet(['--deny', '203.0.113.0/24,127.0.0.1/32'], 403);
    assert.equal(a.text, 'client 127.0.0.1 is denied access to acme/prod\n');
    const show = await p.cli(['edge', 'show', ref]);
    assert.match(show.stdout, /deny +203\.0\.113\.0\/24, 127\.0\.0\.1\/32/);
  });

  it('serves only clients on the allow-list', async () => {
    const refused = await edgeSet(['--deny', 'none', '--allow', '192.0.2.0/24'], 403);
    assert.match(refused.text, /client 127\.0\.0\.1 is not on the allow-list of acme\/prod/);
    const served = await edgeSet(['--allow', '127.0.0.0/8,::1'], 200);
    assert.match(served.text, /hello from/);
  });

  it('answers 429 with Retry-After once a client spent its rate', async () => {
    const limited = await edgeSet(['--allow', 'none', '--client-rate', '1/m,2'], 429);
    const retry = Number(limited.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After: ${String(limited.headers['retry-after'])}`);
    assert.match(limited.text, /^too many requests from 127\.0\.0\.1 to acme\/prod \(limit 1\/m \(burst 2\) per client\); retry in \d+ s\n$/);
  });

  it('refuses a body over the limit with 413 and serves one within it', async () => {
    const refused = await edgeSet(['--client-rate', 'off', '--max-body', '1kb'], 413, Buffer.alloc(2048, 120));
    assert.equal(refused.text, 'request body of 2048 bytes is over the limit of 1kb for acme/prod\n');
    assert.equal((await call(Buffer.alloc(512, 120))).status, 200);
  });

  it('records each change as an event and resets to the defaults', async () => {
    const events = await p.cli(['events', ref]);
    assert.match(events.stdout, /EdgeChanged/);
    assert.match(events.stdout, /edge settings of acme\/prod: max body 1kb/);
    const r = await p.cli(['edge', 'reset', ref]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /max body +gateway default/);
    await waitFor('the body limit gone', async () => (await call(Buffer.alloc(2048, 120))).status === 200, { timeoutMs: 30_000 });
    const bad = await p.cli(['edge', 'set', ref, '--deny', '10.0.0.1/8']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'lanes: --deny: "10.0.0.1/8" has host bits set; use 10.0.0.0/8\n');
  });
});
