/**
 * The DNS server on real sockets, asked by a real resolver client (dig): records, negative
 * answers, refusals, a failover record following its primary's health endpoint, and
 * garbage that must not hurt it.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { Authority } from './authority.js';
import { DnsServer } from './server.js';
import { check, dig, DOMAIN, failoverRecord, snapshot } from './test-helpers.js';

describe('dns server (dig over UDP and TCP)', () => {
  let authority: Authority;
  let server: DnsServer;
  let port: number;
  let health: http.Server;
  let healthStatus = 200;
  let stateDir: string;

  before(async () => {
    health = http.createServer((_req, res) => res.writeHead(healthStatus).end(`${healthStatus}\n`));
    health.listen(0, '127.0.0.1');
    await once(health, 'listening');
    const healthPort = (health.address() as net.AddressInfo).port;
    stateDir = await tempDir('lanes-dns-');
    authority = new Authority({ stateDir });
    authority.applySnapshot(
      snapshot({
        serial: 2026112501,
        failover: [
          failoverRecord(`www.dr.${DOMAIN}`, {
            ttl: 5,
            primary: { address: '192.0.2.10', check: check(`http://127.0.0.1:${healthPort}/healthz`, { intervalMs: 150, timeoutMs: 100, unhealthyThreshold: 2, healthyThreshold: 2 }) },
            secondary: { address: '198.51.100.20', check: null },
          }),
        ],
      }),
    );
    server = new DnsServer({ port: 0, answer: (q) => authority.answer(q), limits: { tcpIdleTimeoutMs: 500, maxTcpConnections: 4 } });
    ({ port } = await server.start());
  });

  after(async () => {
    await server?.close();
    await authority?.close();
    health?.close();
  });

  it('answers A and AAAA for an environment host over UDP and TCP, authoritatively', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const a = await dig(port, transport, `prod.acme.${DOMAIN}`, 'A');
      assert.equal(a.status, 'NOERROR', a.raw);
      assert.ok(a.flags.includes('aa'), `flags ${a.flags.join(' ')}`);
      assert.deepEqual(a.answers, [`prod.acme.${DOMAIN}. 30 IN A 127.0.0.1`]);
      const aaaa = await dig(port, transport, `prod.acme.${DOMAIN}`, 'AAAA');
      assert.deepEqual(aaaa.answers, [`prod.acme.${DOMAIN}. 30 IN AAAA ::1`]);
    }
  });

  it('answers SOA and NS at the apex', async () => {
    const soa = await dig(port, DOMAIN, 'SOA');
    assert.deepEqual(soa.answers, [`${DOMAIN}. 30 IN SOA ns.${DOMAIN}. hostmaster.${DOMAIN}. 2026112501 3600 600 1209600 30`]);
    const ns = await dig(port, '+tcp', DOMAIN, 'NS');
    assert.deepEqual(ns.answers, [`${DOMAIN}. 30 IN NS ns.${DOMAIN}.`]);
    assert.deepEqual(ns.additional.filter((l) => !l.startsWith(';')), [`ns.${DOMAIN}. 30 IN A 127.0.0.1`, `ns.${DOMAIN}. 30 IN AAAA ::1`]);
  });

  it('answers NXDOMAIN with the SOA for an unknown name, NODATA for a known one, and REFUSED outside the zone', async () => {
    const nx = await dig(port, `nope.acme.${DOMAIN}`, 'A');
    assert.equal(nx.status, 'NXDOMAIN');
    assert.ok(nx.flags.includes('aa'));
    assert.match(nx.authority[0] ?? '', new RegExp(`^${DOMAIN}\\. 30 IN SOA `));
    const nodata = await dig(port, `prod.acme.${DOMAIN}`, 'MX');
    assert.equal(nodata.status, 'NOERROR');
    assert.deepEqual(nodata.answers, []);
    assert.equal(nodata.authority.length, 1);
    const refused = await dig(port, 'example.com', 'A');
    assert.equal(refused.status, 'REFUSED');
    assert.ok(!refused.flags.includes('aa'));
  });

  it('switches a failover record to the secondary when the primary health check fails, and back when it recovers', async () => {
    const name = `www.dr.${DOMAIN}`;
    const answer = async (): Promise<string> => (await dig(port, name, 'A')).answers.join(',');
    assert.equal(await answer(), `${name}. 5 IN A 192.0.2.10`);
    healthStatus = 503;
    await waitFor('the secondary answers', async () => (await answer()) === `${name}. 5 IN A 198.51.100.20`, { timeoutMs: 20_000, intervalMs: 100 });
    healthStatus = 200;
    await waitFor('the primary answers again', async () => (await answer()) === `${name}. 5 IN A 192.0.2.10`, { timeoutMs: 20_000, intervalMs: 100 });
  });

  it('survives malformed UDP datagrams and TCP garbage, and keeps answering', async () => {
    const udp = dgram.createSocket('udp4');
    const junk = [Buffer.alloc(0), Buffer.from([1]), Buffer.alloc(12, 0xff), Buffer.alloc(600, 0x41), Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, 0x41]), Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])];
    for (const j of junk) udp.send(j, port, '127.0.0.1');
    await sleep(200);
    udp.close();
    for (const payload of [Buffer.from([0, 3, 1, 2, 3]), Buffer.from([0xff, 0xff, 1, 2, 3]), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.end(payload);
      await once(s, 'close');
    }
    const after = await dig(port, '+tcp', `prod.acme.${DOMAIN}`, 'A');
    assert.equal(after.status, 'NOERROR');
    assert.ok(server.stats.dropped > 0 || server.stats.rejected > 0);
  });

  it('closes idle TCP connections and refuses connections beyond its limit', async () => {
    const idle = net.connect(port, '127.0.0.1');
    idle.on('error', () => undefined);
    await once(idle, 'connect');
    const closedAt = Date.now();
    await once(idle, 'close');
    assert.ok(Date.now() - closedAt < 5_000, 'closed by the idle timeout');
    const held: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      held.push(s);
    }
    await sleep(100);
    const extra = net.connect(port, '127.0.0.1');
    extra.on('error', () => undefined);
    await once(extra, 'close');
    for (const s of held) s.destroy();
    const ok = await dig(port, '+tcp', DOMAIN, 'SOA');
    assert.equal(ok.status, 'NOERROR');
  });

  it('answers from the persisted zone after a restart, before any control plane speaks', async () => {
    const again = new Authority({ stateDir });
    try {
      await authority.close(); // flushes the zone file
      assert.equal(await again.loadPersisted(), true);
      assert.equal(again.serial, 2026112501);
      assert.equal(again.answer({ name: `prod.acme.${DOMAIN}`, type: 1, class: 1 }).rcode, 'NOERROR');
    } finally {
      await again.close();
    }
  });
});
