/**
 * The CLI as a user runs it: a real `node bin/lanes.js` process, a temp LANES_HOME, real
 * sockets. Checks the one-line errors (never a stack trace) and exit codes.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, isAlive, killTree, tempDir, waitFor } from '@lanes/testkit';

const BIN = fileURLToPath(new URL('../bin/lanes.js', import.meta.url));
const CONTROLPLANE_MAIN = fileURLToPath(new URL('../../controlplane/dist/main.js', import.meta.url));
const started: number[] = [];
const dirs: string[] = [];

after(async () => {
  for (const pid of started) killTree(pid);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function home(): Promise<string> {
  const d = await tempDir('lanes-cli-test-');
  dirs.push(d);
  return d;
}

function lanes(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = { ...process.env };
    delete clean['LANES_API_URL'];
    delete clean['LANES_TOKEN'];
    execFile(process.execPath, [BIN, ...argv], { env: { ...clean, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err && typeof err.code === 'number' ? err.code : err ? 1 : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLineError(r: { stderr: string }, expected: string | RegExp): void {
  assert.match(r.stderr, /^lanes: [^\n]+\n$/, `one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if (typeof expected === 'string') assert.equal(r.stderr, `lanes: ${expected}\n`);
  else assert.match(r.stderr, expected);
}

test('without a platform every API command says it is not running, exit 1', async () => {
  const h = await home();
  for (const argv of [['status', 'acme/prod'], ['tenant', 'list'], ['events'], ['deploy', 'acme/prod', h]]) {
    const r = await lanes({ LANES_HOME: h }, ...argv);
    assert.equal(r.code, 1, `lanes ${argv.join(' ')}`);
    assert.equal(r.stdout, '');
    assertOneLineError(r, `the platform is not running (no ${path.join(h, 'context.json')}); start it with lanes up`);
  }
});

test('an unknown command exits 2 with one line and nothing on stdout', async () => {
  const r = await lanes({ LANES_HOME: await home() }, 'deploi', 'acme/prod');
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assertOneLineError(r, 'unknown command "deploi"; run lanes help');
});

test('a control plane that is not listening is a one-line network error', async () => {
  const port = await freePort();
  const r = await lanes({ LANES_HOME: await home(), LANES_API_URL: `http://127.0.0.1:${port}`, LANES_TOKEN: 't' }, 'tenant', 'list');
  assert.equal(r.code, 1);
  assertOneLineError(r, `cannot reach the control plane at http://127.0.0.1:${port}: connection refused`);
});

test('a context.json pointing at a dead control plane is a one-line network error', async () => {
  const h = await home();
  const port = await freePort();
  await writeFile(path.join(h, 'context.json'), JSON.stringify({ state: 'ready', launcherPid: 999_999_999, apiUrl: `http://127.0.0.1:${port}`, zones: ['a'] }));
  await writeFile(path.join(h, 'admin.token'), 'secret\n');
  const r = await lanes({ LANES_HOME: h }, 'status', 'acme/prod');
  assert.equal(r.code, 1);
  assertOneLineError(r, `cannot reach the control plane at http://127.0.0.1:${port}: connection refused`);
});

test('problem+json answers are shown by their detail; the token is sent as Bearer', async () => {
  const seen: { auth: string | undefined; url: string | undefined }[] = [];
  // A fixture that answers every request with one problem document: only the rendering is under test.
  const server = http.createServer((req, res) => {
    seen.push({ auth: req.headers.authorization, url: req.url });
    res.writeHead(409, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, code: 'LANES_ERR_CONFLICT', detail: 'tenant "acme" still has 2 environments; delete them first' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const address = server.address();
    assert.ok(typeof address === 'object' && address !== null);
    const r = await lanes({ LANES_HOME: await home(), LANES_API_URL: `http://127.0.0.1:${address.port}`, LANES_TOKEN: 'tok-123' }, 'tenant', 'delete', 'acme');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assertOneLineError(r, 'tenant "acme" still has 2 environments; delete them first');
    assert.deepEqual(seen, [{ auth: 'Bearer tok-123', url: '/v1/tenants/acme' }]);
  } finally {
    server.close();
  }
});

test('lanes down with nothing running says so and exits 0', async () => {
  const r = await lanes({ LANES_HOME: await home() }, 'down');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'nothing is running\n');
});

test('lanes down after the launcher died stops components and recorded instances by pid', async () => {
  const h = await home();
  const spawnIdle = (...marker: string[]): number => {
    // Stands in for a component or an instance: a process in its own group, like the real ones.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', ...marker], { detached: true, stdio: 'ignore' });
    child.unref();
    assert.ok(child.pid);
    started.push(child.pid);
    return child.pid;
  };
  const gateway = spawnIdle('--state-dir', path.join(h, 'gateway'));
  const instance = spawnIdle('instance');
  await mkdir(path.join(h, 'zones', 'a'), { recursive: true });
  await writeFile(path.join(h, 'zones', 'a', 'state.json'), JSON.stringify({ version: 1, desired: [], instances: [{ id: 'web-1', pid: instance, startTime: null }] }));
  // A launcher that was killed -9: its pid is gone. (isolation none: a root test run must not
  // remove the host's lanes-* network objects, which other tests may be using.)
  await writeFile(path.join(h, 'context.json'), JSON.stringify({ state: 'ready', launcherPid: 999_999_999, apiUrl: 'http://127.0.0.1:1', zones: ['a'], isolation: 'none', components: { controlplane: null, gateway, agents: {} } }));
  await waitFor('idle processes to run', () => isAlive(gateway) && isAlive(instance));

  const r = await lanes({ LANES_HOME: h }, 'down');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`stopped gateway \\(pid ${gateway}\\)`));
  assert.match(r.stdout, /stopped 1 leftover instance process/);
  await waitFor('processes to be gone', () => !isAlive(gateway) && !isAlive(instance), { timeoutMs: 5000 });

  const again = await lanes({ LANES_HOME: h }, 'down');
  assert.equal(again.code, 0);
  assert.equal(again.stdout, 'nothing is running\n');
});

test('lanes up refuses to start while a launcher is alive', async () => {
  const h = await home();
  // Stands in for a live launcher: a process whose command line is `… up …`.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', 'up'], { detached: true, stdio: 'ignore' });
  child.unref();
  assert.ok(child.pid);
  started.push(child.pid);
  await writeFile(path.join(h, 'context.json'), JSON.stringify({ state: 'ready', launcherPid: child.pid, zones: [] }));
  const r = await lanes({ LANES_HOME: h }, 'up', '--api-port', String(await freePort()), '--http-port', String(await freePort()));
  assert.equal(r.code, 1);
  assertOneLineError(r, `the platform is already running (pid ${child.pid}); run lanes down first`);
  killTree(child.pid);
});

test('lanes up --detach fails with one line, and leaves nothing behind, when the API port is taken', { skip: !existsSync(CONTROLPLANE_MAIN) && 'the control plane is not built' }, async () => {
  const h = await home();
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  try {
    const address = busy.address();
    assert.ok(typeof address === 'object' && address !== null);
    // isolation none: a root test run must not remove the host's lanes-* network objects.
    const r = await lanes({ LANES_HOME: h }, 'up', '--detach', '--isolation', 'none', '--api-port', String(address.port), '--http-port', String(await freePort()), '--zones', 'a');
    assert.equal(r.code, 1, r.stdout);
    const [warning, ...rest] = r.stderr.split(/(?<=\n)/);
    assert.match(warning ?? '', /^warning: isolation is off \(--isolation none was given\)/);
    assertOneLineError({ stderr: rest.join('') }, /^lanes: the control plane exited with code \d+ before it was ready; see .*controlplane\.log/);
    assert.match(r.stdout, /starting control plane… failed/);
    assert.equal(existsSync(path.join(h, 'context.json')), false, 'context.json removed');
    const ours = await waitFor('no process of this LANES_HOME left', () => {
      const left = psLines().filter((l) => l.includes(h));
      return left.length === 0 ? true : undefined;
    }, { timeoutMs: 15_000 });
    assert.equal(ours, true);
  } finally {
    busy.close();
  }
});

function psLines(): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n');
}
