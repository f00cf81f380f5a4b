/**
 * The platform DNS end to end: `lanes up` starts it on its own port, an environment's host
 * resolves (dig, UDP and TCP) to the public addresses once the environment exists, an
 * unknown name is NXDOMAIN, and a failover record set with `lanes dns set` follows its
 * primary's health endpoint to the secondary and back.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

interface Dig {
  status: string;
  flags: string[];
  answers: string[];
  raw: string;
}

/** `dig @127.0.0.1 -p PORT ARGS`, parsed: status, flags and the answer lines (whitespace collapsed). */
function dig(port: number, ...args: string[]): Promise<Dig> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+norec', '+time=3', '+tries=2', ...args], { timeout: 20_000 }, (err, stdout) => {
      const raw = String(stdout);
      if (err && raw === '') return reject(err);
      const start = raw.indexOf(';; ANSWER SECTION:\n');
      const answers: string[] = [];
      if (start >= 0) {
        for (const l of raw.slice(start).split('\n').slice(1)) {
          if (l.trim() === '') break;
          answers.push(l.replace(/\s+/g, ' ').trim());
        }
      }
      resolve({ status: /status: (\w+)/.exec(raw)?.[1] ?? 'NONE', flags: (/;; flags: ([a-z ]+);/.exec(raw)?.[1] ?? '').trim().split(/\s+/), answers, raw });
    });
  });
}

describe('platform DNS', () => {
  let p: TestPlatform;
  let health: http.Server;
  let healthStatus = 200;
  let healthUrl = '';
  const record = 'www.dr.lanes.localhost';

  before(async () => {
    health = http.createServer((_req, res) => res.writeHead(healthStatus).end());
    health.listen(0, '127.0.0.1');
    await once(health, 'listening');
    healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/healthz`;
    p = await TestPlatform.start({ zones: ['a', 'b'] });
  });
  after(async () => {
    await p?.stop();
    health?.close();
  });

  it('answers A and AAAA for an environment host with a deployed app, over UDP and TCP, and NXDOMAIN for an unknown one', async () => {
    assert.equal((await p.cli(['tenant', 'create', 'acme'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'acme/prod'])).code, 0);
    const deploy = await p.cli(['deploy', 'acme/prod', helloDir], 120_000);
    assert.equal(deploy.code, 0, `deploy failed: ${deploy.stderr}\n${p.componentLogs()}`);
    await p.waitReady('acme/prod');
    const host = p.host('prod', 'acme');
    const a = await waitFor(`${host} resolves`, async () => {
      const r = await dig(p.dnsPort, host, 'A');
      return r.status === 'NOERROR' && r.answers.length > 0 ? r : false;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    assert.deepEqual(a.answers, [`${host}. 30 IN A 127.0.0.1`]);
    assert.ok(a.flags.includes('aa'), `authoritative: ${a.flags.join(' ')}`);
    const aaaa = await dig(p.dnsPort, '+tcp', host, 'AAAA');
    assert.deepEqual(aaaa.answers, [`${host}. 30 IN AAAA ::1`]);
    // The name the DNS gives is the one the gateway serves.
    assert.equal((await p.get(host)).status, 200);
    const nx = await dig(p.dnsPort, p.host('nope', 'acme'), 'A');
    assert.equal(nx.status, 'NXDOMAIN');
    assert.equal((await dig(p.dnsPort, 'example.com', 'A')).status, 'REFUSED');
    const soa = await dig(p.dnsPort, 'lanes.localhost', 'SOA');
    assert.match(soa.answers[0] ?? '', /^lanes\.localhost\. 30 IN SOA ns\.lanes\.localhost\. hostmaster\.lanes\.localhost\. \d+ /);
  });

  it('switches a failover record set with lanes dns set to its secondary when the primary check fails, and back', async () => {
    const set = await p.cli(['dns', 'set', record, '--primary', '192.0.2.10', '--primary-check', healthUrl, '--secondary', '198.51.100.20', '--ttl', '5s', '--check-interval', '300ms', '--unhealthy-threshold', '2', '--healthy-threshold', '2']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`^created dns record ${record.replace(/\./g, '\\.')}: primary 192\\.0\\.2\\.10`));
    const list = await p.cli(['dns', 'list']);
    assert.match(list.stdout, /www\.dr\.lanes\.localhost +5s +192\.0\.2\.10 +http:\/\/127\.0\.0\.1:\d+\/healthz every 300ms +198\.51\.100\.20 +none/);
    const answer = async (): Promise<string> => (await dig(p.dnsPort, record, 'A')).answers.join(',');
    await waitFor('the primary answers', async () => (await answer()) === `${record}. 5 IN A 192.0.2.10`, { timeoutMs: 20_000, intervalMs: 200 });
    healthStatus = 503;
    await waitFor('the secondary answers', async () => (await answer()) === `${record}. 5 IN A 198.51.100.20`, { timeoutMs: 30_000, intervalMs: 200 });
    healthStatus = 200;
    await waitFor('the primary answers again', async () => (await answer()) === `${record}. 5 IN A 192.0.2.10`, { timeoutMs: 30_000, intervalMs: 200 });
    const clash = await p.cli(['dns', 'set', p.host('prod', 'acme'), '--primary', '192.0.2.10', '--primary-check', healthUrl, '--secondary', '198.51.100.20']);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /is the host of environment acme\/prod/);
    assert.equal((await p.cli(['dns', 'delete', record])).code, 0);
    await waitFor('the record is gone', async () => (await dig(p.dnsPort, record, 'A')).status === 'NXDOMAIN', { timeoutMs: 20_000, intervalMs: 200 });
    const events = await p.cli(['events']);
    assert.match(events.stdout, /DnsRecordCreated/);
    assert.match(events.stdout, /DnsRecordDeleted/);
  });

  it('is stopped by lanes down', async () => {
    const pid = p.context().components?.dns;
    assert.ok(pid !== undefined && pid > 1, 'context.json records the dns server');
    const down = await p.cli(['down'], 60_000);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`stopped dns server \\(pid ${pid}\\)`));
    const r = await dig(p.dnsPort, '+time=1', '+tries=1', p.host('prod', 'acme'), 'A');
    assert.equal(r.status, 'NONE', 'no answer once it is stopped');
  });
});
