/**
 * The isolation matrix on real namespaces: tiny TCP listeners run inside instance
 * namespaces (`ip netns exec`), clients connect from other namespaces and from the host.
 * Objects carry the test prefix `lanes-t` and addresses come from 10.87.0.0/16 (platform)
 * and 10.99.0.0/30 (a fake "outside" namespace), so a running Lanes is not touched.
 * Skipped, visibly, without root, `ip` or `nft`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { killTree, waitFor } from '@lanes/testkit';
import { runCommand } from './commands.js';
import { detectIsolation } from './detect.js';
import { NetworkManager } from './manager.js';
import { type EnvironmentPlan, instanceAddress, instanceNames, planEnvironment } from './plan.js';
import type { SecurityGroupRule } from './rules.js';

const PREFIX = 'lanes-t';
const CIDR = '10.87.0.0/16';
const PORT = 8080;
const OUTSIDE_NS = 'lanes-tout';
const OUTSIDE_HOST = '10.99.0.1';
const OUTSIDE_PEER = '10.99.0.2';
/** An api address no instance holds right now (e.g. one just removed): still in db's allowed set. */
const STALE = '10.87.1.140';

const isolation = await detectIsolation();
const skip = isolation.mode === 'none' ? `network isolation unavailable: ${isolation.reason}` : false;
if (skip) console.log(`# SKIP network.test: ${skip}`);

const LISTENER = `const net=require('net');const s=net.createServer(c=>{c.on('error',()=>{});c.end(c.remoteAddress+'\\n')});s.maxConnections=64;s.listen(+process.argv[1],process.argv[2]||'0.0.0.0',()=>console.log('ready'))`;
const CLIENT = `const net=require('net');const [h,p,t,la]=process.argv.slice(1);const s=net.connect({host:h,port:+p,...(la?{localAddress:la}:{})});let d='';s.setTimeout(+t,()=>{console.log('timeout');process.exit(0)});s.on('data',x=>d+=x);s.on('end',()=>{console.log('connected '+d.trim());process.exit(0)});s.on('error',e=>{console.log(e.code||e.message);process.exit(0)})`;

const children: ChildProcess[] = [];

/** Starts a TCP listener inside `ns` that answers each connection with the peer's address. */
async function listen(ns: string, port: number, bind?: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER, String(port), ...(bind ? [bind] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`listener in ${ns} did not start within 5 s`)), 5000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`listener in ${ns} exited with ${code}`)));
  });
}

