/**
 * Platform TCP listeners (tcp.ts) with real sockets: fake instances run an echo server on
 * their PORT (each reply prefixed with the instance's name) and, for primary checks, an
 * HTTP check on their CHECK_PORT answering 200 or 503 as the test says.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import type { Endpoint, PrimaryCheckSpec, RoutingTable, TcpRoute } from '@lanes/spec';
import { freePort, tempDir, waitFor } from '@lanes/testkit';
import { Gateway } from './proxy.js';
import { validateTable } from './routing.js';
import { TcpRouter } from './tcp.js';

interface FakeInstance {
  readonly name: string;
  readonly endpoint: Endpoint;
  /** What its check answers. */
  checkStatus: number;
  /** Connections it has accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

const instances: FakeInstance[] = [];
const routers: TcpRouter[] = [];
const gateways: Gateway[] = [];
const clients: net.Socket[] = [];

after(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(routers.map((r) => r.close()));
  await Promise.all(gateways.map((g) => g.close(0)));
  await Promise.all(instances.map((i) => i.close()));
});

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/**
 * An instance: an echo server that answers each line with `name:line`, and on a half-close
 * from its client answers `name:bye after N bytes` before closing its own side.
 */
async function fakeInstance(name: string, checkStatus = 503): Promise<FakeInstance> {
  const sockets = new Set<net.Socket>();
  const echo = net.createServer({ allowHalfOpen: true }, (socket) => {
    self.accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let bytes = 0;
    let buf = '';
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        socket.write(`${name}:${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    socket.on('end', () => socket.end(`${name}:bye after ${bytes} bytes\n`));
  });
  const check = http.createServer((req, res) => {
    res.statusCode = req.url === '/primary' ? self.checkStatus : 404;
    res.end();
  });
  const port = await listen(echo);
  const checkPort = await listen(check);
  const self: FakeInstance = {
    name,
    endpoint: { instance: name, zone: 'a', address: '127.0.0.1', port, checkPort },
    checkStatus,
    accepted: 0,
    async close() {
      for (const s of sockets) s.destroy();
      check.closeAllConnections();
      await Promise.all([new Promise((r) => echo.close(r)), new Promise((r) => check.close(r))]);
    },
  };
  instances.push(self);
  return self;
}

function route(port: number, endpoints: readonly Endpoint[], primaryCheck: PrimaryCheckSpec | null = null, extra: Partial<TcpRoute> = {}): TcpRoute {
  return { port, tenant: 'acme', environment: 'prod', service: 'broker', endpoints, primaryCheck, ...extra };
}

function router(): TcpRouter {
  const r = new TcpRouter({ limits: { connectTimeoutMs: 1_000 } });
  routers.push(r);
  return r;
}

/** A client connection that collects lines and notices when it is closed. */
interface Client {
  readonly socket: net.Socket;
  readonly lines: string[];
  closed: boolean;
  send(line: string): void;
  /** The next line, or null when the connection closes first (lines already received come first). */
  next(): Promise<string | null>;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    clients.push(socket);
    const c: Client = {
      socket,
      lines: [],
      closed: false,
      send: (line) => socket.write(`${line}\n`),
      next: () =>
        waitFor('a line or the close', () => (c.lines.length > 0 ? { line: c.lines.shift() ?? null } : c.closed ? { line: null } : false), { timeoutMs: 20_000, intervalMs: 10 }).then((x) => x.line),
    };
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        c.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    // The gateway's side ended (a FIN, or a reset): the connection is over for this client.
    socket.on('end', () => (c.closed = true));
    socket.on('close', () => (c.closed = true));
    socket.on('error', () => (c.closed = true));
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

/** Sends one line on a fresh connection: the reply, or null when the connection was closed without one. */
async function ask(port: number, line = 'hello'): Promise<string | null> {
  const c = await connect(port);
  c.send(line);
  const answer = await c.next();
  c.socket.destroy();
  return answer;
}

describe('TCP routes without a primary check', () => {
  it('spreads connections round robin and skips an instance that refuses connections', async () => {
    const a = await fakeInstance('a');
    const b = await fakeInstance('b');
    const dead: Endpoint = { instance: 'dead', zone: 'a', address: '127.0.0.1', port: await freePort() };
    const port = await freePort();
    const r = router();
    r.apply([route(port, [a.endpoint, b.endpoint])]);
    await waitFor('listener open', () => r.ports().includes(port));
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await ask(port));
    assert.deepEqual(answers, ['a:hello', 'b:hello', 'a:hello', 'b:hello']);

    r.apply([route(port, [dead, a.endpoint])]);
    const after = [];
    for (let i = 0; i < 4; i++) after.push(await ask(port));
    assert.deepEqual(after, ['a:hello', 'a:hello', 'a:hello', 'a:hello'], 'a connect failure falls through to the next instance');
  });

  it('passes a half-close on and still delivers the instance\'s answer', async () => {
    const a = await fakeInstance('a');
    const port = await freePort();
    const r = router();
    r.apply([route(port, [a.endpoint])]);
    await waitFor('listener open', () => r.ports().includes(port));
    const c = await connect(port);
    c.send('one');
    assert.equal(await c.next(), 'a:one');
    c.socket.end(); // FIN: the client is done writing, not reading
    assert.equal(await c.next(), 'a:bye after 4 bytes');
    await waitFor('connection closed', () => c.closed);
    await waitFor('connection forgotten', () => r.connectionsOf(port) === 0);
  });

  it('refuses clients outside the allow-list and inside the deny-list, and serves the others', async () => {
    const a = await fakeInstance('a');
    const port = await freePort();
    const r = router();
    r.apply([route(port, [a.endpoint], null, { allow: ['10.0.0.0/8'] })]);
    await waitFor('listener open', () => r.ports().includes(port));
    assert.equal(await ask(port), null, 'not in the allow-list');
    r.apply([route(port, [a.endpoint], null, { deny: ['127.0.0.1/32'] })]);
    assert.equal(await ask(port), null, 'in the deny-list');
    r.apply([route(port, [a.endpoint], null, { allow: ['127.0.0.0/8'], deny: ['10.0.0.0/8'] })]);
    assert.equal(await ask(port), 'a:hello');
    assert.equal(a.accepted, 1, 'refused clients never reached the instance');
  });

  it('closes a listener and its connections when its port leaves the table', async () => {
    const a = await fakeInstance('a');
    const port = await freePort();
    const r = router();
    r.apply([route(port, [a.endpoint])]);
    await waitFor('listener open', () => r.ports().includes(port));
    const c = await connect(port);
    c.send('x');
    assert.equal(await c.next(), 'a:x');
    r.apply([]);
    await waitFor('client cut', () => c.closed);
    await waitFor('port closed', async () => {
      try {
        await connect(port);
        return false;
      } catch {
        return true;
      }
    });
  });

  it('answers at once with a close when the service has no instance', async () => {
    const port = await freePort();
    const r = router();
    r.apply([route(port, [])]);
    await waitFor('listener open', () => r.ports().includes(port));
    assert.equal(await ask(port), null);
  });

  it('opens a port that was in use once it is free, and holds no more connections than its limit', async () => {
    const a = await fakeInstance('a');
    const blocker = net.createServer();
    const port = await listen(blocker);
    const r = new TcpRouter({ limits: { relistenMs: 100, maxConnections: 1 } });
    routers.push(r);
    r.apply([route(port, [a.endpoint])]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(r.ports(), [], 'the port is taken by someone else');
    await new Promise((resolve) => blocker.close(resolve));
    await waitFor('listener open once the port is free', () => r.ports().includes(port));
    const first = await connect(port);
    first.send('one');
    assert.equal(await first.next(), 'a:one');
    assert.equal(await ask(port, 'two'), null, 'a second connection is over the limit of 1');
    first.send('still');
    assert.equal(await first.next(), 'a:still', 'the first one is unaffected');
  });

  it('closes a connection idle for longer than the idle timeout', async () => {
    const a = await fakeInstance('a');
    const port = await freePort();
    const r = new TcpRouter({ limits: { idleTimeoutMs: 300 } });
    routers.push(r);
    r.apply([route(port, [a.endpoint])]);
    await waitFor('listener open', () => r.ports().includes(port));
    const c = await connect(port);
    c.send('x');
    assert.equal(await c.next(), 'a:x');
    await waitFor('idle connection closed', () => c.closed, { timeoutMs: 20_000 });
  });
});

describe('TCP routes with a primary check', () => {
  const CHECK: PrimaryCheckSpec = { path: '/primary', intervalMs: 200, timeoutMs: 150 };

  it('sends connections only to the instance whose check answers 200, follows a switch and cuts clients of the demoted one', async () => {
    const a = await fakeInstance('a', 200);
    const b = await fakeInstance('b', 503);
    const port = await freePort();
    const gw = new Gateway({ stateDir: await tempDir('lanes-gw-tcp-') });
    gateways.push(gw);
    await gw.start();
    const table: RoutingTable = { revision: 1, generatedAt: new Date().toISOString(), hosts: [], tcp: [route(port, [a.endpoint, b.endpoint], CHECK)] };
    gw.applyTable(table);
    await waitFor('a is the primary', () => gw.tcp.primaryOf(port) === 'a');
    for (let i = 0; i < 3; i++) assert.equal(await ask(port), 'a:hello');
    const held = await connect(port);
    held.send('before');
    assert.equal(await held.next(), 'a:before');

    // Failover: a is demoted, b promoted.
    a.checkStatus = 503;
    b.checkStatus = 200;
    await waitFor('b is the primary', () => gw.tcp.primaryOf(port) === 'b', { timeoutMs: 20_000, intervalMs: 20 });
    await waitFor('the client of the demoted primary is cut', () => held.closed, { timeoutMs: 20_000 });
    for (let i = 0; i < 3; i++) assert.equal(await ask(port), 'b:hello');

    // Nobody primary: connections are closed at once, nothing reaches an instance.
    b.checkStatus = 503;
    await waitFor('no primary', () => gw.tcp.primaryOf(port) === null, { timeoutMs: 20_000, intervalMs: 20 });
    const acceptedBefore = a.accepted + b.accepted;
    assert.equal(await ask(port), null);
    assert.equal(a.accepted + b.accepted, acceptedBefore);

    // Back: a is primary again.
    a.checkStatus = 200;
    await waitFor('a is the primary again', async () => (await ask(port)) === 'a:hello', { timeoutMs: 20_000, intervalMs: 50 });
  });

  it('keeps the current primary while two instances claim it, and treats a missing check port as not primary', async () => {
    const a = await fakeInstance('a', 200);
    const b = await fakeInstance('b', 503);
    const port = await freePort();
    const r = router();
    const noCheck: Endpoint = { ...b.endpoint, checkPort: null };
    r.apply([route(port, [a.endpoint, noCheck], CHECK)]);
    await waitFor('a is the primary', () => r.primaryOf(port) === 'a');
    b.checkStatus = 200; // would claim it, but the table gives no check port for it
    r.apply([route(port, [a.endpoint, b.endpoint], CHECK)]);
    // Several rounds later a is still the primary: b answering 200 too does not take it over.
    const rounds = Date.now();
    await waitFor('a few check rounds', () => Date.now() - rounds > 5 * CHECK.intervalMs);
    assert.equal(r.primaryOf(port), 'a');
    a.checkStatus = 503;
    await waitFor('b takes over once a says no', () => r.primaryOf(port) === 'b', { timeoutMs: 20_000, intervalMs: 20 });
  });

  it('drops the primary at once when it leaves the table', async () => {
    const a = await fakeInstance('a', 200);
    const b = await fakeInstance('b', 503);
    const port = await freePort();
    const r = router();
    r.apply([route(port, [a.endpoint, b.endpoint], { ...CHECK, intervalMs: 60_000, timeoutMs: 1_000 })]);
    await waitFor('a is the primary', () => r.primaryOf(port) === 'a');
    const held = await connect(port);
    held.send('x');
    assert.equal(await held.next(), 'a:x');
    r.apply([route(port, [b.endpoint], { ...CHECK, intervalMs: 60_000, timeoutMs: 1_000 })]);
    assert.equal(r.primaryOf(port), null, 'no waiting for the next check round');
    await waitFor('its client is cut', () => held.closed);
  });
});

describe('the table\'s tcp list', () => {
  const base = { revision: 1, generatedAt: new Date().toISOString(), hosts: [] };
  const ep = { instance: 'mq-1', zone: 'a', address: '127.0.0.1', port: 4000, checkPort: 4001 };
  const good = { port: 30001, tenant: 'acme', environment: 'prod', service: 'mq', endpoints: [ep], primaryCheck: { path: '/primary', intervalMs: 1000, timeoutMs: 500 }, allow: ['10.0.0.0/8'], deny: [] };

  it('is optional (an older control plane sends none) and kept when valid', () => {
    assert.deepEqual(validateTable(base).tcp, []);
    const t = validateTable({ ...base, tcp: [good] });
    assert.deepEqual(t.tcp, [good]);
  });

  it('is refused with the field named when malformed', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, port: 0 }, /table\.tcp\[0\]\.port: 0 is not a port/],
      [{ ...good, service: 'Bad' }, /table\.tcp\[0\]\.service: "Bad" is not a valid name/],
      [{ ...good, endpoints: [{ ...ep, checkPort: 'x' }] }, /table\.tcp\[0\]\.endpoints\[0\]\.checkPort: "x" is not a port/],
      [{ ...good, endpoints: [{ ...ep, address: 'a b' }] }, /table\.tcp\[0\]\.endpoints\[0\]\.address/],
      [{ ...good, primaryCheck: { path: 'primary', intervalMs: 1000, timeoutMs: 500 } }, /table\.tcp\[0\]\.primaryCheck\.path/],
      [{ ...good, primaryCheck: { path: '/p', intervalMs: 1000, timeoutMs: 5000 } }, /table\.tcp\[0\]\.primaryCheck\.timeoutMs: 5000 is not a timeout/],
      [{ ...good, allow: ['10.0.0.0/33'] }, /table\.tcp\[0\]\.allow\[0\]: "10\.0\.0\.0\/33" is not a CIDR/],
      [{ ...good, deny: ['example.com/8'] }, /table\.tcp\[0\]\.deny\[0\]/],
    ];
    for (const [r, re] of cases) assert.throws(() => validateTable({ ...base, tcp: [r] }), re, JSON.stringify(r));
    assert.throws(() => validateTable({ ...base, tcp: [good, good] }), /table\.tcp\[1\]\.port: 30001 appears twice in the table/);
    assert.throws(() => validateTable({ ...base, tcp: {} }), /table\.tcp: \{\} is not an array/);
  });
});
