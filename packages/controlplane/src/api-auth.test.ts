/**
 * A hostile client against the real API on a real socket: every registered route (taken
 * from the router itself), in every spelling that might slip past authentication —
 * percent-escapes, %2F separators, dot segments, doubled slashes, other letter case, a
 * trailing slash, absolute form, the token in the query string — without a token. None
 * may succeed and nothing may be written. Then: tokens never reach the log, and bodies
 * that are not objects, nest too deep or name forbidden egress destinations are 400s that
 * change nothing.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@lanes/testkit';
import pino from 'pino';
import { PUBLIC_ROUTES, checkJsonDepth, loggableUrl, nonCanonicalReason } from './api-guard.js';
import { registeredRoutes, type RouteInfo } from './api.js';
import { parseConfig } from './config.js';
import { startControlPlane, type ControlPlane } from './server.js';

/** Plausible values for path parameters: they name things that exist, so a bypass would act. */
const PARAMS: Record<string, string> = {
  tenant: 'acme',
  env: 'prod',
  service: 'web',
  zone: 'a',
  db: 'main',
  hash: 'a'.repeat(64),
  name: 'db.lanes.localhost',
};

function concrete(pattern: string): string {
  return pattern.replace(/:(\w+)/g, (_m, name: string) => {
    const v = PARAMS[name];
    if (v === undefined) throw new Error(`no test value for path parameter :${name} of ${pattern}; add one to PARAMS`);
    return v;
  });
}

const hex = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;

