/**
 * Load-balancing settings from the manifest, through the whole platform: a sticky service
 * keeps a client on one instance and moves it when that instance is killed, and the
 * gateway's figures for the service appear on its Prometheus endpoint.
 */
import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { tempDir, waitFor } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

describe('load balancing from the manifest', () => {
  let p: TestPlatform;
  let app: string;

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b'] });
    app = await tempDir('lanes-sticky-app-');
    await cp(helloDir, app, { recursive: true });
    await writeFile(
      path.join(app, 'lanes.yaml'),
      [
        'name: hello',
        'services:',
        '  web:',
        '    command: node server.js',
        '    instances: 3',
        '    http: true',
        '    health: { path: /healthz, interval: 500ms, timeout: 200ms }',
        '    balance: least_outstanding',
        '    sticky: { cookie: lanes_web, ttl: 1h }',
        '    timeout: 5s',
        '',
      ].join('\n'),
    );
    assert.equal((await p.cli(['tenant', 'create', 'lb'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'lb/prod'])).code, 0);
    const r = await p.cli(['deploy', 'lb/prod', app], 120_000);
    assert.equal(r.code, 0, r.stderr);
    await p.waitReady('lb/prod');
  });
  after(async () => {
    await p?.stop();
  });

  const getWith = async (cookie: string | null): Promise<{ instance: string; setCookie: string | null }> => {
    const headers: Record<string, string> = { host: p.host('prod', 'lb') };
    if (cookie !== null) headers['cookie'] = cookie;
    const r = await request(`http://127.0.0.1:${p.httpPort}/`, { headers, headersTimeout: 10_000 });
    assert.equal(r.statusCode, 200);
    const body = (await r.body.json()) as { instance: string };
    const sc = r.headers['set-cookie'];
    return { instance: body.instance, setCookie: sc === undefined ? null : String(sc) };
  };

  it('pins a client to one instance by cookie and moves it when the instance dies', async () => {
    const first = await getWith(null);
    assert.match(first.setCookie ?? '', new RegExp(`^lanes_web=${first.instance}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600$`));
    const cookie = (first.setCookie as string).split(';')[0] as string;
    for (let i = 0; i < 10; i++) assert.equal((await getWith(cookie)).instance, first.instance);

    const s = await p.status('lb/prod');
    const victim = s.instances.find((i) => i.id === first.instance);
    assert.ok(victim?.pid);
    process.kill(victim.pid, 'SIGKILL');
    // Every request still succeeds; the client lands on another instance with a new cookie.
    const moved = await waitFor('moved to another instance', async () => {
      const r = await getWith(cookie);
      return r.instance !== first.instance ? r : false;
    }, { timeoutMs: 15_000 });
    assert.ok(moved);
    assert.match(moved.setCookie ?? '', new RegExp(`^lanes_web=${moved.instance};`));
  });

  it('shows the service on the gateway\'s Prometheus endpoint', async () => {
    const state = JSON.parse(await readFile(path.join(p.home, 'gateway', 'gateway.json'), 'utf8')) as { adminUrl: string };
    const token = (await readFile(path.join(p.home, 'node.token'), 'utf8')).trim();
    const denied = await request(`${state.adminUrl}/metrics`);
    assert.equal(denied.statusCode, 401);
    await denied.body.dump();
    await waitFor('figures for lb/prod/web', async () => {
      const r = await request(`${state.adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      const text = await r.body.text();
      const m = /lanes_gateway_requests_total\{tenant="lb",environment="prod",service="web",code="2xx"\} (\d+)/.exec(text);
      return m !== null && Number(m[1]) >= 11 && text.includes('lanes_gateway_request_duration_seconds_bucket{tenant="lb",environment="prod",service="web",le="+Inf"}');
    }, { timeoutMs: 10_000 });
  });
});
