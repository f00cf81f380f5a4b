/**
 * TCP listeners: a tcp service gets a platform TCP port on the gateway, shown by `lanes
 * status`; with a primary_check only the instance whose check answers 200 gets
 * connections, the switch follows a failover, and a client of the demoted primary is cut.
 * The app (tests/fixtures/tcp-broker) echoes lines prefixed with its instance id and serves
 * /primary on CHECK_PORT from a file the test rewrites.
 */
import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, tempDir, waitFor } from '@lanes/testkit';
import { TestPlatform, repoRoot } from '../support/platform.js';

const fixtureDir = path.join(repoRoot, 'tests', 'fixtures', 'tcp-broker');
const REF = 'mq/prod';

interface Line {
  socket: net.Socket;
  closed: boolean;
  lines: string[];
}

/** A client connection to the platform port; `closed` once the gateway ends or resets it. */
function open(port: number): Promise<Line> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const c: Line = { socket, closed: false, lines: [] };
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        c.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    for (const ev of ['end', 'close', 'error'] as const) socket.on(ev, () => (c.closed = true));
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
    socket.setTimeout(15_000, () => socket.destroy());
  });
}

/** One line on a fresh connection: the answer, or null when the connection closed without one. */
async function ask(port: number, line: string): Promise<string | null> {
  const c = await open(port);
  try {
    c.socket.write(`${line}\n`);
    return await waitFor(`an answer to ${line}`, () => (c.lines.length > 0 ? { v: c.lines[0] ?? null } : c.closed ? { v: null } : false), { timeoutMs: 15_000, intervalMs: 10 }).then((x) => x.v);
  } finally {
    c.socket.destroy();
  }
}

describe('TCP listeners', () => {
  let p: TestPlatform;
  let appDir = '';
  // Who the brokers' primary check says is primary: asked over loopback on every check.
  let primary = '';
  let authority: http.Server | null = null;
  let tcpPort = 0;

  before(async () => {
    // A one-port range of our own: other platforms may run on this machine at the same time.
    tcpPort = await freePort();
    p = await TestPlatform.start({ zones: ['a', 'b'], env: { LANES_TCP_PORTS: `${tcpPort}-${tcpPort}` } });
    const work = await tempDir('lanes-e2e-tcp-');
    appDir = path.join(work, 'app');
    authority = http.createServer((_req, res) => res.end(`${primary}\n`));
    await new Promise<void>((resolve) => authority?.listen(0, '127.0.0.1', resolve));
    const primaryUrl = `http://127.0.0.1:${(authority.address() as AddressInfo).port}/`;
    await cp(fixtureDir, appDir, { recursive: true });
    const manifest = await readFile(path.join(appDir, 'lanes.yaml'), 'utf8');
    await writeFile(path.join(appDir, 'lanes.yaml'), `${manifest.trimEnd()}\n    env: { PRIMARY_URL: ${JSON.stringify(primaryUrl)} }\n`);
    assert.equal((await p.cli(['tenant', 'create', 'mq'])).code, 0);
    assert.equal((await p.cli(['env', 'create', REF, '--lane', 'single'])).code, 0);
    const d = await p.cli(['deploy', REF, appDir], 120_000);
    assert.equal(d.code, 0, `deploy failed: ${d.stderr}\n${p.componentLogs()}`);
  });
  after(async () => {
    authority?.close();
    await p?.stop();
  });

  it('gives the tcp service a platform port and shows it in lanes status', async () => {
    await p.waitReady(REF);
    const svc = await waitFor('a TCP port for broker', async () => {
      const r = await p.api<{ services: { name: string; tcp: { address: string; port: number } | null }[] }>('GET', `/v1/tenants/mq/environments/prod`);
      return r.body.services.find((s) => s.name === 'broker' && s.tcp !== null);
    });
    assert.deepEqual(svc.tcp, { address: '127.0.0.1', port: tcpPort });
    const s = await p.cli(['status', REF]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, new RegExp(`^tcp +127\\.0\\.0\\.1:${tcpPort} → broker$`, 'm'));
  });

  it('routes connections to the instance that answers its primary check and follows a primary switch', async () => {
    const running = (await p.waitReady(REF)).instances.filter((i) => i.service === 'broker' && i.desired === 'running').map((i) => i.id).sort();
    assert.equal(running.length, 2, `broker instances: ${JSON.stringify(running)}`);
    const [first, second] = running as [string, string];

    // No instance claims to be the primary yet: the gateway closes connections at once.
    assert.equal(await ask(tcpPort, 'anyone'), null);

    primary = first;
    await waitFor(`connections reach ${first}`, async () => (await ask(tcpPort, 'ping')) === `${first}:ping`, { timeoutMs: 30_000, intervalMs: 200 });
    for (let i = 0; i < 3; i++) assert.equal(await ask(tcpPort, `again${i}`), `${first}:again${i}`, 'only the primary gets connections');
    const held = await open(tcpPort);
    held.socket.write('hold\n');
    await waitFor('the held connection answers', () => held.lines.includes(`${first}:hold`));

    // Failover: the other instance becomes the primary. A new connection reaches it within a
    // few check intervals (500 ms each), and the client of the demoted one is cut.
    const switchedAt = Date.now();
    primary = second;
    await waitFor(`connections reach ${second}`, async () => (await ask(tcpPort, 'ping')) === `${second}:ping`, { timeoutMs: 10_000, intervalMs: 50 });
    const tookMs = Date.now() - switchedAt;
    await waitFor('the client of the demoted primary is cut', () => held.closed, { timeoutMs: 10_000 });
    for (let i = 0; i < 3; i++) assert.equal(await ask(tcpPort, `after${i}`), `${second}:after${i}`, `only the new primary gets connections (switch took ${tookMs} ms)`);
  });

  it('keeps the port across a new release and frees it with the environment', async () => {
    const manifest = await readFile(path.join(appDir, 'lanes.yaml'), 'utf8');
    await writeFile(path.join(appDir, 'lanes.yaml'), manifest.replace('PRIMARY_URL:', 'RELEASE_NOTE: "2", PRIMARY_URL:'));
    const d = await p.cli(['deploy', REF, appDir], 120_000);
    assert.equal(d.code, 0, `redeploy failed: ${d.stderr}`);
    const status = await p.waitReady(REF, 90_000);
    const fresh = status.instances.filter((i) => i.service === 'broker' && i.desired === 'running').map((i) => i.id).sort();
    const r = await p.api<{ services: { name: string; tcp: { port: number } | null }[] }>('GET', `/v1/tenants/mq/environments/prod`);
    assert.equal(r.body.services.find((s) => s.name === 'broker')?.tcp?.port, tcpPort, 'the same platform port after a new release');
    primary = fresh[0] ?? '';
    await waitFor('the new release serves on the same port', async () => (await ask(tcpPort, 'v2')) === `${fresh[0]}:v2`, { timeoutMs: 30_000, intervalMs: 200 });

    assert.equal((await p.cli(['env', 'delete', REF], 60_000)).code, 0);
    await waitFor('the platform port is closed', async () => {
      try {
        (await open(tcpPort)).socket.destroy();
        return false;
      } catch {
        return true;
      }
    }, { timeoutMs: 60_000, intervalMs: 200 });
    const events = await p.api<{ items: { reason: string; message: string }[] }>('GET', '/v1/events?tenant=mq&environment=prod&limit=1000');
    assert.ok(events.body.items.some((e) => e.reason === 'TcpPortAssigned' && e.message.includes(String(tcpPort))), 'the assignment is an event');
  });
});
