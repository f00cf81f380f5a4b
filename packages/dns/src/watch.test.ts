import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { after, describe, it } from 'node:test';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import type { DnsZoneSnapshot } from '@lanes/spec';
import { Authority } from './authority.js';
import { DOMAIN, snapshot } from './test-helpers.js';
import { ZoneWatcher } from './watch.js';

/** A stand-in for the stream format only, scripted per connection. */
async function watchServer(script: (res: http.ServerResponse, connection: number) => Promise<void>): Promise<{ url: string; server: http.Server; auth: string[] }> {
  const auth: string[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    auth.push(req.headers.authorization ?? '');
    if (req.url !== '/v1/dns/watch') return void res.writeHead(404).end();
    connections++;
    void script(res, connections);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, server, auth };
}

const line = (z: unknown): string => `${JSON.stringify({ type: 'zone', zone: z })}\n`;
const zoneAt = (serial: number, host: string): DnsZoneSnapshot => snapshot({ serial, hosts: [`${host}.${DOMAIN}`] });

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('zone watch client', () => {
  it('installs zones, ignores older ones within a connection, rejects invalid ones, and takes the first after a reconnect', async () => {
    const srv = await watchServer(async (res, n) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      if (n === 1) {
        res.write(line(zoneAt(5, 'five.acme')));
        res.write(line(zoneAt(3, 'three.acme'))); // older, same connection: ignored
        res.write(`${JSON.stringify({ type: 'ping', time: new Date().toISOString() })}\n`);
        res.write('not json\n');
        res.write(line({ ...zoneAt(9, 'nine.acme'), domain: 'BAD' })); // invalid: rejected
        const six = line(zoneAt(6, 'six.acme'));
        res.write(six.slice(0, 25)); // a line split across chunks
        await sleep(30);
        res.write(six.slice(25));
        await sleep(50);
        res.end();
      } else {
        res.write(line(zoneAt(2, 'two.acme'))); // the control plane restarted: accepted as is
      }
    });
    cleanups.push(async () => void srv.server.close());
    const authority = new Authority({ stateDir: await tempDir('lanes-dns-watch-') });
    cleanups.push(() => authority.close());
    const watcher = new ZoneWatcher({ apiUrl: srv.url, token: async () => 'node-token', sink: authority, minBackoffMs: 20 });
    cleanups.push(() => watcher.stop());
    watcher.start();
    await waitFor('zone 6 installed', () => authority.serial === 6 || authority.serial === 2, { timeoutMs: 10_000, intervalMs: 10 });
    await waitFor('zone 2 after the reconnect', () => authority.serial === 2, { timeoutMs: 10_000, intervalMs: 10 });
    assert.ok(authority.zone?.addressNames.has(`two.acme.${DOMAIN}`));
    assert.ok(watcher.connections >= 2);
    assert.ok(srv.auth.every((a) => a === 'Bearer node-token'));
  });

  it('keeps answering its zone while the control plane is unreachable, and retries with backoff', async () => {
    const srv = await watchServer(async (res) => {
      res.writeHead(503).end();
    });
    cleanups.push(async () => void srv.server.close());
    const authority = new Authority({ stateDir: null });
    authority.applySnapshot(zoneAt(7, 'seven.acme'));
    const watcher = new ZoneWatcher({ apiUrl: srv.url, token: async () => 't', sink: authority, minBackoffMs: 20, maxBackoffMs: 40 });
    watcher.start();
    await waitFor('several attempts', () => watcher.connections >= 3, { timeoutMs: 10_000, intervalMs: 10 });
    await watcher.stop();
    await authority.close();
    assert.equal(authority.serial, 7);
    assert.equal(authority.answer({ name: `seven.acme.${DOMAIN}`, type: 1, class: 1 }).rcode, 'NOERROR');
  });
});
