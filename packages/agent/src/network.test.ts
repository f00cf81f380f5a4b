/**
 * The supervisor running instances inside environment networks, on real namespaces: two
 * environments, web and db (db admits only api), every instance in its own namespace,
 * unprivileged, probed from the supervisor link. Kernel objects carry the test prefix
 * `lanes-y` and addresses come from 10.89.0.0/16, so neither a running Lanes (`lanes-`)
 * nor the network package's own tests (`lanes-t`, whose cleanup would match `lanes-t…`)
 * are touched. Skipped, visibly, without root, `ip` or `nft`.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DesiredInstance, EnvironmentNetwork, ServiceGroup } from '@lanes/spec';
import { NetworkManager, detectIsolation, instanceAddress, instanceNames, planEnvironment, runCommand } from '@lanes/network';
import type { EnvironmentPlan } from '@lanes/network';
import { tempDir, waitFor } from '@lanes/testkit';
import { accessProblem } from './network.js';
import type { Supervisor } from './supervisor.js';
import { cleanupApps, desired, find, makeSupervisor, writeTestApps } from './test-helpers.js';
import type { TestApps } from './test-helpers.js';

const PREFIX = 'lanes-y';
const CIDR = '10.89.0.0/16';
const ZONES = ['a', 'b'];
const PORT = 8080;

const isolation = await detectIsolation();
const skip = isolation.mode === 'none' ? `network isolation unavailable: ${isolation.reason}` : false;
if (skip) console.log(`# SKIP agent network.test: ${skip}`);

const CLIENT = `const net=require('net');const [h,p,t]=process.argv.slice(1);const s=net.connect({host:h,port:+p});s.setTimeout(+t,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code||e.message);process.exit(0)})`;

/** Connects from inside `netns`: "connected", an error code, or "timeout". */
async function connectFrom(netns: string, host: string, port: number): Promise<string> {
  return (await runCommand(['ip', 'netns', 'exec', netns, process.execPath, '-e', CLIENT, host, String(port), '1500'], { timeoutMs: 10_000 })).trim();
}