/** Connects from inside `ns`: "connected <source address the server saw>", or the error code, or "timeout". */
async function connectFrom(ns: string, host: string, port: number, opts: { timeoutMs?: number; localAddress?: string } = {}): Promise<string> {
  const args = ['ip', 'netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), String(opts.timeoutMs ?? 1500), ...(opts.localAddress ? [opts.localAddress] : [])];
  return (await runCommand(args, { timeoutMs: 10_000 })).trim();
}

/** Connects from the host namespace (as the gateway or a supervisor probe would). */
function connectFromHost(host: string, port: number, opts: { timeoutMs?: number; localAddress?: string } = {}): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let data = '';
    s.setTimeout(opts.timeoutMs ?? 1500, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('end', () => resolve(`connected ${data.trim()}`));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('network isolation on real namespaces', { skip }, () => {
  const manager = new NetworkManager({ prefix: PREFIX });
  let A: EnvironmentPlan;
  let B: EnvironmentPlan;
  const ns: Record<string, string> = {};
  const addr: Record<string, string> = {};
  let rulesA: SecurityGroupRule[] = [];
  let hostServer: net.Server | null = null;
  let hostPort = 0;

  before(async () => {
    await manager.cleanupAll();
    A = planEnvironment(CIDR, 1, ['a', 'b', 'c'], { prefix: PREFIX });
    B = planEnvironment(CIDR, 2, ['a', 'b', 'c'], { prefix: PREFIX });
    await manager.ensureEnvironment(A);
    await manager.ensureEnvironment(B);
    const instances: [EnvironmentPlan, string, string, string, number][] = [
      [A, 'web-a', 'web', 'a', 0],
      [A, 'web-b', 'web', 'b', 0],
      [A, 'api-a', 'api', 'a', 1],
      [A, 'db-b', 'db', 'b', 1],
      [B, 'web-x', 'web', 'a', 0],
    ];
    for (const [plan, id, service, zone, slot] of instances) {
      const address = instanceAddress(plan, zone, slot);
      const r = await manager.addInstance(plan, { id, zone, address, service });
      ns[id] = r.netns;
      addr[id] = r.address;
    }
    const rule = (service: string, ids: string[], allowFrom: string[] | null, http: boolean): SecurityGroupRule => ({
      service, addresses: ids.map((i) => addr[i] ?? ''), ports: [PORT], allowFrom, http,
    });
    rulesA = [rule('web', ['web-a', 'web-b'], null, true), { ...rule('api', ['api-a'], ['web'], false), addresses: [addr['api-a'] ?? '', STALE] }, rule('db', ['db-b'], ['api'], false)];
    await manager.setSecurityGroups(A, rulesA);
    await manager.setSecurityGroups(B, [rule('web', ['web-x'], null, true)]);
    for (const id of Object.keys(ns)) await listen(ns[id] ?? '', PORT);
    // A service of the host (think: control plane API) listening on every host address.
    hostServer = net.createServer((c) => c.end('host\n'));
    await new Promise<void>((r) => hostServer?.listen(0, '0.0.0.0', r));
    const a = hostServer.address();
    hostPort = typeof a === 'object' && a ? a.port : 0;
    // The "outside world": a namespace behind its own veth, routed back through the host.
    await runCommand(['ip', 'netns', 'add', OUTSIDE_NS]);
    await runCommand(['ip', 'link', 'add', OUTSIDE_NS, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUTSIDE_NS]);
    await runCommand(['ip', 'addr', 'add', `${OUTSIDE_HOST}/30`, 'dev', OUTSIDE_NS]);
    await runCommand(['ip', 'link', 'set', 'dev', OUTSIDE_NS, 'up']);
    await runCommand(['ip', '-n', OUTSIDE_NS, 'addr', 'add', `${OUTSIDE_PEER}/30`, 'dev', 'eth0']);
    await runCommand(['ip', '-n', OUTSIDE_NS, 'link', 'set', 'dev', 'eth0', 'up']);
    await runCommand(['ip', '-n', OUTSIDE_NS, 'link', 'set', 'dev', 'lo', 'up']);
    await runCommand(['ip', '-n', OUTSIDE_NS, 'route', 'add', 'default', 'via', OUTSIDE_HOST]);
    await listen(OUTSIDE_NS, PORT);
    await listen(OUTSIDE_NS, PORT + 1);
  });

  after(async () => {
    for (const c of children) if (c.pid !== undefined) killTree(c.pid);
    await new Promise<void>((r) => (hostServer ? hostServer.close(() => r()) : r()));
    await manager.cleanupAll();
  });

  test('instances of one environment reach each other across zones', async () => {
    assert.equal(await connectFrom(ns['web-a'] ?? '', addr['web-b'] ?? '', PORT), `connected ${addr['web-a']}`);
  });

  test('web reaches api, which allows web', async () => {
    assert.equal(await connectFrom(ns['web-a'] ?? '', addr['api-a'] ?? '', PORT), `connected ${addr['web-a']}`);
  });

  test('web is refused by db, which allows only api; api reaches db', async () => {
    assert.equal(await connectFrom(ns['web-a'] ?? '', addr['db-b'] ?? '', PORT), 'ECONNREFUSED');
    assert.equal(await connectFrom(ns['api-a'] ?? '', addr['db-b'] ?? '', PORT), `connected ${addr['api-a']}`);
  });

  test('setSecurityGroups with a zone rewrites only the tables of that zone\'s instances', async () => {
    // db-b lives in zone b: opening db to everyone for zone a only leaves its table as it was.
    const open = rulesA.map((r) => (r.service === 'db' ? { ...r, allowFrom: null } : r));
    try {
      await manager.setSecurityGroups(A, open, { zone: 'a' });
      assert.equal(await connectFrom(ns['web-a'] ?? '', addr['db-b'] ?? '', PORT), 'ECONNREFUSED');
      await manager.setSecurityGroups(A, open, { zone: 'b' });
      assert.equal(await connectFrom(ns['web-a'] ?? '', addr['db-b'] ?? '', PORT), `connected ${addr['web-a']}`);
    } finally {
      await manager.setSecurityGroups(A, rulesA);
    }
    assert.equal(await connectFrom(ns['web-a'] ?? '', addr['db-b'] ?? '', PORT), 'ECONNREFUSED');
  });

  test('a spoofed source address does not pass the security group', async () => {
    // web-a (root in its namespace) takes an address db allows and no instance holds.
    await runCommand(['ip', '-n', ns['web-a'] ?? '', 'addr', 'add', `${STALE}/32`, 'dev', 'eth0']);
    try {
      const r = await connectFrom(ns['web-a'] ?? '', addr['db-b'] ?? '', PORT, { localAddress: STALE, timeoutMs: 1000 });
      assert.equal(r, 'timeout', 'the bridge drops frames whose source is not the port\'s own address');
    } finally {
      await runCommand(['ip', '-n', ns['web-a'] ?? '', 'addr', 'del', `${STALE}/32`, 'dev', 'eth0']);
    }
  });

  test('another environment is unreachable, both ways', async () => {
    const r1 = await connectFrom(ns['web-a'] ?? '', addr['web-x'] ?? '', PORT);
    assert.ok(!r1.startsWith('connected'), `A reached B: ${r1}`);
    const r2 = await connectFrom(ns['web-x'] ?? '', addr['web-a'] ?? '', PORT);
    assert.ok(!r2.startsWith('connected'), `B reached A: ${r2}`);
  });

  test('instances cannot reach the host: own link, another tenant\'s link, other host addresses, loopback', async () => {
    for (const target of [A.gatewayAddress, A.supervisorAddress, B.gatewayAddress, OUTSIDE_HOST, '127.0.0.1']) {
      const r = await connectFrom(ns['web-a'] ?? '', target, hostPort);
      assert.equal(r, 'ECONNREFUSED', `web-a → ${target}:${hostPort}`);
    }
  });

  test('the gateway (host) reaches http services only; supervisor probes reach every service', async () => {
    assert.equal(await connectFromHost(addr['web-a'] ?? '', PORT), `connected ${A.gatewayAddress}`);
    assert.equal(await connectFromHost(addr['db-b'] ?? '', PORT), 'ECONNREFUSED');
    assert.equal(await connectFromHost(addr['db-b'] ?? '', PORT, { localAddress: A.supervisorAddress }), `connected ${A.supervisorAddress}`);
  });

  test('outbound connections leave with the environment\'s egress address', async () => {
    assert.equal(await connectFrom(ns['web-a'] ?? '', OUTSIDE_PEER, PORT), `connected ${A.egressAddress}`);
    assert.equal(await connectFrom(ns['web-x'] ?? '', OUTSIDE_PEER, PORT), `connected ${B.egressAddress}`);
  });

  test('with an egress allow-list only listed destinations are reachable', async () => {
    await manager.setEgress(A, [{ cidr: '10.99.0.0/30', port: PORT }]);
    try {
      assert.equal(await connectFrom(ns['web-a'] ?? '', OUTSIDE_PEER, PORT), `connected ${A.egressAddress}`);
      assert.equal(await connectFrom(ns['web-a'] ?? '', OUTSIDE_PEER, PORT + 1), 'ECONNREFUSED');
      // Environment B keeps its open egress.
      assert.equal(await connectFrom(ns['web-x'] ?? '', OUTSIDE_PEER, PORT + 1), `connected ${B.egressAddress}`);
    } finally {
      await manager.setEgress(A, null);
    }
    assert.equal(await connectFrom(ns['web-a'] ?? '', OUTSIDE_PEER, PORT + 1), `connected ${A.egressAddress}`);
  });

  test('zoneDown cuts the zone\'s instances, zoneUp restores them', async () => {
    await manager.zoneDown('b');
    try {
      assert.deepEqual(await manager.downZones(), ['b']);
      const r = await connectFrom(ns['web-a'] ?? '', addr['web-b'] ?? '', PORT, { timeoutMs: 800 });
      assert.ok(!r.startsWith('connected'), `web-a reached web-b in a down zone: ${r}`);
      const g = await connectFromHost(addr['web-b'] ?? '', PORT, { timeoutMs: 800 });
      assert.ok(!g.startsWith('connected'), `gateway reached web-b in a down zone: ${g}`);
      assert.equal(await connectFrom(ns['web-a'] ?? '', addr['api-a'] ?? '', PORT), `connected ${addr['web-a']}`, 'zone a is unaffected');
    } finally {
      await manager.zoneUp('b');
    }
    await waitFor('web-b reachable after zoneUp', async () => (await connectFrom(ns['web-a'] ?? '', addr['web-b'] ?? '', PORT, { timeoutMs: 800 })).startsWith('connected') || undefined, { timeoutMs: 5000 });
  });

  test('operations are idempotent: repeating them changes nothing and keeps traffic flowing', async () => {
    const before = await manager.listObjects();
    await manager.ensureEnvironment(A);
    await manager.addInstance(A, { id: 'web-a', zone: 'a', address: addr['web-a'] ?? '', service: 'web' });
    assert.deepEqual(await manager.listObjects(), before);
    assert.equal(await connectFrom(ns['api-a'] ?? '', addr['web-a'] ?? '', PORT), `connected ${addr['api-a']}`);
  });

  test('removeEnvironment and cleanupAll leave no lanes- object in the kernel', async () => {
    await manager.removeInstance(A, 'api-a');
    await manager.removeInstance(A, 'api-a');
    assert.ok(!(await manager.listObjects()).namespaces.includes(ns['api-a'] ?? ''));
    await manager.removeEnvironment(A);
    const left = await manager.listObjects();
    assert.ok(left.namespaces.every((n) => !n.startsWith(`${PREFIX}1-`)), `namespaces of A left: ${left.namespaces.join(' ')}`);
    assert.ok(!left.links.includes(A.bridge));
    const host = await runCommand(['nft', 'list', 'table', 'inet', A.hostTable]);
    assert.ok(!/_1 |"lanes-tbr1"/.test(host), `A's chains are still in the host table: ${host}`);
    const ports = await runCommand(['nft', 'list', 'map', 'bridge', A.hostTable, 'ports']);
    assert.ok(!ports.includes(instanceNames(A, 'web-a', addr['web-a'] ?? '').veth), `A's ports are still registered: ${ports}`);
    for (const c of children) if (c.pid !== undefined) killTree(c.pid);
    const removed = await manager.cleanupAll();
    assert.ok(removed.namespaces.includes(OUTSIDE_NS), 'cleanupAll found the outside namespace as a leftover');
    const netns = await runCommand(['ip', 'netns', 'list']);
    const links = await runCommand(['ip', '-o', 'link']);
    const tables = await runCommand(['nft', 'list', 'tables']);
    for (const [what, text] of [['ip netns list', netns], ['ip -o link', links], ['nft list tables', tables]] as const) {
      assert.ok(!text.includes(PREFIX), `${what} still shows ${PREFIX} objects: ${text.split('\n').filter((l) => l.includes(PREFIX)).join(' | ')}`);
    }
  });
});
