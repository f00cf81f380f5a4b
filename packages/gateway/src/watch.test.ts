import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, sleep, tempDir, waitFor } from '@lanes/testkit';
import type { RoutingTable } from '@lanes/spec';
import { table, vhost } from './harness.js';
import { TABLE_FILE } from './persist.js';
import { Gateway } from './proxy.js';
import { TableWatcher } from './watch.js';

/**
 * A stand-in for the stream format only: a node http server that writes NDJSON lines the
 * way the control plane's `/v1/gateway/watch` does, scripted per connection.
 */
type Script = (res: http.ServerResponse, connection: number) => Promise<void>;

async function watchServer(script: Script, port = 0): Promise<{ url: string; server: http.Server; auth: string[]; connections: () => number }> {
  const auth: string[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    auth.push(req.headers.authorization ?? '');
    if (req.url !== '/v1/gateway/watch') {
      res.writeHead(404).end();
      return;
    }
    connections++;
    void script(res, connections);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${addr.port}`, server, auth, connections: () => connections };
}

const line = (t: RoutingTable): string => `${JSON.stringify({ type: 'table', table: t })}\n`;
const tableAt = (revision: number, host: string): RoutingTable =>
  table(revision, [vhost(host, [{ endpoints: [{ instance: 'i1', zone: 'a', address: '127.0.0.1', port: 9 }] }])]);

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return;
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  await closed;
}

describe('watch client', () => {
  it('applies tables, ignores older ones within a connection, and accepts the first after a reconnect', async () => {
    const srv = await watchServer(async (res, n) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      if (n === 1) {
        res.write(line(tableAt(5, 'five.test')));
        res.write(line(tableAt(3, 'three.test'))); // older, same connection: ignored
        res.write(`${JSON.stringify({ type: 'ping', time: new Date().toISOString() })}\n`);
        res.write('this is not json\n');
        res.write(`${JSON.stringify({ type: 'table', table: { revision: 9, hosts: 'broken' } })}\n`); // invalid: rejected
        const six = line(tableAt(6, 'six.test'));
        res.write(six.slice(0, 20)); // a line split across chunks
        await sleep(30);
        res.write(six.slice(20));
        await sleep(50);
        res.end();
      } else {
        res.write(line(tableAt(2, 'two.test'))); // control plane restarted: accepted as is
        res.write(line(tableAt(1, 'one.test'))); // older within this connection: ignored
      }
    });
    cleanups.push(() => closeServer(srv.server));
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-') });
    const watcher = new TableWatcher({ apiUrl: srv.url, token: async () => 'node-token', sink: gw });
    cleanups.push(() => watcher.stop());
    watcher.start();

    await waitFor('revision 2 on the second connection', () => srv.connections() >= 2 && gw.routing.revision === 2, { timeoutMs: 5_000, intervalMs: 20 });
    await sleep(100);
    assert.equal(gw.routing.revision, 2);
    assert.equal(gw.routing.table?.hosts[0]?.host, 'two.test');
    assert.deepEqual(new Set(srv.auth), new Set(['Bearer node-token']));
    await gw.persisted();
    const saved = JSON.parse(await readFile(path.join(gw.stateDir, TABLE_FILE), 'utf8')) as RoutingTable;
    assert.equal(saved.revision, 2);
    await watcher.stop();
    await gw.close(100);
  });

  it('the first connection ends on revision 6 after ignoring 3 and the invalid table', async () => {
    const seen: number[] = [];
    const srv = await watchServer(async (res, n) => {
      res.writeHead(200);
      if (n > 1) return; // hold the second connection open, silent
      res.write(line(tableAt(5, 'five.test')));
      res.write(line(tableAt(3, 'three.test')));
      res.write(`${JSON.stringify({ type: 'table', table: { revision: 9, hosts: 'broken' } })}\n`);
      res.write(line(tableAt(6, 'six.test')));
      res.end();
    });
    cleanups.push(() => closeServer(srv.server));
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-') });
    const sink = {
      routing: gw.routing,
      applyTable(candidate: unknown): RoutingTable {
        const t = gw.applyTable(candidate);
        seen.push(t.revision);
        return t;
      },
    };
    const watcher = new TableWatcher({ apiUrl: srv.url, token: async () => 't', sink });
    cleanups.push(() => watcher.stop());
    watcher.start();
    await waitFor('two connections', () => srv.connections() >= 2, { timeoutMs: 5_000, intervalMs: 20 });
    assert.deepEqual(seen, [5, 6]);
    assert.equal(gw.routing.revision, 6);
    await watcher.stop();
    await gw.close(100);
  });

  it('keeps reconnecting with backoff while the control plane is down or refuses, never giving up', async () => {
    const port = await freePort();
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-') });
    const watcher = new TableWatcher({ apiUrl: `http://127.0.0.1:${port}`, token: async () => 't', sink: gw });
    cleanups.push(() => watcher.stop());
    watcher.start();
    await sleep(1_300);
    // 0 ms, ~250, ~750, (~1750): between 2 and 4 attempts in 1.3 s, not a tight loop.
    assert.ok(watcher.connections >= 2 && watcher.connections <= 4, `attempts: ${watcher.connections}`);

    await watcher.stop();

    // Now it is up but refuses the token for a while, then serves a table (short backoff
    // here to keep the test quick; the default schedule was checked above).
    let refusals = 0;
    const srv = await watchServer(async (res) => {
      if (refusals < 2) {
        refusals++;
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200);
      res.write(line(tableAt(1, 'up.test')));
    }, port);
    cleanups.push(() => closeServer(srv.server));
    const again = new TableWatcher({ apiUrl: `http://127.0.0.1:${port}`, token: async () => 't', sink: gw, minBackoffMs: 50, maxBackoffMs: 200 });
    cleanups.push(() => again.stop());
    again.start();
    await waitFor('a table once the control plane is back', () => gw.routing.revision === 1, { timeoutMs: 10_000 });
    assert.equal(refusals, 2);
    await again.stop();
    await gw.close(100);
  });
});
