/**
 * TCP services in the control plane, in process over a real embedded store (no supervisors,
 * no gateway): platform ports assigned, kept and freed; desired instances asking for a
 * check port; security groups opening PORT and CHECK_PORT to the gateway; and the routing
 * table's `tcp` routes built from what supervisors report.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packDirectory } from '@lanes/archive';
import type { AgentWatchMessage, DesiredInstance, ObservedInstance } from '@lanes/spec';
import { tempDir } from '@lanes/testkit';
import pino from 'pino';
import { parseConfig } from './config.js';
import { startControlPlane, type ControlPlane } from './server.js';

const BROKER = ['name: broker', 'services:', '  broker:', '    command: node broker.js', '    instances: 2', '    tcp: true', '    primary_check: { path: /primary, interval: 500ms, timeout: 300ms }', ''].join('\n');
const PLAIN = ['name: broker', 'services:', '  web:', '    command: node broker.js', '    http: true', ''].join('\n');

describe('tcp services in the control plane', () => {
  let cp: ControlPlane;
  let home: string;

  async function appPackage(manifest: string): Promise<Buffer> {
    const dir = path.join(await tempDir('lanes-cp-tcp-app-'), 'app');
    await mkdir(dir);
    await writeFile(path.join(dir, 'lanes.yaml'), manifest);
    await writeFile(path.join(dir, 'broker.js'), 'setInterval(() => {}, 1000);\n');
    return packDirectory(dir);
  }

  async function environment(name: string, manifest = BROKER): Promise<void> {
    const p = cp.platform;
    await p.createEnvironment('mq', name, 'single');
    await p.deploy('mq', name, await appPackage(manifest));
    await p.tick();
  }

  before(async () => {
    home = await tempDir('lanes-cp-tcp-');
    const config = parseConfig(['--home', home, '--api-port', '0', '--isolation', 'netns', '--network-cidr', '10.78.0.0/16', '--zones', 'a,b', '--tcp-ports', '31500-31501'], {});
    cp = await startControlPlane(config, pino({ level: 'silent' }));
    await cp.platform.createTenant('mq');
  });
  after(async () => {
    await cp?.close();
    await rm(home, { recursive: true, force: true });
  });

  it('asks supervisors for a check port and opens PORT and CHECK_PORT of the service to the gateway', async () => {
    await environment('prod');
    const desired: DesiredInstance[] = ['a', 'b'].flatMap((z) => cp.platform.desiredHub.latest(z) ?? []).filter((d) => d.environment === 'prod');
    assert.equal(desired.length, 2);
    assert.ok(desired.every((d) => d.checkPort === true && d.listens && d.port === 8080), JSON.stringify(desired));
    const line = cp.platform.encodeDesired(desired);
    const msg = JSON.parse(line) as AgentWatchMessage;
    assert.ok(msg.type === 'desired');
    const group = msg.networks.find((n) => n.environment === 'prod')?.groups.find((g) => g.service === 'broker');
    assert.deepEqual(group?.ports, [8080, 8081], 'the check port is the one next to PORT, as the supervisor sets it');
    assert.equal(group?.http, true, "the gateway's link may connect to a tcp service");
  });

  it('assigns a platform port per tcp service, shows it, and routes to the reported instances with their check ports', async () => {
    const p = cp.platform;
    const env = await p.environment('mq', 'prod');
    const services = await p.services(env);
    assert.deepEqual(services.find((s) => s.name === 'broker')?.tcp, { address: '127.0.0.1', port: 31500 });

    const rows = (await cp.store.listInstances({ environmentId: env.id })).filter((r) => r.desired === 'running');
    for (const r of rows) {
      const obs: ObservedInstance = {
        id: r.id,
        state: 'running',
        pid: 1000,
        address: r.address ?? '127.0.0.1',
        port: 8080,
        checkPort: 8081,
        healthy: true,
        restarts: 0,
        lastExitCode: null,
        lastExitSignal: null,
        message: 'healthy',
        startedAt: new Date().toISOString(),
      };
      await p.report({ zone: r.zone, agentUrl: 'http://127.0.0.1:1', pid: 1, address: '127.0.0.1', instances: [obs] });
    }
    await p.tick();
    const route = p.table.tcp?.find((t) => t.environment === 'prod');
    assert.ok(route, JSON.stringify(p.table.tcp));
    assert.equal(route.port, 31500);
    assert.equal(route.service, 'broker');
    assert.deepEqual(route.primaryCheck, { path: '/primary', intervalMs: 500, timeoutMs: 300 });
    assert.deepEqual(
      route.endpoints.map((e) => [e.instance, e.port, e.checkPort]).sort(),
      rows.map((r) => [r.id, 8080, 8081]).sort(),
      'the observed check port is kept from report to table',
    );
  });

  it('gives the next environment the next port, says so when the range is full, and frees a port with its service', async () => {
    const p = cp.platform;
    await environment('test');
    const test = await p.environment('mq', 'test');
    assert.equal((await p.services(test)).find((s) => s.name === 'broker')?.tcp?.port, 31501);
    await environment('dev');
    const dev = await p.environment('mq', 'dev');
    assert.equal((await p.services(dev)).find((s) => s.name === 'broker')?.tcp, null);
    const events = await cp.store.listEvents({ tenant: 'mq', environment: 'dev' });
    assert.ok(events.some((e) => e.reason === 'TcpPortUnavailable' && /all 2 platform TCP ports \(31500-31501\) are in use/.test(e.message)), JSON.stringify(events.map((e) => e.message)));

    // A release without the tcp service frees its port, and the waiting environment gets it.
    await p.deploy('mq', 'test', await appPackage(PLAIN));
    await p.tick();
    await p.tick();
    assert.deepEqual((await cp.store.listTcpListeners(test.id)).map((l) => l.port), []);
    assert.equal((await p.services(dev)).find((s) => s.name === 'broker')?.tcp?.port, 31501);
    const testEvents = await cp.store.listEvents({ tenant: 'mq', environment: 'test' });
    assert.ok(testEvents.some((e) => e.reason === 'TcpPortReleased' && /31501/.test(e.message)));
  });
});
