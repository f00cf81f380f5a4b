/**
 * Edge settings through the API (Fastify inject over a real embedded store): defaults,
 * replace and patch, 400s naming the field and the value, an event per change, and the
 * settings on the environment's host in the routing table.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_EDGE } from '@lanes/spec';
import { tempDir } from '@lanes/testkit';
import pino from 'pino';
import { parseConfig } from './config.js';
import { startControlPlane, type ControlPlane } from './server.js';

describe('edge settings API', () => {
  let cp: ControlPlane;
  let home: string;
  let admin: string;
  const url = '/v1/tenants/acme/environments/prod/edge';

  before(async () => {
    home = await tempDir('lanes-cp-');
    cp = await startControlPlane(parseConfig(['--home', home, '--api-port', '0'], {}), pino({ level: 'silent' }));
    admin = (await readFile(path.join(home, 'admin.token'), 'utf8')).trim();
    assert.equal((await call('POST', '/v1/tenants', { name: 'acme' })).status, 201);
    assert.equal((await call('POST', '/v1/tenants/acme/environments', { name: 'prod' })).status, 201);
  });
  after(async () => {
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH', target: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await cp.app.inject({ method, url: target, headers: { authorization: `Bearer ${admin}` }, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {} };
  }

  it('answers the defaults for an environment never configured, and 404 for an unknown one', async () => {
    assert.deepEqual((await call('GET', url)).body, DEFAULT_EDGE);
    assert.equal((await call('GET', '/v1/tenants/acme/environments/nope/edge')).status, 404);
  });

  it('replaces the settings with PUT, text forms normalized to the wire form', async () => {
    const r = await call('PUT', url, { deny: ['127.0.0.1', '2001:DB8::/32'], clientRate: '50/s,100', maxBodyBytes: '10mb', hstsMaxAgeS: '1y' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {
      ...DEFAULT_EDGE,
      deny: ['127.0.0.1/32', '2001:db8::/32'],
      clientRate: { rps: 50, burst: 100 },
      maxBodyBytes: 10 * 1024 * 1024,
      hstsMaxAgeS: 31_536_000,
    });
    assert.deepEqual((await call('GET', url)).body, r.body);
  });

  it('changes only the fields given with PATCH; null clears one', async () => {
    const r = await call('PATCH', url, { allow: ['10.0.0.0/8'], clientRate: null });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body['allow'], ['10.0.0.0/8']);
    assert.deepEqual(r.body['deny'], ['127.0.0.1/32', '2001:db8::/32'], 'untouched fields stay');
    assert.equal(r.body['clientRate'], null);
    const reset = await call('PUT', url, {});
    assert.deepEqual(reset.body, DEFAULT_EDGE, 'PUT {} resets everything');
  });

  it('refuses bad input with 400 naming the field and the value, changing nothing', async () => {
    await call('PUT', url, { maxBodyBytes: 1024 });
    const cases: Array<[unknown, string, RegExp]> = [
      [{ deny: ['10.0.0.1/8'] }, 'deny.0', /"10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8/],
      [{ clientRate: 'fast' }, 'clientRate', /"fast" is not a rate/],
      [{ maxBodyBytes: '10 parsecs' }, 'maxBodyBytes', /"10 parsecs" is not a size/],
      [{ maxConnectionsPerClient: 0 }, 'maxConnectionsPerClient', /0 is not a connection limit/],
      [{ hstsMaxAgeS: 'forever' }, 'hstsMaxAgeS', /"forever" is not an HSTS max-age/],
      [{ allowList: [] }, 'allowList', /unknown setting/],
    ];
    for (const [body, field, detail] of cases) {
      for (const method of ['PUT', 'PATCH'] as const) {
        const r = await call(method, url, body);
        assert.equal(r.status, 400, `${method} ${JSON.stringify(body)}`);
        assert.equal(r.body['field'], field);
        assert.match(String(r.body['detail']), detail);
        assert.ok(String(r.body['detail']).startsWith(`${field}: `), String(r.body['detail']));
      }
    }
    assert.equal((await call('GET', url)).body['maxBodyBytes'], 1024, 'the settings stayed as they were');
  });

  it('records an EdgeChanged event per change, saying what is in force', async () => {
    await call('PUT', url, { deny: ['192.0.2.0/24'] });
    await call('PUT', url, { deny: ['192.0.2.0/24'] });
    const events = (await call('GET', '/v1/events?tenant=acme&environment=prod')).body['items'] as { reason: string; message: string }[];
    const edge = events.filter((e) => e.reason === 'EdgeChanged');
    assert.equal(edge.at(-1)?.message, 'edge settings of acme/prod: deny 192.0.2.0/24');
    assert.equal(edge.filter((e) => e.message === 'edge settings of acme/prod: deny 192.0.2.0/24').length, 1, 'setting the same value again is no change');
  });
});
