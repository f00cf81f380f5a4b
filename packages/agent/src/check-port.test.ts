import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { waitFor } from '@lanes/testkit';
import { networkCheckPort } from './supervisor.js';
import type { Supervisor } from './supervisor.js';
import { cleanupApps, desired, find, makeSupervisor, writeTestApps } from './test-helpers.js';
import { parseDesiredInstance } from './validate.js';

async function envOf(port: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}/env`);
  const body: unknown = await res.json();
  assert.ok(typeof body === 'object' && body !== null);
  return { ...body };
}

async function withApps(fn: (apps: Awaited<ReturnType<typeof writeTestApps>>, sups: Supervisor[]) => Promise<void>): Promise<void> {
  const apps = await writeTestApps();
  const sups: Supervisor[] = [];
  try {
    await fn(apps, sups);
  } finally {
    for (const s of sups) await s.shutdown({ stopInstances: false });
    await cleanupApps(apps);
  }
}

test('checkPort is optional: true (the supervisor picks it) or a fixed port; absent means none', () => {
  assert.equal(parseDesiredInstance('i', desired('w', 'server.mjs')).checkPort, undefined);
  assert.equal(parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: false }).checkPort, undefined);
  assert.equal(parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: true }).checkPort, true);
  assert.equal(parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: 8081 }).checkPort, 8081, 'a database keeper has a fixed one');
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: 'yes' }), /i\.checkPort: "yes"/);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: 70_000 }), /i\.checkPort: 70000/);
  assert.throws(() => parseDesiredInstance('i', { ...desired('w', 'server.mjs'), checkPort: 0 }), /i\.checkPort: 0/);
});

test('in a private network the check port is the one next to PORT', () => {
  assert.equal(networkCheckPort(8080), 8081);
  assert.equal(networkCheckPort(65_535), 65_534);
});

test('an instance that asks for a check port gets CHECK_PORT, reports it, and keeps it across a restart and a supervisor restart', () =>
  withApps(async (apps, sups) => {
    const stateDir = path.join(apps.root, 'state');
    const sup = makeSupervisor(apps, stateDir);
    sups.push(sup);
    await sup.start();
    sup.setDesired([desired('db-1', 'server.mjs', { checkPort: true }), desired('web-1', 'server.mjs')]);
    const first = await waitFor('two healthy instances', () => {
      const db = find(sup, 'db-1');
      const web = find(sup, 'web-1');
      return db?.healthy && web?.healthy ? { db, web } : false;
    });
    const { db, web } = first;
    assert.ok(db.port !== null && typeof db.checkPort === 'number', `observed: ${JSON.stringify(db)}`);
    assert.notEqual(db.checkPort, db.port);
    assert.notEqual(db.checkPort, web.port);
    assert.equal('checkPort' in web, false, 'an instance without a check port reports none (its report is unchanged)');
    const dbEnv = await envOf(db.port);
    assert.equal(dbEnv['CHECK_PORT'], String(db.checkPort));
    assert.equal(dbEnv['PORT'], String(db.port));
    assert.ok(web.port !== null);
    assert.equal((await envOf(web.port))['CHECK_PORT'], undefined);

    assert.ok(db.pid !== null);
    process.kill(db.pid, 'SIGKILL');
    const again = await waitFor('restarted', () => {
      const o = find(sup, 'db-1');
      return o !== undefined && o.pid !== null && o.pid !== db.pid && o.healthy ? o : false;
    });
    assert.equal(again.checkPort, db.checkPort, 'the check port stays across restarts');
    assert.ok(again.port !== null);
    assert.equal((await envOf(again.port))['CHECK_PORT'], String(db.checkPort));

    await sup.shutdown({ stopInstances: false });
    sups.length = 0;
    const second = makeSupervisor(apps, stateDir);
    sups.push(second);
    await second.start();
    assert.equal(find(second, 'db-1')?.checkPort, db.checkPort, 'a re-adopted instance reports the check port it was started with');
  }));