/** Spellings of `p` a router might take for `p` while a prefix check on the raw path would not. */
function spellings(p: string, admin: string): string[] {
  const out = new Set<string>([p]);
  for (let i = 1; i < p.length; i++) {
    const c = p[i] as string;
    if (/[A-Za-z0-9.\-_~]/.test(c)) {
      out.add(`${p.slice(0, i)}${i % 2 === 0 ? hex(c) : hex(c).toLowerCase()}${p.slice(i + 1)}`);
    }
  }
  out.add(p.replace(/[A-Za-z0-9]/g, hex));
  const slashes = [...p.matchAll(/\//g)].map((m) => m.index);
  for (const i of slashes) {
    if (i > 0) out.add(`${p.slice(0, i)}%2F${p.slice(i + 1)}`);
    out.add(`${p.slice(0, i)}//${p.slice(i + 1)}`);
    out.add(`${p.slice(0, i)}/.${p.slice(i)}`);
    out.add(`${p.slice(0, i)}/x/..${p.slice(i)}`);
    out.add(`${p.slice(0, i)}/%2e${p.slice(i)}`);
    out.add(`${p.slice(0, i)}\\${p.slice(i + 1)}`);
  }
  out.add(`/x/..${p}`);
  out.add(`/.${p}`);
  out.add(`/%2e%2e${p}`);
  out.add(`/healthz/..${p}`);
  out.add(`/v1/ca/..${p.slice(3)}`);
  out.add(p.toUpperCase());
  out.add(p.replace(/^\/v1/, '/V1'));
  out.add(p.replace(/[a-z]/, (c) => c.toUpperCase()));
  out.add(`${p}/`);
  out.add(`${p};x`);
  out.add(`/healthz;${p}`);
  out.add(`${p}#frag`);
  out.add(`http://127.0.0.1${p}`);
  out.add(`${p}?token=${admin}`);
  out.add(`${p}?access_token=${admin}`);
  out.add(`${p}?authorization=Bearer%20${admin}`);
  out.add(`${p}?x=${admin}`);
  return [...out];
}

interface Answer {
  status: number;
  body: string;
}

/** One request with the target exactly as given (no client-side normalisation), on a kept-alive socket. */
function raw(base: URL, agent: http.Agent, method: string, target: string, opts: { token?: string; body?: string; contentType?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    if (opts.body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(opts.body));
    }
    const req = http.request({ host: base.hostname, port: base.port, method, path: target, headers, agent, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target}: no answer within 5s (a stream was opened?)`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * The status code of one request written byte for byte on a fresh TCP connection (like
 * `curl --path-as-is`): no client library rewrites or refuses the target.
 */
function probe(base: URL, method: string, target: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: base.hostname, port: Number(base.port) });
    const head = [`${method} ${target} HTTP/1.1`, `host: ${base.host}`, 'connection: close'];
    if (body !== undefined) head.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`);
    let text = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5s (a stream was opened?)')));
    socket.on('connect', () => socket.end(`${head.join('\r\n')}\r\n\r\n${body ?? ''}`));
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
      if (m) {
        resolve(Number(m[1]));
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed without a status line: ${JSON.stringify(text.slice(0, 80))}`)));
  });
}

describe('API authentication: deny by default, one spelling per path', () => {
  let cp: ControlPlane;
  let home: string;
  let admin: string;
  let base: URL;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const logLines: string[] = [];

  before(async () => {
    home = await tempDir('lanes-cp-auth-');
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString('utf8'));
        cb();
      },
    });
    cp = await startControlPlane(parseConfig(['--home', home, '--api-port', '0', '--isolation', 'netns', '--network-cidr', '10.77.0.0/16'], {}), pino({ level: 'info' }, sink));
    admin = (await readFile(path.join(home, 'admin.token'), 'utf8')).trim();
    base = new URL(cp.url);
    for (const [method, target, body] of [
      ['POST', '/v1/tenants', { name: 'acme' }],
      ['POST', '/v1/tenants/acme/environments', { name: 'prod' }],
      ['PUT', '/v1/tenants/acme/environments/prod/edge', { deny: ['192.0.2.0/24'], clientRate: '50/s' }],
    ] as const) {
      const r = await raw(base, agent, method, target, { token: admin, body: JSON.stringify(body) });
      assert.ok(r.status < 300, `${method} ${target} → ${r.status} ${r.body}`);
    }
    // The reconciler's own writes (the environment's certificate) happen before the hostile client starts.
    cp.platform.kick();
    await cp.platform.settle();
  });
  after(async () => {
    agent.destroy();
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  /** What a bypass could have changed: tenants, environments, edge settings, zones, DNS records, events. */
  const state = async (): Promise<string> => {
    const parts: string[] = [];
    for (const p of ['/v1/tenants', '/v1/tenants/acme/environments', '/v1/tenants/acme/environments/prod/edge', '/v1/zones', '/v1/dns/records', '/v1/events?limit=1000']) {
      const r = await raw(base, agent, 'GET', p, { token: admin });
      assert.equal(r.status, 200, `GET ${p} → ${r.status} ${r.body}`);
      // Zones without supervisors go from awaiting to unavailable on their own; down is what a write would set.
      parts.push(r.body.replace(/"time":"[^"]*"/g, '').replace(/"state":"(awaiting|unavailable)"/g, '"state":"not down"'));
    }
    return parts.join('\n');
  };

  it('keeps the public list short: health, the OpenAPI document and the CA certificate', () => {
    assert.deepEqual([...PUBLIC_ROUTES].map((r) => r.split(' ')[1]).filter((v, i, a) => a.indexOf(v) === i), ['/healthz', '/openapi.json', '/v1/ca']);
  });

  it('answers every route, in every spelling, without a token with 400, 401 or 404, and writes nothing', async () => {
    const routes: readonly RouteInfo[] = registeredRoutes(cp.app);
    assert.ok(routes.length > 40, `the router lists ${routes.length} routes`);
    const before = await state();
    const failures: string[] = [];
    let tried = 0;
    for (const route of routes) {
      const p = concrete(route.url);
      const isPublic = PUBLIC_ROUTES.has(`${route.method} ${route.url}`);
      const body = ['POST', 'PUT', 'PATCH'].includes(route.method) ? JSON.stringify({ name: 'pwned', state: 'down', allow: null, instances: 0 }) : undefined;
      for (const target of spellings(p, admin)) {
        // The public routes' own plain spelling is meant to answer.
        if (isPublic && target === p) continue;
        tried++;
        try {
          const status = await probe(base, route.method, target, body);
          if (![400, 401, 404].includes(status)) failures.push(`${route.method} ${target} → ${status}`);
        } catch (err) {
          failures.push(`${route.method} ${target} → ${(err as Error).message}`);
        }
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${tried} requests without a valid token were not refused`);
    assert.equal(await state(), before, 'nothing changed');
  });

  it('refuses a non-canonical path with 400 even with a valid token, and serves the canonical one', async () => {
    assert.equal((await raw(base, agent, 'GET', '/v1/tenants', { token: admin })).status, 200);
    for (const target of ['/%761/tenants', '/v1/tenant%73', '/v1//tenants', '/v1/./tenants', '/x/../v1/tenants', '/v1/tenants/', 'http://127.0.0.1/v1/tenants']) {
      const r = await raw(base, agent, 'GET', target, { token: admin });
      assert.equal(r.status, 400, `${target} → ${r.status} ${r.body}`);
      assert.match(r.body, /"code":"LANES_ERR_INPUT"/);
      assert.match(r.body, /path: /);
    }
    // Letter case is not folded: another spelling is another (unknown) path.
    assert.equal((await raw(base, agent, 'GET', '/V1/tenants', { token: admin })).status, 404);
    assert.equal((await raw(base, agent, 'GET', '/V1/tenants')).status, 401);
  });

  it('takes tokens only from the Authorization header: one in the query string is a 400 and never logged', async () => {
    for (const q of [`token=${admin}`, `access_token=${admin}`, `x=${admin}`, `api_key=whatever`]) {
      const bare = await raw(base, agent, 'GET', `/v1/tenants?${q}`);
      assert.ok([400, 401].includes(bare.status), `?${q} without a header → ${bare.status}`);
      const withHeader = await raw(base, agent, 'GET', `/v1/tenants?${q}`, { token: admin });
      assert.equal(withHeader.status, 400, `?${q} with a header → ${withHeader.status} ${withHeader.body}`);
      assert.match(withHeader.body, /accepted only in the Authorization header/);
      assert.ok(!withHeader.body.includes(admin), 'the answer does not echo the token');
    }
    const logs = logLines.join('');
    assert.match(logs, /incoming request/, 'requests are logged');
    assert.ok(!logs.includes(admin), 'the admin token appears nowhere in the log');
    const withAuth = logLines.filter((l) => /"authorization"\s*:|bearer /i.test(l));
    assert.deepEqual(withAuth, [], 'no authorization header in the log');
    assert.match(logs, /\/v1\/tenants\?token=\[redacted\]/);
  });

  it('redacts credential-like query parameters in logged URLs and keeps the rest', () => {
    assert.equal(loggableUrl('/v1/events?tenant=acme&limit=5'), '/v1/events?tenant=acme&limit=5');
    assert.equal(loggableUrl('/v1/x?tenant=acme&token=lanes_admin_abc'), '/v1/x?tenant=acme&token=[redacted]');
    assert.equal(loggableUrl('/v1/x?q=lanes_node_abc'), '/v1/x?q=[redacted]');
    assert.equal(loggableUrl('/v1/x?%zz=1'), '/v1/x?[redacted]');
    assert.equal(nonCanonicalReason('/v1/tenants/acme?x=%2F'), null);
    assert.match(nonCanonicalReason('/v1/tenants/%61cme') ?? '', /percent-escape/);
  });

  it('refuses null, missing and non-object bodies with a one-line 400 and leaves the edge settings as they were', async () => {
    const edge = '/v1/tenants/acme/environments/prod/edge';
    const before = await raw(base, agent, 'GET', edge, { token: admin });
    assert.match(before.body, /192\.0\.2\.0\/24/);
    const cases: [string, string, string | undefined, RegExp][] = [
      ['PUT', edge, 'null', /body: expected a JSON object, got null/],
      ['PUT', edge, undefined, /body: expected a JSON object, got no body/],
      ['PATCH', edge, 'null', /got null/],
      ['PATCH', edge, '[]', /got an array/],
      ['PUT', edge, '"deny"', /got string/],
      ['POST', '/v1/tenants', '42', /got number/],
      ['POST', '/v1/tenants', 'null', /got null/],
      ['POST', '/v1/tenants', undefined, /got no body/],
      ['PUT', '/v1/zones/a', 'null', /got null/],
      ['POST', '/v1/tenants/acme/environments/prod/rollback', 'null', /got null/],
      ['PUT', '/v1/dns/records/x.lanes.localhost', 'true', /got boolean/],
    ];
    for (const [method, target, body, re] of cases) {
      const r = await raw(base, agent, method, target, { token: admin, ...(body === undefined ? {} : { body }) });
      assert.equal(r.status, 400, `${method} ${target} ${body} → ${r.status} ${r.body}`);
      const detail = String((JSON.parse(r.body) as { detail: unknown }).detail);
      assert.match(detail, re);
      assert.ok(!detail.includes('\n'), 'one line');
    }
    assert.equal((await raw(base, agent, 'GET', edge, { token: admin })).body, before.body);
  });

  it('refuses a body nested 100k levels deep with 400, not 500, and keeps the body size limit', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const r = await raw(base, agent, 'POST', '/v1/tenants', { token: admin, body: deep });
    assert.equal(r.status, 400, r.body);
    assert.match(r.body, /nested deeper than 64 levels/);
    const obj = await raw(base, agent, 'PUT', '/v1/tenants/acme/environments/prod/edge', { token: admin, body: `{"deny":${'['.repeat(70)}${']'.repeat(70)}}` });
    assert.equal(obj.status, 400, obj.body);
    // Brackets inside strings are text, not nesting.
    assert.doesNotThrow(() => checkJsonDepth(JSON.stringify({ name: '['.repeat(1000) })));
    const huge = await raw(base, agent, 'POST', '/v1/tenants', { token: admin, body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }) });
    assert.equal(huge.status, 413);
  });

  it('creates no environment when its egress list is refused, and refuses link-local, loopback and platform destinations by name', async () => {
    const envs = async () => (await raw(base, agent, 'GET', '/v1/tenants/acme/environments', { token: admin })).body;
    const before = await envs();
    const cases: [string, RegExp][] = [
      ['not-a-cidr', /egress\.0: "not-a-cidr" is not CIDR/],
      ['169.254.169.254/32', /egress\.0: "169\.254\.169\.254\/32" is inside link-local/],
      ['169.254.0.0/16:80', /"169\.254\.0\.0\/16:80" is inside link-local/],
      ['127.0.0.1/32', /"127\.0\.0\.1\/32" is inside loopback/],
      ['10.77.3.0/24', /"10\.77\.3\.0\/24" is inside the platform's own network \(10\.77\.0\.0\/16\)/],
      ['::1', /"::1" is not CIDR/],
    ];
    for (const [entry, re] of cases) {
      const r = await raw(base, agent, 'POST', '/v1/tenants/acme/environments', { token: admin, body: JSON.stringify({ name: 'leaky', egress: ['192.0.2.0/24', entry].reverse() }) });
      assert.equal(r.status, 400, `${entry} → ${r.status} ${r.body}`);
      assert.match(String((JSON.parse(r.body) as { detail: unknown }).detail), re);
      assert.equal((await raw(base, agent, 'GET', '/v1/tenants/acme/environments/leaky', { token: admin })).status, 404, `${entry}: no environment left behind`);
      const put = await raw(base, agent, 'PUT', '/v1/tenants/acme/environments/prod/egress', { token: admin, body: JSON.stringify({ allow: [entry] }) });
      assert.equal(put.status, 400, `PUT egress ${entry} → ${put.status} ${put.body}`);
    }
    assert.equal(await envs(), before);
    // Wider entries stay allowed: the forward chain refuses these destinations first.
    const wide = await raw(base, agent, 'PUT', '/v1/tenants/acme/environments/prod/egress', { token: admin, body: JSON.stringify({ allow: ['0.0.0.0/0:443', '10.0.0.0/8'] }) });
    assert.equal(wide.status, 200, wide.body);
  });
});
