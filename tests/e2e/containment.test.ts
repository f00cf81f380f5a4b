/**
 * Tenant containment, tried as a hostile tenant would: an app in tenant `evil` probes every
 * escape from inside its instance (tests/fixtures/hostile) beside a victim in tenant
 * `victim` that keeps a secret in its environment. Run as root, in both isolation modes
 * (every tenant instance is in a runc sandbox; with netns also in its private network).
 * Every attempt must fail, the victim keep serving and the platform keep working.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { descendants, tempDir, waitFor } from '@lanes/testkit';
import { TestPlatform, repoRoot } from '../support/platform.js';

const root = process.getuid?.() === 0;
const hostileDir = path.join(repoRoot, 'tests', 'fixtures', 'hostile');
const victimDir = path.join(repoRoot, 'tests', 'fixtures', 'victim');
const SECRET = 'victim-secret-7f3a9c2e51';
const SOCKETS = ['/var/run/postgresql/.s.PGSQL.5432', '/run/mysqld/mysqld.sock'].filter((s) => existsSync(s));

function instanceLogs(home: string): string {
  const out: string[] = [];
  for (const zone of existsSync(path.join(home, 'zones')) ? readdirSync(path.join(home, 'zones')) : []) {
    const dir = path.join(home, 'zones', zone, 'instances');
    for (const id of existsSync(dir) ? readdirSync(dir) : []) {
      const f = path.join(dir, id, 'stderr.log');
      if (existsSync(f)) out.push(`--- ${zone}/${id}\n${readFileSync(f, 'utf8').slice(-800)}`);
    }
  }
  return out.join('\n');
}

function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

interface Attempt {
  ok: boolean;
  value?: unknown;
  error?: string;
}
interface Probe {
  uid: number;
  capEff: string;
  noNewPrivs: string;
  seccomp: string;
  visiblePids: number;
  secretSeenIn: string[];
  [k: string]: unknown;
  sockets: Record<string, Attempt>;
  forkBomb: { asked: number; alive: number; failed: number };
}

for (const isolation of ['none', 'netns'] as const) {
  describe(`tenant containment (isolation ${isolation})`, { skip: root ? false : 'needs root (sandboxes are for a root platform)' }, () => {
    let p: TestPlatform;
    let victimPid = 0;
    let victimRunc = 0;

    before(async () => {
      p = await TestPlatform.start({ zones: ['a', 'b'], isolation });
      for (const [tenant, dir] of [
        ['victim', victimDir],
        ['evil', hostileDir],
      ] as const) {
        assert.equal((await p.cli(['tenant', 'create', tenant])).code, 0);
        assert.equal((await p.cli(['env', 'create', `${tenant}/prod`, '--lane', 'single'])).code, 0);
        const r = await p.cli(['deploy', `${tenant}/prod`, dir], 120_000);
        assert.equal(r.code, 0, `deploy ${tenant}: ${r.stderr}\n${p.componentLogs()}\n${instanceLogs(p.home)}`);
      }
      const s = await p.waitReady('victim/prod');
      victimRunc = s.instances[0]?.pid as number;
      victimPid = descendants(victimRunc).at(-1) as number;
      assert.ok(victimPid > 0, 'the victim program runs under its sandbox');
    });
    after(async () => {
      await p?.stop();
    });

    it('no root process of the platform carries a tenant variable, and the tenant runs as its own user', async () => {
      const runcEnv = readFileSync(`/proc/${victimRunc}/environ`, 'utf8');
      assert.ok(!runcEnv.includes(SECRET), 'runc (root) runs with a clean environment');
      assert.ok(!runcEnv.includes('API_KEY'), 'runc (root) never sees the tenant variables');
      assert.ok(readFileSync(`/proc/${victimPid}/environ`, 'utf8').includes(SECRET), 'the program inside has them');
      assert.notEqual(uidOf(victimPid), 0);
    });

    it('every escape tried from inside fails and the victim keeps serving', async () => {
      const q = new URLSearchParams({ secret: SECRET, home: p.home, pid: String(victimPid), socket: SOCKETS.join(','), forks: '700' });
      const res = await request(`http://127.0.0.1:${p.httpPort}/probe?${q}`, { headers: { host: p.host('prod', 'evil') }, headersTimeout: 60_000, bodyTimeout: 60_000 });
      const r = { status: res.statusCode, text: await res.body.text() };
      assert.equal(r.status, 200, r.text);
      const o = JSON.parse(r.text) as Probe;
      const fail = (name: string): void => {
        const a = o[name] as Attempt;
        assert.equal(a.ok, false, `${name} must fail: ${JSON.stringify(a)}`);
      };
      assert.notEqual(o.uid, 0, 'not root');
      assert.notEqual(o.uid, uidOf(victimPid), 'not the victim environment\'s uid');
      assert.equal(o.capEff, '0000000000000000', 'no capabilities');
      assert.equal(o.noNewPrivs, '1', 'no_new_privs');
      assert.equal(o.seccomp, '2', 'a seccomp filter');
      assert.ok(o.visiblePids < 20, `sees only its own processes (${o.visiblePids})`);
      assert.deepEqual(o.secretSeenIn, [], 'the victim\'s secret is nowhere in /proc');
      for (const name of ['victimEnviron', 'victimMem', 'readHome', 'readToken', 'readCaKey', 'readAdminDb', 'readOtherPackages', 'readShadow', 'readRoot', 'writeUsr', 'writeEtc', 'writeRoot', 'writeApp', 'mount']) fail(name);
      const kill = o['killVictim'] as Attempt;
      assert.ok(kill.ok === false || kill.value !== 'signalled', `kill of the victim's pid: ${JSON.stringify(kill)}`);
      assert.equal((o['writeTmp'] as Attempt).ok, true, 'its own /tmp is writable');
      assert.equal((o['writeData'] as Attempt).ok, true, 'its own data directory is writable');
      for (const [s, a] of Object.entries(o.sockets)) assert.equal(a.ok, false, `host socket ${s}: ${JSON.stringify(a)}`);
      // The manifest's limits: { pids: 100 } (threads of node and tini count too).
      assert.ok(o.forkBomb.alive < 100 && o.forkBomb.alive > 0, `a fork bomb is held by the process limit (${JSON.stringify(o.forkBomb)})`);
      const v = await p.get(p.host('prod', 'victim'));
      assert.equal(v.status, 200);
      assert.match(v.text, /alive/);
    });

    it('a memory hog is stopped by its limit (192 MiB, from the manifest) and restarted; the victim and the platform are unaffected', async () => {
      const before0 = (await p.status('evil/prod')).instances[0];
      assert.ok(before0);
      // The gateway may hold the instance out of rotation for a moment after the fork bomb:
      // the hog is started once a request reaches it.
      await waitFor('the hog started', async () => {
        const r = await p.get(p.host('prod', 'evil'), '/hog').catch(() => null);
        return r !== null && r.text.startsWith('hogging');
      }, { timeoutMs: 30_000, intervalMs: 500 });
      let last: unknown = null;
      await waitFor('the hog restarted', async () => {
        const i = (await p.status('evil/prod')).instances.find((x) => x.id === before0.id);
        last = i;
        return i !== undefined && i.restarts > before0.restarts && i.healthy;
      }, { timeoutMs: 60_000 }).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last)}\n${instanceLogs(p.home)}`);
      });
      assert.equal((await p.get(p.host('prod', 'victim'))).status, 200);
      assert.equal((await p.api('GET', '/v1/tenants')).status, 200);
    });

    it('a manifest with LD_PRELOAD or LD_LIBRARY_PATH is refused at deploy, and nothing changes', async () => {
      const releases = await p.api<{ items: unknown[] }>('GET', '/v1/tenants/evil/environments/prod/releases');
      for (const name of ['LD_PRELOAD', 'LD_LIBRARY_PATH']) {
        const dir = await tempDir('lanes-hostile-');
        await cp(hostileDir, dir, { recursive: true });
        const yaml = readFileSync(path.join(hostileDir, 'lanes.yaml'), 'utf8').replace('health: { path: /healthz }', `health: { path: /healthz }\n    env: { ${name}: ./proof.so }`);
        writeFileSync(path.join(dir, 'lanes.yaml'), yaml);
        const r = await p.cli(['deploy', 'evil/prod', dir], 60_000);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, new RegExp(`services\\.web\\.env\\.${name}: is read by the dynamic loader`));
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      }
      assert.deepEqual(await p.api('GET', '/v1/tenants/evil/environments/prod/releases'), releases);
    });
  });
}