/** GET from the host, bound to `localAddress` (the supervisor link the instances admit). */
function getJson(url: string, localAddress: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { localAddress, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        const parsed: unknown = JSON.parse(body);
        if (typeof parsed === 'object' && parsed !== null) resolve(Object.fromEntries(Object.entries(parsed)));
        else reject(new Error(`not an object: ${body}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:')) ?? '';
  return Number(line.split(/\s+/)[1]);
}

test('a package directory an unprivileged instance cannot enter is named with its mode', async () => {
  const OTHER = 54_321; // neither the owner of the temp dir nor in its group
  const root = await tempDir('lanes-agent-access-');
  try {
    const pkg = path.join(root, 'pkg');
    mkdirSync(pkg, { mode: 0o755 });
    chmodSync(root, 0o700);
    assert.match(accessProblem(pkg, OTHER, OTHER) ?? '', new RegExp(`^${root} is mode 0700 .*uid ${OTHER} needs search permission`));
    chmodSync(root, 0o755);
    chmodSync(pkg, 0o711);
    assert.match(accessProblem(pkg, OTHER, OTHER) ?? '', /is mode 0711 .*needs read and search permission/);
    chmodSync(pkg, 0o755);
    assert.equal(accessProblem(pkg, OTHER, OTHER), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

describe('instances in environment networks', { skip }, () => {
  const manager = new NetworkManager({ prefix: PREFIX });
  const A: EnvironmentPlan = planEnvironment(CIDR, 1, ZONES, { prefix: PREFIX });
  const B: EnvironmentPlan = planEnvironment(CIDR, 2, ZONES, { prefix: PREFIX });
  const addr = { webA: instanceAddress(A, 'a', 0), dbA: instanceAddress(A, 'a', 1), webB: instanceAddress(B, 'a', 0) };
  const netns = { webA: instanceNames(A, 'web-a1', addr.webA).netns, dbA: instanceNames(A, 'db-a1', addr.dbA).netns, webB: instanceNames(B, 'web-b1', addr.webB).netns };
  let apps: TestApps;
  let stateDir: string;
  let sup: Supervisor;

  const group = (service: string, addresses: string[], allowFrom: string[] | null, http: boolean): ServiceGroup => ({ service, addresses, ports: [PORT], allowFrom, http });
  const envNet = (plan: EnvironmentPlan, environment: string, groups: ServiceGroup[]): EnvironmentNetwork => ({
    envIndex: plan.index, cidr: CIDR, zones: ZONES, tenant: 'acme', environment, egress: null, groups,
  });
  const networks = [
    envNet(A, 'prod', [group('web', [addr.webA], null, true), group('api', [], ['web'], false), group('db', [addr.dbA], ['api'], false)]),
    envNet(B, 'acc', [group('web', [addr.webB], null, true)]),
  ];
  const inst = (id: string, plan: EnvironmentPlan, environment: string, service: string, address: string): DesiredInstance =>
    desired(id, 'server.mjs', { environment, service, port: PORT, network: { envIndex: plan.index, cidr: CIDR, zones: ZONES, address } });
  const instances = [inst('web-a1', A, 'prod', 'web', addr.webA), inst('db-a1', A, 'prod', 'db', addr.dbA), inst('web-b1', B, 'acc', 'web', addr.webB)];

  const allHealthy = (s: Supervisor, ids: string[]) => () => {
    const o = s.observed().filter((i) => ids.includes(i.id));
    return o.length === ids.length && o.every((i) => i.healthy && i.state === 'running') ? o : false;
  };

  before(async () => {
    await manager.cleanupAll();
    apps = await writeTestApps();
    // Instances run as nobody: their package directory (a 0700 temp dir here) must be readable.
    chmodSync(apps.root, 0o755);
    chmodSync(apps.dir, 0o755);
    stateDir = path.join(apps.root, 'state');
    sup = makeSupervisor(apps, stateDir, { networkPrefix: PREFIX });
    await sup.start();
  });

  after(async () => {
    await sup.shutdown({ stopInstances: false });
    await manager.cleanupAll(); // kills whatever is still inside the test's namespaces
    await cleanupApps(apps);
  });

  test('each instance runs unprivileged in its own namespace, on its own address, and becomes healthy via the supervisor link', async () => {
    sup.setDesired(instances, networks);
    const observed = await waitFor('three healthy instances', allHealthy(sup, ['web-a1', 'db-a1', 'web-b1']), { timeoutMs: 20_000 });
    const hostNet = readlinkSync('/proc/self/ns/net');
    const nets = new Set<string>();
    for (const o of observed) {
      assert.ok(o.pid !== null);
      const ns = readlinkSync(`/proc/${o.pid}/ns/net`);
      assert.notEqual(ns, hostNet, `${o.id} runs in the host's network namespace`);
      nets.add(ns);
      assert.equal(uidOf(o.pid), 65534, `${o.id} runs as uid ${uidOf(o.pid)}`);
      assert.equal(o.port, PORT);
    }
    assert.equal(nets.size, 3, 'every instance has a namespace of its own');
    assert.equal(find(sup, 'web-a1')?.address, addr.webA);
    assert.equal(find(sup, 'db-a1')?.address, addr.dbA);
    const env = await getJson(`http://${addr.dbA}:${PORT}/env`, A.supervisorAddress);
    assert.equal(env['HOST'], addr.dbA);
    assert.equal(env['PORT'], String(PORT));
    const listed = (await runCommand(['ip', 'netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    for (const n of Object.values(netns)) assert.ok(listed.includes(n), `namespace ${n} missing: ${listed.join(' ')}`);
  });

  test('security groups and environment isolation hold between the instances', async () => {
    assert.equal(await connectFrom(netns.dbA, addr.webA, PORT), 'connected', 'db reaches web, which admits the environment');
    assert.equal(await connectFrom(netns.webA, addr.dbA, PORT), 'ECONNREFUSED', 'web is refused by db, which admits only api');
    const aToB = await connectFrom(netns.webA, addr.webB, PORT);
    assert.notEqual(aToB, 'connected', `environment A reached environment B: ${aToB}`);
    const bToA = await connectFrom(netns.webB, addr.webA, PORT);
    assert.notEqual(bToA, 'connected', `environment B reached environment A: ${bToA}`);
  });

  test('a restarted supervisor re-adopts the instances and leaves their namespaces alone', async () => {
    const beforePids = new Map(sup.observed().map((o) => [o.id, o.pid]));
    await sup.shutdown({ stopInstances: false });
    sup = makeSupervisor(apps, stateDir, { networkPrefix: PREFIX });
    await sup.start();
    const observed = await waitFor('re-adopted instances healthy', allHealthy(sup, ['web-a1', 'db-a1', 'web-b1']), { timeoutMs: 10_000 });
    for (const o of observed) assert.equal(o.pid, beforePids.get(o.id), `${o.id} was restarted instead of re-adopted`);
    sup.setDesired(instances, networks);
    assert.equal(await connectFrom(netns.dbA, addr.webA, PORT), 'connected');
    assert.equal(await connectFrom(netns.webA, addr.dbA, PORT), 'ECONNREFUSED');
  });

  test('a network error puts the instance in backoff with the error as its message', async () => {
    // An address of zone b, given to the supervisor of zone a: the network refuses it.
    const wrong = inst('web-a2', A, 'prod', 'web', instanceAddress(A, 'b', 0));
    sup.setDesired([...instances, wrong], networks);
    const o = await waitFor('web-a2 in backoff', () => {
      const w = find(sup, 'web-a2');
      return w !== undefined && w.state === 'backoff' && w.message !== 'starting' ? w : false;
    }, { timeoutMs: 10_000 });
    assert.match(o.message, /could not start: .*not in zone a's range.*; restarting in/);
    assert.equal(o.pid, null);
    assert.ok(sup.observed().filter((i) => i.id !== 'web-a2').every((i) => i.healthy), 'the other instances keep running');
  });

  test('stopped instances and an emptied networks list leave no lanes-y namespace or link', async () => {
    sup.setDesired([], []);
    await waitFor('no instance left', () => sup.observed().length === 0, { timeoutMs: 15_000 });
    const left = await waitFor('no namespace or link left', async () => {
      const objects = await manager.listObjects();
      return objects.namespaces.length === 0 && objects.links.length === 0 ? objects : false;
    }, { timeoutMs: 10_000 }).catch(async () => manager.listObjects());
    assert.deepEqual([...left.namespaces, ...left.links], []);
  });
});
