import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ociConfig, seccompFromProfile, type OciSeccomp } from './sandbox.js';

const SECCOMP: OciSeccomp = { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'], syscalls: [] };
const INSTANCE = {
  id: 'web-1',
  argv: ['node', 'server.js'],
  env: { PORT: '8080', API_KEY: 'k' },
  packageDir: '/home/lanes/zones/a/packages/abc',
  dataDir: '/home/lanes/zones/a/instances/web-1/data',
  uid: 200007,
  gid: 200007,
  limits: { memoryBytes: 256 * 1024 ** 2, cpus: 0.5, pids: 128 },
};

interface Config {
  process: { user: { uid: number; gid: number; additionalGids: number[] }; args: string[]; env: string[]; cwd: string; noNewPrivileges: boolean; capabilities: Record<string, string[]> };
  root: { readonly: boolean };
  mounts: { destination: string; source: string; options?: string[] }[];
  linux: { namespaces: { type: string; path?: string }[]; resources: { memory: { limit: number }; cpu: { quota: number; period: number }; pids: { limit: number } }; seccomp: OciSeccomp };
}

describe('ociConfig', () => {
  it('runs the program as the environment\'s user under tini with no capabilities, no_new_privs and the limits', () => {
    const c = ociConfig({ ...INSTANCE, netns: null }, SECCOMP, { tini: '/usr/bin/tini' }) as Config;
    assert.deepEqual(c.process.user, { uid: 200007, gid: 200007, additionalGids: [] });
    assert.deepEqual(c.process.args, ['/usr/bin/tini', '-g', '--', 'node', 'server.js']);
    assert.ok(c.process.env.includes('API_KEY=k'), 'the tenant\'s variables are the program\'s, inside');
    assert.equal(c.process.cwd, '/app');
    assert.equal(c.process.noNewPrivileges, true);
    for (const set of Object.values(c.process.capabilities)) assert.deepEqual(set, []);
    assert.equal(c.root.readonly, true);
    assert.deepEqual(c.linux.resources, { memory: { limit: 256 * 1024 ** 2 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 128 } });
    assert.equal(c.linux.seccomp, SECCOMP);
    assert.deepEqual(c.linux.namespaces.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'pid', 'uts'], 'the host network without netns');
  });

  it('shows the package read-only at /app, its own /data writable, and nothing else of the platform', () => {
    const c = ociConfig({ ...INSTANCE, netns: 'lanes-e3-web-1' }, SECCOMP, { tini: '/usr/bin/tini' }) as Config;
    assert.deepEqual(c.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/lanes-e3-web-1' });
    const app = c.mounts.find((m) => m.destination === '/app');
    assert.equal(app?.source, INSTANCE.packageDir);
    assert.ok(app?.options?.includes('ro'));
    const data = c.mounts.find((m) => m.destination === '/data');
    assert.ok(data?.options?.includes('rw'));
    for (const m of c.mounts) {
      assert.ok(!m.source.startsWith('/home/lanes') || m.destination === '/app' || m.destination === '/data', `only the package and the data directory come from the platform's home: ${m.destination}`);
      assert.ok(!['/run', '/var', '/root', '/home'].includes(m.destination), `${m.destination} is not shown`);
    }
    for (const m of c.mounts.filter((x) => x.destination === '/usr' || x.destination === '/etc')) assert.ok(m.options?.includes('ro'), `${m.destination} read-only`);
  });
});

describe('seccompFromProfile', () => {
  it('keeps the rules for a process without capabilities on this architecture', () => {
    const s = seccompFromProfile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }],
        syscalls: [
          { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', args: [] },
          { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
          { names: ['sync_file_range2'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['ppc64le'] } },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        ],
      },
      'x64',
    );
    assert.equal(s.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(s.defaultErrnoRet, 38);
    assert.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(
      s.syscalls.map((r) => `${r.names.join(',')}:${r.action}`),
      ['read,write:SCMP_ACT_ALLOW', 'mount:SCMP_ACT_ERRNO', 'arch_prctl:SCMP_ACT_ALLOW', 'personality:SCMP_ACT_ALLOW'],
    );
    assert.deepEqual(s.syscalls[3]?.args, [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }]);
    assert.throws(() => seccompFromProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] }, 'mips'), /architecture mips/);
  });
});
