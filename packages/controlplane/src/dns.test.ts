/**
 * DNS in the control plane: the failover records API (validation naming the field,
 * create/replace/delete, events), the zone snapshot on `GET /v1/dns/watch` for the node
 * token, and the public-address flag.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@lanes/testkit';
import type { DnsZoneSnapshot } from '@lanes/spec';
import pino from 'pino';
import { parseConfig } from './config.js';
import { buildDnsSnapshot, parsePublicAddresses } from './dns.js';
import { startControlPlane, type ControlPlane } from './server.js';

/** Reads the first `zone` line of the watch stream (with a deadline), then hangs up. */
function firstZone(url: string, token: string, minSerial = 0): Promise<DnsZoneSnapshot> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/v1/dns/watch`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (const line of buf.split('\n').slice(0, -1)) {
          const m = JSON.parse(line) as { type: string; zone?: DnsZoneSnapshot };
          if (m.type === 'zone' && m.zone && m.zone.serial >= minSerial) {
            req.destroy();
            resolve(m.zone);
            return;
          }
        }
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
      });
    });
    req.on('error', reject);
    setTimeout(() => {
      req.destroy();
      reject(new Error('no zone within 10 s'));
    }, 10_000).unref();
  });
}

describe('dns records API and zone feed', () => {
  let cp: ControlPlane;
  let home: string;
  let admin: string;
  let node: string;

  before(async () => {
    home = await tempDir('lanes-cp-dns-');
    cp = await startControlPlane(parseConfig(['--home', home, '--api-port', '0', '--domain', 'lanes.test', '--public-address', '203.0.113.10', '--public-address', '2001:DB8::10,203.0.113.11', '--dns-ttl', '20'], {}), pino({ level: 'silent' }));
    admin = (await readFile(path.join(home, 'admin.token'), 'utf8')).trim();
    node = (await readFile(path.join(home, 'node.token'), 'utf8')).trim();
  });
  after(async () => {
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  const call = async (method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, body?: unknown, token = admin) => {
    const r = await cp.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {} };
  };
  const valid = { primary: { address: '192.0.2.10', check: { url: 'http://192.0.2.10/healthz' } }, secondary: { address: '198.51.100.20' } };

  it('refuses bad records naming the field, and changes nothing', async () => {
    assert.equal((await call('POST', '/v1/tenants', { name: 'acme' })).status, 201);
    assert.equal((await call('POST', '/v1/tenants/acme/environments', { name: 'prod' })).status, 201);
    const cases: [string, unknown, string, RegExp][] = [
      ['www.example.com', valid, 'name', /not inside the platform domain lanes\.test/],
      ['lanes.test', valid, 'name', /not inside the platform domain/],
      ['bad_name.lanes.test', valid, 'name', /is not a DNS name/],
      ['ns.lanes.test', valid, 'name', /the platform's name server/],
      ['prod.acme.lanes.test', valid, 'name', /is the host of environment acme\/prod/],
      ['www.lanes.test', { ...valid, primary: { ...valid.primary, address: '300.1.1.1' } }, 'primary.address', /must be an IPv4 or IPv6 address/],
      ['www.lanes.test', { ...valid, secondary: { address: 'fe80::1%eth0' } }, 'secondary.address', /must be an IPv4 or IPv6 address/],
      ['www.lanes.test', { ...valid, primary: { address: '192.0.2.10', check: { url: 'ftp://x/' } } }, 'primary.check.url', /must be an http\(s\) URL/],
      ['www.lanes.test', { ...valid, primary: { address: '192.0.2.10' } }, 'primary.check', /is required/],
      ['www.lanes.test', { ...valid, primary: { address: '192.0.2.10', check: { url: 'http://x/', intervalMs: 1000, timeoutMs: 5000 } } }, 'primary.check.timeoutMs', /must not exceed intervalMs/],
      ['www.lanes.test', { ...valid, ttl: -1 }, 'ttl', /0-86400/],
      ['www.lanes.test', { ...valid, extra: 1 }, 'body', /unknown key "extra"/],
    ];
    for (const [name, body, field, re] of cases) {
      const r = await call('PUT', `/v1/dns/records/${name}`, body);
      assert.equal(r.status, 400, `${name} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body['field'], field, JSON.stringify(r.body));
      assert.match(String(r.body['detail']), re);
    }
    assert.deepEqual((await call('GET', '/v1/dns/records')).body, { items: [] });
  });

  it('creates, replaces, lists and deletes records, each an event; the node token may not', async () => {
    const created = await call('PUT', '/v1/dns/records/WWW.dr.lanes.test.', valid);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body['name'], 'www.dr.lanes.test');
    assert.equal(created.body['ttl'], 20, 'the platform TTL by default');
    assert.deepEqual(created.body['primary'], { address: '192.0.2.10', check: { url: 'http://192.0.2.10/healthz', intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 } });
    assert.deepEqual(created.body['secondary'], { address: '198.51.100.20', check: null });
    const replaced = await call('PUT', '/v1/dns/records/www.dr.lanes.test', { ...valid, ttl: 5, secondary: { address: '2001:db8:0::20', check: { url: 'https://[2001:db8::20]/', intervalMs: 500 } } });
    assert.equal(replaced.status, 200);
    assert.deepEqual(replaced.body['secondary'], { address: '2001:db8::20', check: { url: 'https://[2001:db8::20]/', intervalMs: 500, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 3 } });
    assert.equal((await call('GET', '/v1/dns/records', undefined, node)).status, 403);
    assert.equal((await call('PUT', '/v1/dns/records/x.lanes.test', valid, node)).status, 403);
    const list = (await call('GET', '/v1/dns/records')).body['items'] as { name: string; ttl: number }[];
    assert.deepEqual(list.map((r) => [r.name, r.ttl]), [['www.dr.lanes.test', 5]]);
    assert.equal((await call('PUT', '/v1/dns/records/api.dr.lanes.test', valid)).status, 201);
    assert.equal((await call('DELETE', '/v1/dns/records/api.dr.lanes.test')).status, 204);
    const gone = await call('DELETE', '/v1/dns/records/api.dr.lanes.test');
    assert.equal(gone.status, 404);
    assert.match(String(gone.body['detail']), /not found/);
    const events = ((await call('GET', '/v1/events?limit=1000')).body['items'] as { reason: string; message: string }[]).filter((e) => e.reason.startsWith('DnsRecord'));
    assert.deepEqual(events.map((e) => e.reason), ['DnsRecordCreated', 'DnsRecordReplaced', 'DnsRecordCreated', 'DnsRecordDeleted']);
    assert.match(events[0]?.message ?? '', /primary 192\.0\.2\.10 \(checked at http:\/\/192\.0\.2\.10\/healthz every 10s\), secondary 198\.51\.100\.20 \(unchecked\), ttl 20s/);
  });

  it('streams the zone to the node token: hosts of active environments, the public addresses, the records; the serial goes up with a change', async () => {
    const zone = await firstZone(cp.url, node);
    assert.equal(zone.domain, 'lanes.test');
    assert.equal(zone.ttl, 20);
    assert.deepEqual(zone.addresses, { v4: ['203.0.113.10', '203.0.113.11'], v6: ['2001:db8::10'] });
    assert.deepEqual(zone.hosts, ['prod.acme.lanes.test']);
    assert.deepEqual(zone.failover.map((r) => r.name), ['www.dr.lanes.test']);
    assert.equal((await call('POST', '/v1/tenants/acme/environments', { name: 'test' })).status, 201);
    await cp.platform.settle();
    await cp.platform.tick();
    const next = await firstZone(cp.url, node, zone.serial + 1);
    assert.deepEqual(next.hosts, ['prod.acme.lanes.test', 'test.acme.lanes.test']);
    assert.ok(next.serial > zone.serial);
  });
});

