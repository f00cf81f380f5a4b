import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { freePort, isAlive, killTree, sleep, waitFor } from '@lanes/testkit';
import { desired, cleanupApps, processesIn, writeTestApps } from './test-helpers.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const RELEASE = 'a'.repeat(64);

interface StateView {
  instances: Array<{ id: string; pid: number | null }>;
}

function readState(stateDir: string): StateView {
  return JSON.parse(readFileSync(path.join(stateDir, 'state.json'), 'utf8')) as StateView;
}

function startAgent(stateDir: string, tokenFile: string, apiPort: number): number {
  const child = spawn(
    process.execPath,
    [MAIN, '--zone', 'a', '--api', `http://127.0.0.1:${apiPort}`, '--token-file', tokenFile, '--state-dir', stateDir, '--address', '127.0.0.1', '--port', '0'],
    { stdio: 'ignore', detached: true },
  );
  child.unref();
  assert.ok(child.pid !== undefined);
  return child.pid;
}

async function agentReady(stateDir: string, pid: number): Promise<string> {
  return waitFor('agent.json of the new agent', () => {
    const info = JSON.parse(readFileSync(path.join(stateDir, 'agent.json'), 'utf8')) as { pid: number; url: string };
    return info.pid === pid ? info.url : false;
  });
}

test('main.js: bad flags exit 2 with a one-line error', async () => {
  const child = spawn(process.execPath, [MAIN, '--zone', 'A!', '--api', 'http://127.0.0.1:1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 2);
  assert.match(err, /^lanes-agent: --zone: "A!" is not a valid zone name/);
  assert.equal(err.trim().split('\n').length, 1);
});

test('main.js: instances survive kill -9 of the agent and are re-adopted by the next agent', async () => {
  const apps = await writeTestApps();
  const stateDir = path.join(apps.root, 'state');
  const tokenFile = path.join(apps.root, 'node.token');
  writeFileSync(tokenFile, 'secret-node-token\n');
  // The package is already present, and the last desired list is in state.json: the agent
  // runs it without a control plane (the api port has nothing listening).
  mkdirSync(path.join(stateDir, 'packages'), { recursive: true });
  const { symlinkSync } = await import('node:fs');
  symlinkSync(apps.dir, path.join(stateDir, 'packages', RELEASE));
  writeFileSync(path.join(stateDir, 'state.json'), JSON.stringify({ version: 1, desired: [desired('web-1', 'server.mjs', { release: RELEASE })], instances: [] }));
  const apiPort = await freePort();
  const agents: number[] = [];
  try {
    const agent1 = startAgent(stateDir, tokenFile, apiPort);
    agents.push(agent1);
    const url1 = await agentReady(stateDir, agent1);
    assert.equal((await fetch(`${url1}/healthz`)).status, 200);
    const instancePid = await waitFor('instance pid in state.json', () => readState(stateDir).instances[0]?.pid ?? false);
    assert.equal(processesIn(apps.dir).length, 1, 'one copy of the instance');

    process.kill(agent1, 'SIGKILL');
    await waitFor('agent gone', () => !isAlive(agent1));
    await sleep(300);
    assert.equal(isAlive(instancePid), true, 'the instance outlives its supervisor');

    const agent2 = startAgent(stateDir, tokenFile, apiPort);
    agents.push(agent2);
    const url2 = await agentReady(stateDir, agent2);
    await sleep(500);
    assert.equal(readState(stateDir).instances[0]?.pid, instancePid, 'the second agent adopted the same process');
    assert.equal(processesIn(apps.dir).length, 1, 'no second copy');

    const res = await fetch(`${url2}/v1/shutdown`, { method: 'POST', headers: { authorization: 'Bearer secret-node-token' }, body: '{"stopInstances":true}' });
    assert.equal(res.status, 200);
    await waitFor('agent 2 exited', () => !isAlive(agent2));
    await waitFor('instance stopped', () => !isAlive(instancePid));
  } finally {
    for (const pid of agents) killTree(pid);
    await cleanupApps(apps);
  }
});
