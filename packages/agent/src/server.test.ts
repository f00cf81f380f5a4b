import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { LogLine } from '@lanes/spec';
import { isAlive, waitFor } from '@lanes/testkit';
import { startAgentServer } from './server.js';
import { desired, find, cleanupApps, makeSupervisor, processesIn, silentLogger, writeTestApps } from './test-helpers.js';

const TOKEN = 'node-token-for-tests';

function parseLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

test('the agent server serves logs (tail and follow), requires the token, and shuts down on request', async () => {
  const apps = await writeTestApps();
  const sup = makeSupervisor(apps, path.join(apps.root, 'state'));
  let afterShutdownCalled = false;
  try {
    await sup.start();
    sup.setDesired([desired('web-1', 'server.mjs')]);
    const web = await waitFor('healthy', () => {
      const o = find(sup, 'web-1');
      return o?.healthy ? o : false;
    });
    const server = await startAgentServer({
      supervisor: sup,
      address: '127.0.0.1',
      port: 0,
      token: TOKEN,
      logger: silentLogger,
      shutdown: (stopInstances) => sup.shutdown({ stopInstances }),
      afterShutdown: () => {
        afterShutdownCalled = true;
      },
    });
    try {
      const auth = { authorization: `Bearer ${TOKEN}` };
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      const noToken = await fetch(`${server.url}/v1/logs?instance=web-1`);
      assert.equal(noToken.status, 401);
      assert.equal(noToken.headers.get('content-type'), 'application/problem+json');
      assert.equal((await fetch(`${server.url}/v1/logs?instance=web-1`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      assert.equal((await fetch(`${server.url}/v1/logs?instance=nope`, { headers: auth })).status, 404);
      assert.equal((await fetch(`${server.url}/v1/logs?instance=web-1&tail=x`, { headers: auth })).status, 400);

      // The app writes to stderr every 200 ms: healthy can come before its first line.
      const tail = await waitFor('a stderr line in the tail', async () => {
        const lines = parseLines(await (await fetch(`${server.url}/v1/logs?instance=web-1&tail=5`, { headers: auth })).text());
        return lines.some((l) => l.stream === 'stderr') ? lines : false;
      });
      const out = tail.filter((l) => l.stream === 'stdout');
      assert.equal(out.length, 1);
      assert.deepEqual(out[0], { time: null, instance: 'web-1', service: 'web', zone: 'a', stream: 'stdout', line: `listening pid=${web.pid} port=${web.port}` });
      const err = tail.filter((l) => l.stream === 'stderr');
      assert.ok(err.length >= 1 && err.length <= 5, `stderr tail has ${err.length} lines`);

      // Follow: the instance writes a stderr tick every 200 ms; followed lines carry a read time.
      const ac = new AbortController();
      const res = await fetch(`${server.url}/v1/logs?instance=web-1&tail=0&follow=1`, { headers: auth, signal: ac.signal });
      assert.equal(res.status, 200);
      assert.ok(res.body !== null);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (parseLines(text.slice(0, text.lastIndexOf('\n') + 1)).length < 2) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      ac.abort();
      const followed = parseLines(text.slice(0, text.lastIndexOf('\n') + 1));
      assert.ok(followed.length >= 2);
      for (const l of followed) {
        assert.equal(l.stream, 'stderr');
        assert.match(l.line, /^tick \d+$/);
        assert.ok(l.time !== null && !Number.isNaN(Date.parse(l.time)), `time ${String(l.time)}`);
      }

      const bad = await fetch(`${server.url}/v1/shutdown`, { method: 'POST', headers: auth, body: '{"stopInstances":"yes"}' });
      assert.equal(bad.status, 400);
      const down = await fetch(`${server.url}/v1/shutdown`, { method: 'POST', headers: auth, body: '{"stopInstances":true}' });
      assert.equal(down.status, 200);
      assert.deepEqual(await down.json(), { status: 'stopped', stopInstances: true });
      await waitFor('afterShutdown called', () => afterShutdownCalled);
      assert.equal(isAlive(web.pid ?? 0) && processesIn(apps.dir).length > 0, false, 'the instance was stopped');
    } finally {
      await server.close();
    }
  } finally {
    await sup.shutdown({ stopInstances: false });
    await cleanupApps(apps);
  }
});
