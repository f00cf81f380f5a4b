/**
 * The API in process (Fastify inject, no sockets for the calls) over a real embedded store:
 * authentication, input errors naming the field, conflicts, and an OpenAPI document that
 * matches the routes.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@lanes/testkit';
import pino from 'pino';
import { parseConfig } from './config.js';
import { PUBLIC_ROUTES } from './api-guard.js';
import { registeredRoutes } from './api.js';
import { openApiDocument } from './openapi.js';
import { startControlPlane, type ControlPlane } from './server.js';

describe('control plane API', () => {
  let cp: ControlPlane;
  let home: string;
  let admin: string;
  let node: string;

  before(async () => {
    home = await tempDir('lanes-cp-');
    // Planning private networks touches no kernel: the control plane only allocates them.
    cp = await startControlPlane(parseConfig(['--home', home, '--api-port', '0', '--isolation', 'netns', '--network-cidr', '10.77.0.0/16'], {}), pino({ level: 'silent' }));
    admin = (await readFile(path.join(home, 'admin.token'), 'utf8')).trim();
    node = (await readFile(path.join(home, 'node.token'), 'utf8')).trim();
  });
  after(async () => {
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, token: string | null = admin) => {
    const headers: Record<string, string> = {};
    if (token) headers['authorization'] = `Bearer ${token}`;
    const r = await cp.app.inject({ method, url, headers, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {}, type: String(r.headers['content-type']) };
  };

  it('writes the admin token with mode 0600 and never into the log', async () => {
    const { stat } = await import('node:fs/promises');
    assert.equal((await stat(path.join(home, 'admin.token'))).mode & 0o777, 0o600);
    assert.match(admin, /^lanes_admin_/);
  });

  it('answers 401 without a token or with a wrong one, and 403 for the node token on the public API', async () => {
    assert.equal((await call('GET', '/v1/tenants', undefined, null)).status, 401);
    const bad = await call('GET', '/v1/tenants', undefined, 'lanes_admin_wrong');
    assert.equal(bad.status, 401);
    assert.equal(bad.body['code'], 'LANES_ERR_UNAUTHENTICATED');
    assert.match(bad.type, /application\/problem\+json/);
    assert.equal((await call('GET', '/v1/tenants', undefined, node)).status, 403);
    assert.equal((await call('GET', '/healthz', undefined, null)).status, 200);
  });

  it('creates, lists and deletes tenants, with conflicts as 409', async () => {
    assert.equal((await call('POST', '/v1/tenants', { name: 'acme' })).status, 201);
    const dup = await call('POST', '/v1/tenants', { name: 'acme' });
    assert.equal(dup.status, 409);
    assert.match(String(dup.body['detail']), /tenant "acme" already exists/);
    assert.equal((await call('POST', '/v1/tenants/acme/environments', { name: 'prod', lane: 'double' })).status, 201);
    const busy = await call('DELETE', '/v1/tenants/acme');
    assert.equal(busy.status, 409);
    assert.match(String(busy.body['detail']), /environments/);
    assert.equal((await call('POST', '/v1/tenants', { name: 'gone' })).status, 201);
    assert.equal((await call('DELETE', '/v1/tenants/gone')).status, 204);
    assert.equal((await call('GET', '/v1/tenants/gone')).status, 404);
  });

  it('names the field and the reason for bad input, and changes nothing', async () => {
    const before = await call('GET', '/v1/tenants');
    const cases: [string, string, unknown, string, RegExp][] = [
      ['POST', '/v1/tenants', { name: 'UPPER' }, 'name', /not a valid name/],
      ['POST', '/v1/tenants', { name: 42 }, 'name', /expected string, got number/],
      ['POST', '/v1/tenants', { name: 'x', admin: true }, 'body', /unknown key "admin"/],
      ['POST', '/v1/tenants/acme/environments', { name: 'dev', lane: 'triple' }, 'lane', /"triple" is not a lane/],
      ['PUT', '/v1/tenants/acme/environments/prod/services/web/scale', { instances: 1.5 }, 'instances', /expected int|integer/],
      ['GET', '/v1/events?limit=0', undefined, 'limit', /limit/],
    ];
    for (const [method, url, body, field, re] of cases) {
      const r = await call(method as 'POST', url, body);
      assert.equal(r.status, 400, `${method} ${url} → ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body['code'], 'LANES_ERR_INPUT');
      assert.equal(r.body['field'] ?? 'body', field);
      assert.match(String(r.body['detail']), re);
    }
    assert.deepEqual(await call('GET', '/v1/tenants'), before);
  });

  it('refuses an empty or non-gzip release body with 400 and scale before any release with 404', async () => {
    const r = await cp.app.inject({ method: 'POST', url: '/v1/tenants/acme/environments/prod/releases', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/gzip' }, payload: Buffer.from('nope') });
    assert.equal(r.statusCode, 400);
    assert.match(r.body, /not a gzip-compressed tar archive/);
    const s = await call('PUT', '/v1/tenants/acme/environments/prod/services/web/scale', { instances: 2 });
    assert.equal(s.status, 404);
    assert.match(String(s.body['detail']), /no release yet/);
  });

  it('gives each environment its own private network and egress allow-list', async () => {
    const a = await call('POST', '/v1/tenants/acme/environments', { name: 'net1', egress: ['10.0.0.0/8:443', '192.168.1.0/24'] });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const b = await call('POST', '/v1/tenants/acme/environments', { name: 'net2' });
    const na = a.body['network'] as { subnet: string; egressAddress: string; egress: unknown };
    const nb = b.body['network'] as { subnet: string };
    assert.match(na.subnet, /^10\.77\.\d+\.0\/24$/);
    assert.notEqual(na.subnet, nb.subnet, 'no two environments share a network');
    assert.match(na.egressAddress, /^10\.77\.255\.\d+$/);
    assert.deepEqual(na.egress, [{ cidr: '10.0.0.0/8', port: 443 }, { cidr: '192.168.1.0/24', port: null }]);
    const open = await call('PUT', '/v1/tenants/acme/environments/net1/egress', { allow: null });
    assert.equal((open.body['network'] as { egress: unknown }).egress, null);
    for (const [bad, re] of [['10.0.0.0/33', /egress\.0: "10\.0\.0\.0\/33" is not CIDR/], ['10.0.0.0/8:0', /port "0" must be 1-65535/], ['nope', /is not CIDR/], ['10.0.0.1/8', /egress\.0: "10\.0\.0\.1\/8" has host bits set; use 10\.0\.0\.0\/8/]] as const) {
      const r = await call('PUT', '/v1/tenants/acme/environments/net1/egress', { allow: [bad] });
      assert.equal(r.status, 400);
      assert.match(String(r.body['detail']), re);
    }
  });

  it('takes a zone down and up, and refuses unknown zones', async () => {
    const down = await call('PUT', '/v1/zones/b', { state: 'down' });
    assert.equal(down.status, 200);
    assert.equal(down.body['state'], 'down');
    const zones = (await call('GET', '/v1/platform')).body['zones'] as { name: string; state: string }[];
    assert.equal(zones.find((z) => z.name === 'b')?.state, 'down');
    assert.equal((await call('PUT', '/v1/zones/b', { state: 'up' })).body['state'] !== 'down', true);
    assert.equal((await call('PUT', '/v1/zones/zz', { state: 'down' })).status, 404);
    assert.equal((await call('PUT', '/v1/zones/a', { state: 'sideways' })).status, 400);
  });

  it('records every action as an event', async () => {
    const r = await call('GET', '/v1/events?tenant=acme');
    const reasons = (r.body['items'] as { reason: string }[]).map((e) => e.reason);
    assert.ok(reasons.includes('TenantCreated'));
    assert.ok(reasons.includes('EnvironmentCreated'));
  });

  it('documents every route in /openapi.json, and only routes that exist', async () => {
    const r = await call('GET', '/openapi.json', undefined, null);
    assert.equal(r.status, 200);
    const served = r.body as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const documented = new Set<string>();
    const documentedPublic = new Set<string>();
    for (const [p, ops] of Object.entries(served.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (method === 'parameters') continue;
        const key = `${method.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`;
        documented.add(key);
        if (Array.isArray(op.security) && op.security.length === 0) documentedPublic.add(key);
      }
    }
    // The router's own list (HEAD routes are Fastify's automatic twins of the GETs).
    const routed = new Set(registeredRoutes(cp.app).filter((x) => x.method !== 'HEAD').map((x) => `${x.method} ${x.url}`));
    assert.deepEqual([...routed].filter((k) => !documented.has(k)).sort(), [], 'routes missing from /openapi.json');
    assert.deepEqual([...documented].filter((k) => !routed.has(k)).sort(), [], 'documented routes the router does not have');
    assert.deepEqual([...documentedPublic].sort(), [...PUBLIC_ROUTES].filter((k) => !k.startsWith('HEAD ')).sort(), 'the routes documented without security are exactly the public ones');
    assert.deepEqual(served, JSON.parse(JSON.stringify(openApiDocument)));
  });
});
