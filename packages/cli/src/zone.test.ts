/**
 * A simulated zone outage on a real platform, as a user runs it: `lanes up --isolation none
 * --detach` in a temp LANES_HOME with free ports (isolation none: no root needed, and no
 * network object of the host is touched), then `zone down b`, `zone up b`, `lanes down`.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, killTree, sleep, tempDir, waitFor } from '@lanes/testkit';

const BIN = fileURLToPath(new URL('../bin/lanes.js', import.meta.url));
const BUILT = ['controlplane', 'agent', 'gateway'].every((p) => existsSync(fileURLToPath(new URL(`../../${p}/dist/main.js`, import.meta.url))));
const homes: string[] = [];

after(async () => {
  for (const h of homes) {
    await lanes({ LANES_HOME: h }, 'down');
    // Whatever is still there (a failed assertion mid-way): by pid, from the process table.
    for (const pid of pidsOf(h)) killTree(pid);
    await rm(h, { recursive: true, force: true });
  }
});

function lanes(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = { ...process.env };
    delete clean['LANES_API_URL'];
    delete clean['LANES_TOKEN'];
    execFile(process.execPath, [BIN, ...argv], { env: { ...clean, ...env }, timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err && typeof err.code === 'number' ? err.code : err ? 1 : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function pidsOf(home: string): number[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(home))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
}

/** The state letter of /proc/<pid>/stat: T stopped, S sleeping, R running. */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

function context(home: string): { isolation?: unknown; components: { agents: Record<string, number> }; downZones?: { zone: string }[] } {
  return JSON.parse(readFileSync(path.join(home, 'context.json'), 'utf8')) as never;
}

function zoneRow(listing: string, zone: string): string[] {
  const row = listing.split('\n').find((l) => l.startsWith(`${zone} `));
  return row === undefined ? [] : row.split(/\s{2,}/);
}

test('zone down freezes a zone and takes it out of the zone list; zone up brings it back; isolation none warns once', { skip: !BUILT && 'the platform is not built' }, async () => {
  const h = await tempDir('lanes-cli-zone-');
  homes.push(h);
  const env = { LANES_HOME: h };
  const up = await lanes(env, 'up', '--isolation', 'none', '--detach', '--zones', 'a,b', '--api-port', String(await freePort()), '--http-port', String(await freePort()));
  assert.equal(up.code, 0, `lanes up: ${up.stderr}\n${up.stdout}`);
  // Exactly one warning, on stderr, and nothing else there.
  assert.equal(up.stderr, "warning: isolation is off (--isolation none was given): environments share the host's loopback network\n");
  assert.match(up.stdout, /^isolation +none$/m);
  const ctx = context(h);
  assert.equal(ctx.isolation, 'none');
  const supervisor = ctx.components.agents['b'];
  assert.ok(supervisor, 'zone b supervisor pid in context.json');

  // Environments on a platform without isolation: status says so, egress is recorded only.
  assert.equal((await lanes(env, 'tenant', 'create', 'acme')).code, 0);
  const created = await lanes(env, 'env', 'create', 'acme/prod', '--egress', '192.0.2.0/24:53');
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /note: the platform runs without isolation \(none\), so the egress list is recorded but not enforced/);
  const status = await lanes(env, 'status', 'acme/prod');
  assert.match(status.stdout, /^isolation +none$/m);
  assert.doesNotMatch(status.stdout, /^egress/m);
  const egress = await lanes(env, 'env', 'egress', 'acme/prod', '--any');
  assert.match(egress.stdout, /^egress of acme\/prod: any destination outside the platform$/m);

  const unknown = await lanes(env, 'zone', 'down', 'x');
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, 'lanes: zone "x" is not a zone of this platform (a, b)\n');

  const down = await lanes(env, 'zone', 'down', 'b');
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, new RegExp(`froze zone b: supervisor \\(pid ${supervisor}\\)`));
  assert.equal(procState(supervisor), 'T', 'zone b supervisor stopped');
  const listDown = await lanes(env, 'zone', 'list');
  assert.equal(listDown.code, 0, listDown.stderr);
  assert.equal(zoneRow(listDown.stdout, 'b')[1], 'down', listDown.stdout);
  assert.equal(zoneRow(listDown.stdout, 'a')[1], 'ready', listDown.stdout);
  assert.deepEqual(context(h).downZones?.map((d) => d.zone), ['b']);
  // The launcher watches exits only: a stopped supervisor is neither restarted nor reported.
  await sleep(1500);
  assert.equal(procState(supervisor), 'T');
  assert.doesNotMatch(readFileSync(path.join(h, 'logs', 'launcher.log'), 'utf8'), /exited unexpectedly/);

  const upZone = await lanes(env, 'zone', 'up', 'b');
  assert.equal(upZone.code, 0, upZone.stderr);
  assert.match(upZone.stdout, /continued zone b/);
  await waitFor('zone b supervisor to run again', () => ['S', 'R'].includes(procState(supervisor)), { timeoutMs: 2000 });
  await waitFor('zone list to show b ready', async () => zoneRow((await lanes(env, 'zone', 'list')).stdout, 'b')[1] === 'ready', { timeoutMs: 5000, intervalMs: 250 });
  assert.equal(context(h).components.agents['b'], supervisor, 'the same supervisor, not a restarted one');
  assert.deepEqual(context(h).downZones, []);

  // `lanes down` continues a frozen zone first, so its supervisor can stop its instances.
  assert.equal((await lanes(env, 'zone', 'down', 'b')).code, 0);
  const stop = await lanes(env, 'down');
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /^continued frozen zone b$/m);
  assert.match(stop.stdout, new RegExp(`stopped zone b supervisor \\(pid ${supervisor}\\) and its instances`));
  await waitFor('no process of this LANES_HOME left', () => pidsOf(h).length === 0, { timeoutMs: 10_000 });
});