describe('zone snapshot and public addresses', () => {
  it('parses repeated or comma-separated public addresses by family, canonical, and names bad ones', () => {
    assert.deepEqual(parsePublicAddresses('publicAddresses', '127.0.0.1, ::1,2001:DB8:0:0::1'), { v4: ['127.0.0.1'], v6: ['::1', '2001:db8::1'] });
    assert.throws(() => parsePublicAddresses('publicAddresses', '127.0.0.1,localhost'), { message: /publicAddresses: "localhost" is not an IP address/ });
    assert.throws(() => parsePublicAddresses('publicAddresses', ' , '), { message: /at least one address/ });
  });

  it('leaves out deleting environments and records an environment took over', () => {
    const env = (tenant: string, name: string, phase: 'active' | 'deleting') => ({ id: `env_${name}`, tenant, name, lane: 'single' as const, phase, currentRelease: null, createdAt: '', netIndex: null, sandboxId: 1, egress: null });
    const check = { url: 'http://192.0.2.1/', intervalMs: 1000, timeoutMs: 100, healthyThreshold: 1, unhealthyThreshold: 1 };
    const rec = (name: string) => ({ name, ttl: 5, primary: { address: '192.0.2.1', check }, secondary: { address: '192.0.2.2', check: null }, createdAt: '', updatedAt: '' });
    const z = buildDnsSnapshot({ domain: 'l.test', dnsTtl: 30, publicAddressList: { v4: ['127.0.0.1'], v6: [] } }, [env('b', 'prod', 'active'), env('a', 'prod', 'active'), env('a', 'old', 'deleting')], [rec('prod.a.l.test'), rec('www.l.test')], 7);
    assert.deepEqual(z.hosts, ['prod.a.l.test', 'prod.b.l.test']);
    assert.deepEqual(z.failover.map((r) => r.name), ['www.l.test']);
    assert.equal(z.serial, 7);
  });
});
