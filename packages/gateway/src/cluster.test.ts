/**
 * The multi-process gateway as a real process tree: a primary and two workers sharing the
 * listener, serving a persisted table, adding their figures up on /metrics, replacing a
 * worker killed with SIGKILL, and stopping cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { freePort, isAlive, killTree, tempDir, waitFor } from '@lanes/testkit';
import { startUpstream, table, vhost } from './harness.js';
import type { TestUpstream } from './harness.js';
import { READY_FILE, TABLE_FILE } from './persist.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const HOST = 'prod.acme.lanes.test';
const children: ChildProcess[] = [];
const upstreams: TestUpstream[] = [];
// A fresh connection per request, so that requests land on different workers.
const agent = new Agent({ pipelining: 0 });

after(async () => {
  for (const c of children) if (c.pid !== undefined && isAlive(c.pid)) killTree(c.pid);
  await Promise.all(upstreams.map((u) => u.close()));
  await agent.close();
});

/** The pids of a process's children, from /proc. */
async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.trim().split(/\s+/).filter(Boolean).map(Number);
}

describe('multi-process gateway', () => {
  it('serves from two workers, sums their figures on /metrics, replaces a killed worker and stops on SIGTERM', async () => {
    const dir = await tempDir('lanes-gwc-');
    const a = await startUpstream('a', (_req, res, self) => res.end(`${self.name}:${process.pid}`));
    upstreams.push(a);
    await writeFile(path.join(dir, TABLE_FILE), JSON.stringify(table(7, [vhost(HOST, [{ endpoints: [a.endpoint] }])])));
    const port = await freePort();
    const adminPort = await freePort();
    const env = { ...process.env };
    // Under node --test this marks a test child; cluster workers forked from it would report to the runner.
    delete env['NODE_TEST_CONTEXT'];
    const child = spawn(process.execPath, [MAIN, '--state-dir', dir, '--http-port', String(port), '--admin-port', String(adminPort), '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    children.push(child);
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout?.resume();
    const readyFile = path.join(dir, READY_FILE);
    await waitFor('ready file', async () => (await readFile(readyFile, 'utf8').catch(() => '')).includes('"workers":2'), { timeoutMs: 20_000 });
    const ready = JSON.parse(await readFile(readyFile, 'utf8')) as { pid: number; url: string; adminUrl: string };
    assert.equal(ready.pid, child.pid);
    assert.equal(ready.url, `http://127.0.0.1:${port}`);
    const workers = await childPids(child.pid as number);
    assert.equal(workers.length, 2, `workers: ${workers.join(',')}`);

    const get = async (p = '/'): Promise<{ status: number; text: string }> => {
      const res = await agent.request({ origin: ready.url, path: p, method: 'GET', headers: { host: HOST, connection: 'close' } });
      return { status: res.statusCode, text: await res.body.text() };
    };
    for (let i = 0; i < 20; i++) assert.equal((await get()).status, 200);

    // Every worker reports each second; the primary adds them up.
    await waitFor(
      '20 requests on /metrics',
      async () => {
        const res = await agent.request({ origin: ready.adminUrl, path: '/metrics', method: 'GET' });
        const text = await res.body.text();
        return /lanes_gateway_requests_total\{tenant="acme",environment="prod",service="web",code="2xx"\} 20\n/.test(text) && /lanes_gateway_workers 2\n/.test(text);
      },
      { timeoutMs: 10_000 },
    );

    // kill -9 of a worker: the other keeps serving, and the primary starts a replacement.
    process.kill(workers[0] as number, 'SIGKILL');
    for (let i = 0; i < 10; i++) assert.equal((await get()).status, 200);
    await waitFor('a replacement worker', async () => {
      const now = await childPids(child.pid as number);
      return now.length === 2 && !now.includes(workers[0] as number);
    }, { timeoutMs: 10_000 });
    const metrics = await (await agent.request({ origin: ready.adminUrl, path: '/metrics', method: 'GET' })).body.text();
    const served = Number(/code="2xx"\} (\d+)/.exec(metrics)?.[1]);
    assert.ok(served >= 20, `counters never go backwards (${served})`);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, err);
    for (const pid of await childPids(child.pid as number)) assert.equal(isAlive(pid), false);
    await assert.rejects(readFile(readyFile), 'ready file removed');
  });
});
