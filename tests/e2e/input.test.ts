/**
 * What users get wrong and what the platform must survive: bad tokens, bad API input, bad
 * manifests and hostile archives get clear errors and change nothing; a crash-looping
 * service is reported and backed off; a double lane keeps two zones; unknown hosts 404.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Header } from 'tar';
import { sleep, tempDir, waitFor } from '@lanes/testkit';
import { TestPlatform, helloDir } from '../support/platform.js';

/** A .tgz built entry by entry, so the test can write what no honest packer would. */
function hostileTgz(entries: { path: string; type?: 'File' | 'SymbolicLink' | 'Link' | 'CharacterDevice'; body?: string; linkpath?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = new Header({ path: e.path, type: e.type ?? 'File', size: e.type && e.type !== 'File' ? 0 : body.length, mode: 0o644, mtime: new Date(0), linkpath: e.linkpath ?? '' });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if ((e.type ?? 'File') === 'File' && body.length > 0) {
      const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
      body.copy(padded);
      blocks.push(padded);
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const GOOD_MANIFEST = 'name: t\nservices:\n  web:\n    command: node server.js\n    http: true\n';

async function appDir(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('lanes-app-');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

describe('input, errors and failure reporting', () => {
  let p: TestPlatform;

  before(async () => {
    p = await TestPlatform.start({ zones: ['a', 'b'] });
    assert.equal((await p.cli(['tenant', 'create', 'beta'])).code, 0);
    assert.equal((await p.cli(['env', 'create', 'beta/test'])).code, 0);
  });
  after(async () => {
    await p?.stop();
  });

  it('refuses API calls without a valid token with 401', async () => {
    const none = await p.api('GET', '/v1/tenants', undefined, null);
    assert.equal(none.status, 401);
    const bad = await p.api('GET', '/v1/tenants', undefined, 'lanes_admin_nope');
    assert.equal(bad.status, 401);
    const node = await p.api('GET', '/v1/tenants', undefined, (await import('node:fs')).readFileSync(path.join(p.home, 'node.token'), 'utf8').trim());
    assert.equal(node.status, 403, 'the node token cannot use the public API');
  });

  it('serves an OpenAPI document', async () => {
    const r = await p.api<{ openapi: string; paths: Record<string, unknown> }>('GET', '/openapi.json', undefined, null);
    assert.equal(r.status, 200);
    assert.match(r.body.openapi, /^3\./);
    assert.ok(r.body.paths['/v1/tenants/{tenant}/environments/{env}/releases']);
  });

  it('answers bad API input with 400 naming the field, and changes nothing', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/v1/tenants', { name: 'Bad Name' }, /name: "Bad Name" is not a valid name/],
      ['POST', '/v1/tenants', {}, /name: is required/],
      ['POST', '/v1/tenants', { name: 'ok', extra: 1 }, /unknown key "extra"/],
      ['POST', '/v1/tenants/beta/environments', { name: 'x', lane: 'triple' }, /lane: "triple" is not a lane/],
      ['PUT', '/v1/tenants/beta/environments/test/services/web/scale', { instances: -1 }, /instances: must be 0 or more/],
    ];
    const tenantsBefore = await p.api('GET', '/v1/tenants');
    for (const [method, url, body, re] of cases) {
      const r = await p.api<{ detail: string; code: string }>(method, url, body);
      assert.equal(r.status, 400, `${method} ${url} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'LANES_ERR_INPUT');
      assert.match(r.body.detail, re);
    }
    const missing = await p.api<{ detail: string }>('GET', '/v1/tenants/nobody/environments/x');
    assert.equal(missing.status, 404);
    assert.deepEqual(await p.api('GET', '/v1/tenants'), tenantsBefore);
  });

  it('gives one-line CLI errors with a non-zero exit and no stack trace', async () => {
    for (const args of [['env', 'create', 'beta/Bad'], ['env', 'create', 'nobody/prod'], ['deploy', 'beta/test', '/nonexistent/dir'], ['tenant', 'create', 'beta']]) {
      const r = await p.cli(args);
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
      assert.match(r.stderr, /^lanes: .+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  it('rejects bad manifests with the field and reason, creating no release', async () => {
    const cases: [string, RegExp][] = [
      ['name: t\nservices:\n  web:\n    comand: node x.js\n', /services\.web: unknown key "comand"/],
      ['name: t\nservices:\n  web:\n    command: node x.js\n    instances: -2\n', /services\.web\.instances: must be at least 0/],
      ['name: t\nservices:\n  web:\n    instances: 1\n', /services\.web\.command: is required/],
      ['name: t\nservices:\n  a: { command: node a.js, http: true }\n  b: { command: node b.js, http: true }\n', /without a routing rule/],
      ['name: t\nservices: [1, 2\n', /not valid YAML/],
    ];
    for (const [manifest, re] of cases) {
      const dir = await appDir({ 'lanes.yaml': manifest, 'server.js': '' });
      const r = await p.cli(['deploy', 'beta/test', dir]);
      assert.equal(r.code, 1, `should fail: ${manifest}`);
      assert.match(r.stderr, re);
    }
    const releases = await p.api<{ items: unknown[] }>('GET', '/v1/tenants/beta/environments/test/releases');
    assert.equal(releases.body.items.length, 0);
  });

  it('rejects hostile archives: path escape, absolute path, symlink, hard link, device', async () => {
    const cases: [Buffer, RegExp][] = [
      [hostileTgz([{ path: 'lanes.yaml', body: GOOD_MANIFEST }, { path: '../escape.js', body: 'x' }]), /\.\.\/escape\.js|escape/],
      [hostileTgz([{ path: 'lanes.yaml', body: GOOD_MANIFEST }, { path: '/tmp/abs.js', body: 'x' }]), /abs\.js/],
      [hostileTgz([{ path: 'lanes.yaml', body: GOOD_MANIFEST }, { path: 'link', type: 'SymbolicLink', linkpath: '/etc/passwd' }]), /link/],
      [hostileTgz([{ path: 'lanes.yaml', body: GOOD_MANIFEST }, { path: 'hard', type: 'Link', linkpath: 'lanes.yaml' }]), /hard/],
      [hostileTgz([{ path: 'lanes.yaml', body: GOOD_MANIFEST }, { path: 'dev', type: 'CharacterDevice' }]), /dev/],
      [Buffer.from('this is not a tarball'), /not a gzip-compressed tar archive/],
    ];
    for (const [tgz, re] of cases) {
      const r = await p.api<{ detail: string }>('POST', '/v1/tenants/beta/environments/test/releases', tgz);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.detail, re);
    }
    const releases = await p.api<{ items: unknown[] }>('GET', '/v1/tenants/beta/environments/test/releases');
    assert.equal(releases.body.items.length, 0, 'no release was created');
  });

  it('reports a crash-looping service and backs off instead of restarting at full speed', async () => {
    const dir = await appDir({
      'lanes.yaml': 'name: crashy\nservices:\n  boom:\n    command: node boom.js\n    instances: 1\n',
      'boom.js': 'console.error("boom: cannot start"); process.exit(3);\n',
    });
    const r = await p.cli(['deploy', 'beta/test', dir, '--timeout', '60s'], 90_000);
    assert.equal(r.code, 1, 'deploy of a crash-looping release fails');
    assert.match(r.stderr, /crash-looping|crashloop/);
    const s = await p.status('beta/test');
    const boom = s.instances.find((i) => i.service === 'boom');
    assert.equal(boom?.state, 'crashloop');
    assert.match(boom?.message ?? '', /exit/);
    const restarts = boom?.restarts ?? 0;
    await sleep(5000);
    const later = (await p.status('beta/test')).instances.find((i) => i.service === 'boom');
    assert.ok((later?.restarts ?? 0) - restarts <= 2, `backed off: ${restarts} → ${later?.restarts} restarts in 5 s`);
    const events = await p.api<{ items: { reason: string }[] }>('GET', '/v1/events?tenant=beta&environment=test');
    assert.ok(events.body.items.some((e) => e.reason === 'InstanceCrashLoop'), 'a crash-loop event is recorded');
  });

  it('keeps a double-lane environment in two zones, even for a service asked for one instance', async () => {
    assert.equal((await p.cli(['env', 'create', 'beta/ha', '--lane', 'double'])).code, 0);
    const r = await p.cli(['deploy', 'beta/ha', helloDir], 120_000);
    assert.equal(r.code, 0, r.stderr);
    const s = await p.waitReady('beta/ha');
    for (const svc of ['web', 'worker']) {
      const zones = new Set(s.instances.filter((i) => i.service === svc && i.desired === 'running').map((i) => i.zone));
      assert.equal(zones.size, 2, `${svc} runs in two zones`);
    }
  });

  it('answers 404 for an unknown host and serves the right environment per host', async () => {
    const r = await p.get('nothing.nobody.lanes.localhost');
    assert.equal(r.status, 404);
    assert.match(r.text, /no environment is served at host "nothing\.nobody\.lanes\.localhost"/);
    const ok = await p.get(p.host('ha', 'beta'));
    assert.equal(ok.status, 200);
    assert.match(ok.text, /"environment":"ha"/);
  });

  it('deletes an environment and stops its instances', async () => {
    const pids = (await p.status('beta/ha')).instances.map((i) => i.pid).filter((x): x is number => x !== null);
    const r = await p.cli(['env', 'delete', 'beta/ha'], 60_000);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('environment gone', async () => (await p.api('GET', '/v1/tenants/beta/environments/ha')).status === 404);
    await waitFor('its processes gone', () => pids.every((pid) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }));
    const gw = await p.get(p.host('ha', 'beta'));
    assert.equal(gw.status, 404);
  });
});
