/**
 * Every environment is its own private network (run as root with iproute2 and nftables):
 * the isolation matrix as real TCP connects from inside instances, security groups from
 * the manifest, the egress address and allow-list, a zone going dark under load, and no
 * `lanes-` object left behind after delete, down, or a kill -9 of everything.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectIsolation, instanceNames, planEnvironment } from '@lanes/network';
import { freePort, isAlive, killTree, sleep, tempDir, waitFor } from '@lanes/testkit';
import { LoadClient, TestPlatform, type EnvStatus } from '../support/platform.js';

const isolation = await detectIsolation();
const skip = isolation.mode === 'netns' ? false : `network isolation unavailable here (${isolation.reason}): skipping the VPC scenarios`;

function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }));
  });
}

/** A real TCP connect from inside a network namespace; 'connected', 'refused' or 'timeout'. */
async function connectFrom(netns: string, host: string, port: number): Promise<string> {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});s.setTimeout(1500);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(0)});s.on('error',e=>{console.log(e.code==='ECONNREFUSED'?'refused':'error:'+e.code);process.exit(0)});`;
  const r = await run('ip', ['netns', 'exec', netns, process.execPath, '-e', script]);
  return r.stdout.trim() || `failed: ${r.stderr.trim()}`;
}

/** Names of every lanes- object the kernel holds. */
async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  const ns = await run('ip', ['netns', 'list']);
  out.push(...ns.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('lanes-') && !/^lanes-[txyz]/.test(n)));
  const links = await run('ip', ['-o', 'link']);
  out.push(...links.stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter((n) => n.startsWith('lanes-') && !/^lanes-[txyz]/.test(n)));
  const tables = await run('nft', ['list', 'tables']);
  out.push(...tables.stdout.split('\n').filter((l) => /\blanes-/.test(l) && !/\blanes-[txyz]/.test(l)).map((l) => l.trim()));
  return out;
}

const TIERS = {
  'lanes.yaml': [
    'name: tiers',
    'services:',
    '  web: { command: node srv.js, instances: 2, http: true, health: { path: /healthz } }',
    '  api: { command: node srv.js, instances: 1, allow_from: [web] }',
    '  db: { command: node srv.js, instances: 1, port: 5432, allow_from: [api] }',
    '',
  ].join('\n'),
  'srv.js': [
    "const http = require('http');",
    "http.createServer((q, r) => r.end(JSON.stringify({ instance: process.env.LANES_INSTANCE, zone: process.env.LANES_ZONE, host: process.env.HOST }))).listen(Number(process.env.PORT), process.env.HOST);",
    "process.on('SIGTERM', () => process.exit(0));",
    '',
  ].join('\n'),
};

describe('private networks per environment', { skip }, () => {
  let p: TestPlatform;
  let appDir: string;
  const outside: { netns: string; address: string; ports: number[]; server: ChildProcess | null; sources: string[] } = { netns: 'ltest-out', address: '10.99.0.2', ports: [7001, 7002], server: null, sources: [] };

  const instanceNs = (s: EnvStatus, service: string, zone?: string): { netns: string; address: string; port: number } => {
    const i = s.instances.find((x) => x.service === service && x.desired === 'running' && (zone === undefined || x.zone === zone));
    assert.ok(i?.address && i.port, `a running ${service} instance${zone ? ` in zone ${zone}` : ''}`);
    const n = Number(/^10\.88\.(\d+)\./.exec(i.address)?.[1]);
    const plan = planEnvironment('10.88.0.0/16', n, p.zones);
    return { netns: instanceNames(plan, i.id, i.address).netns, address: i.address, port: i.port };
  };

  before(async () => {
    // An "outside world" host the test owns: its own namespace behind a veth, a listener
    // recording the source address of every connection it accepts.
    await run('ip', ['netns', 'del', outside.netns]);
    await run('ip', ['link', 'del', 'ltest-outh']);
    for (const args of [
      ['netns', 'add', outside.netns],
      ['link', 'add', 'ltest-outh', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.netns],
      ['addr', 'add', '10.99.0.1/30', 'dev', 'ltest-outh'],
      ['link', 'set', 'ltest-outh', 'up'],
      ['-n', outside.netns, 'addr', 'add', `${outside.address}/30`, 'dev', 'eth0'],
      ['-n', outside.netns, 'link', 'set', 'eth0', 'up'],
      ['-n', outside.netns, 'link', 'set', 'lo', 'up'],
      ['-n', outside.netns, 'route', 'add', 'default', 'via', '10.99.0.1'],
    ]) {
      const r = await run('ip', args);
      assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
    }
    const listener = `const net=require('net');for(const p of [${outside.ports.join(',')}])net.createServer(s=>{console.log(p+' '+s.remoteAddress.replace('::ffff:',''));s.end()}).listen(p,'0.0.0.0');`;
    outside.server = spawn('ip', ['netns', 'exec', outside.netns, process.execPath, '-e', listener], { stdio: ['ignore', 'pipe', 'inherit'] });
    outside.server.stdout?.on('data', (d: Buffer) => outside.sources.push(...String(d).trim().split('\n')));

    p = await TestPlatform.start({ zones: ['a', 'b'], isolation: 'netns' });
    appDir = await tempDir('lanes-tiers-');
    await mkdir(appDir, { recursive: true });
    for (const [name, text] of Object.entries(TIERS)) await writeFile(path.join(appDir, name), text);
    for (const t of ['alpha', 'beta']) {
      assert.equal((await p.cli(['tenant', 'create', t])).code, 0);
      const env = await p.cli(['env', 'create', `${t}/prod`]);
      assert.equal(env.code, 0, env.stderr);
      const d = await p.cli(['deploy', `${t}/prod`, appDir], 120_000);
      assert.equal(d.code, 0, `deploy ${t}: ${d.stderr}\n${p.componentLogs()}`);
    }
  });

  after(async () => {
    await p?.stop();
    if (outside.server?.pid) killTree(outside.server.pid);
    await run('ip', ['netns', 'del', outside.netns]);
    await run('ip', ['link', 'del', 'ltest-outh']);
  });

  it('shows isolation netns and a private network per environment', async () => {
    const r = await p.cli(['status', 'alpha/prod']);
    assert.match(r.stdout, /isolation\s+netns/);
    const a = await p.status('alpha/prod');
    const b = await p.status('beta/prod');
    const subnet = (s: EnvStatus) => (s as unknown as { network: { subnet: string } }).network.subnet;
    assert.notEqual(subnet(a), subnet(b));
    for (const i of a.instances) assert.match(i.address ?? '', /^10\.88\.\d+\.\d+$/, 'instances live on their private network, not loopback');
  });

  it('passes the isolation matrix, each a real TCP connect from inside an instance', async () => {
    const a = await p.status('alpha/prod');
    const b = await p.status('beta/prod');
    const webA = instanceNs(a, 'web', 'a');
    const webA2 = instanceNs(a, 'web', 'b');
    const apiA = instanceNs(a, 'api');
    const dbA = instanceNs(a, 'db');
    const webB = instanceNs(b, 'web');
    const hostPort = await freePort();
    const hostListener = net.createServer((s) => s.end()).listen(hostPort, '0.0.0.0');
    try {
      const subnetA = webA.address.replace(/\.\d+$/, '');
      const matrix: [string, string, string, number, string][] = [
        ['tenant A web → tenant B web', webA.netns, webB.address, webB.port, 'blocked'],
        ['tenant A web → control plane API (host link)', webA.netns, `${subnetA}.1`, p.apiPort, 'blocked'],
        ['tenant A web → a host service on 0.0.0.0', webA.netns, `${subnetA}.1`, hostPort, 'blocked'],
        ['tenant A web → admin DB port on the host link', webA.netns, `${subnetA}.1`, 5432, 'blocked'],
        ['tenant A web → A api (allowed)', webA.netns, apiA.address, apiA.port, 'connected'],
        ['tenant A web → A db (not allowed)', webA.netns, dbA.address, dbA.port, 'blocked'],
        ['tenant A api → A db (allowed)', apiA.netns, dbA.address, dbA.port, 'connected'],
        ['same service across zones: web a → web b', webA.netns, webA2.address, webA2.port, 'connected'],
      ];
      const results: string[] = [];
      for (const [what, from, host, port, want] of matrix) {
        const got = await connectFrom(from, host, port);
        const ok = want === 'connected' ? got === 'connected' : got === 'refused' || got === 'timeout' || got.startsWith('error:');
        results.push(`${ok ? 'ok ' : 'BAD'} ${what}: ${got}`);
      }
      assert.ok(results.every((r) => r.startsWith('ok ')), results.join('\n'));
    } finally {
      hostListener.close();
    }
  });

  it('sends outbound connections from the environment egress address, and enforces the allow-list', async () => {
    const a = await p.status('alpha/prod');
    const web = instanceNs(a, 'web');
    const egress = (a as unknown as { network: { egressAddress: string } }).network.egressAddress;
    assert.equal(await connectFrom(web.netns, outside.address, 7001), 'connected');
    await waitFor('the outside host saw the connection', () => outside.sources.find((l) => l.startsWith('7001 ')));
    assert.equal(outside.sources.find((l) => l.startsWith('7001 ')), `7001 ${egress}`, 'the source is the environment egress address');
    const set = await p.cli(['env', 'egress', 'alpha/prod', '--allow', `${outside.address}/32:7001`]);
    assert.equal(set.code, 0, set.stderr);
    await waitFor('the allow-list applied', async () => (await connectFrom(web.netns, outside.address, 7002)) !== 'connected', { timeoutMs: 15_000, intervalMs: 500 });
    assert.equal(await connectFrom(web.netns, outside.address, 7001), 'connected', 'an allowed destination still connects');
  });

  it('keeps serving through the other zone while a zone is down, and routes to it again when up', async () => {
    const host = p.host('prod', 'alpha');
    const load = new LoadClient(p.httpPort, host, 4);
    await sleep(500);
    const t0 = Date.now();
    const down = await p.cli(['zone', 'down', 'a']);
    assert.equal(down.code, 0, down.stderr);
    await sleep(4000);
    const failedDuringOutage = load.failed;
    const zoneBServed = [...load.seen.keys()];
    const up = await p.cli(['zone', 'up', 'a']);
    assert.equal(up.code, 0, up.stderr);
    const s = await p.status('alpha/prod');
    const webInA = s.instances.find((i) => i.service === 'web' && i.zone === 'a');
    assert.ok(webInA);
    const before = load.seen.get(webInA.id) ?? 0;
    await waitFor('zone a serves again', () => (load.seen.get(webInA.id) ?? 0) > before, { timeoutMs: 20_000 });
    await load.stop();
    console.log(`zone down under load: ${failedDuringOutage} failed of ${load.ok + load.failed} requests; outage window ${Date.now() - t0} ms`);
    assert.equal(failedDuringOutage, 0, `requests kept succeeding through zone b: ${load.failures.join('; ')} (served by ${zoneBServed.join(', ')})`);
  });

  it('removes an environment network when the environment is deleted', async () => {
    const b = await p.status('beta/prod');
    const names = b.instances.map((i) => instanceNs(b, i.service).netns);
    const r = await p.cli(['env', 'delete', 'beta/prod'], 60_000);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('beta namespaces gone', async () => {
      const ns = (await run('ip', ['netns', 'list'])).stdout;
      return names.every((n) => !ns.includes(n));
    }, { timeoutMs: 30_000 });
  });

  it('cleans leftovers after kill -9 of everything at the next lanes up, and leaves nothing after lanes down', async () => {
    for (const pid of p.pids()) killTree(pid);
    await sleep(300);
    assert.ok((await leftovers()).length > 0, 'the crash left namespaces behind');
    const up = await p.cli(
      ['up', '--detach', '--api-port', String(p.apiPort), '--http-port', String(p.httpPort), '--dns-port', String(p.dnsPort), '--https-port', String(p.httpsPort), '--zones', p.zones.join(','), '--isolation', 'netns'],
      90_000,
    );
    assert.equal(up.code, 0, up.stderr);
    const s = await p.waitReady('alpha/prod');
    assert.ok(s.instances.every((i) => i.pid !== null && isAlive(i.pid)));
    const down = await p.cli(['down'], 60_000);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await leftovers(), [], 'no lanes- namespace, link, bridge or nftables table is left');
  });
});
