/**
 * The sandbox every tenant instance runs in when the supervisor is root: an OCI container
 * run by runc (ADR 007). Each instance gets its own PID, mount, IPC, UTS and cgroup
 * namespaces (and its environment's network namespace, joined by path), a read-only view of
 * the system (/usr, /etc), its package read-only at /app, a private writable /tmp and /data,
 * nothing of LANES_HOME, /run, /var or other tenants; its environment's own uid/gid, no
 * capabilities, no_new_privs, the containers' default seccomp profile, and cgroup limits for
 * memory, CPU and process count. tini is its PID 1 (signals reach the program, zombies are
 * reaped).
 *
 * Privilege order: runc runs as root with the supervisor's own (clean) environment; the
 * tenant's variables and argv are only in config.json and are applied by runc to the
 * program it execs after dropping to the instance's uid. No root process ever runs with a
 * tenant's environment or loads a tenant's file.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_LIMITS, type ResourceLimits } from '@lanes/spec';
import { findTool } from './network.js';

/** Resource limits of one instance (cgroups): memory in bytes (the OOM killer acts above it), CPU cores (a CFS quota), processes and threads. */
export type SandboxLimits = ResourceLimits;
export { DEFAULT_LIMITS };

export interface SandboxInstance {
  /** The container id (the instance id: unique on this machine). */
  readonly id: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The unpacked package, mounted read-only at /app (the working directory). */
  readonly packageDir: string;
  /** The instance's own writable directory, mounted at /data (owned by its uid). */
  readonly dataDir: string;
  /** The network namespace to join (`ip netns` name), or null for the host's network. */
  readonly netns: string | null;
  readonly uid: number;
  readonly gid: number;
  readonly limits: SandboxLimits;
}

/** The seccomp section of an OCI config. */
export interface OciSeccomp {
  readonly defaultAction: string;
  readonly defaultErrnoRet?: number;
  readonly architectures: readonly string[];
  readonly syscalls: readonly { names: string[]; action: string; args?: unknown[]; errnoRet?: number }[];
}

interface ContainersProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls: {
    names: string[];
    action: string;
    args?: unknown[] | null;
    errnoRet?: number;
    includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
    excludes?: { caps?: string[]; arches?: string[] };
  }[];
}

const ARCH: Record<string, { go: string; seccomp: string }> = {
  x64: { go: 'amd64', seccomp: 'SCMP_ARCH_X86_64' },
  arm64: { go: 'arm64', seccomp: 'SCMP_ARCH_AARCH64' },
};

/** Where Debian's containers-common keeps the default profile (the one Docker and Podman apply). */
export const DEFAULT_SECCOMP_PROFILE = '/usr/share/containers/seccomp.json';

/**
 * The containers' default seccomp profile, for a process with no capabilities on this
 * architecture, in the OCI runtime's format: rules that need a capability are left out,
 * rules that apply when one is missing are kept.
 */
export function seccompFromProfile(profile: ContainersProfile, arch: string = process.arch): OciSeccomp {
  const a = ARCH[arch];
  if (a === undefined) throw new Error(`seccomp: architecture ${arch} is not supported`);
  const map = profile.archMap?.find((m) => m.architecture === a.seccomp);
  const syscalls: OciSeccomp['syscalls'][number][] = [];
  for (const rule of profile.syscalls) {
    if ((rule.includes?.caps?.length ?? 0) > 0) continue;
    if (rule.includes?.arches !== undefined && rule.includes.arches.length > 0 && !rule.includes.arches.includes(a.go)) continue;
    if (rule.excludes?.arches?.includes(a.go) === true) continue;
    syscalls.push({
      names: rule.names,
      action: rule.action,
      ...(rule.args && rule.args.length > 0 ? { args: rule.args } : {}),
      ...(rule.errnoRet === undefined ? {} : { errnoRet: rule.errnoRet }),
    });
  }
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet === undefined ? {} : { defaultErrnoRet: profile.defaultErrnoRet }),
    architectures: [a.seccomp, ...(map?.subArchitectures ?? [])],
    syscalls,
  };
}

export function loadSeccomp(file = DEFAULT_SECCOMP_PROFILE): OciSeccomp {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`the default seccomp profile ${file} is missing: install Debian's golang-github-containers-common (or containers-common)`);
  }
  return seccompFromProfile(JSON.parse(text) as ContainersProfile);
}

const RO = ['rbind', 'ro', 'nosuid', 'nodev'];

/** Host directories the sandbox shows read-only (the system), besides /usr and /etc. */
function systemMounts(extraReadOnly: readonly string[]): object[] {
  const out: object[] = [
    { destination: '/usr', type: 'bind', source: '/usr', options: RO },
    { destination: '/etc', type: 'bind', source: '/etc', options: RO },
  ];
  // Without merged /usr, /bin and /lib are directories of their own.
  for (const d of ['/bin', '/sbin', '/lib', '/lib32', '/lib64']) {
    if (!existsSync(d)) continue;
    if (!lstatSync(d).isSymbolicLink()) out.push({ destination: d, type: 'bind', source: d, options: RO });
  }
  for (const d of extraReadOnly) out.push({ destination: d, type: 'bind', source: d, options: RO });
  return out;
}

/** The OCI runtime config of one instance (pure but for the host's /bin layout). */
export function ociConfig(inst: SandboxInstance, seccomp: OciSeccomp, opts: { tini: string; extraReadOnly?: readonly string[] }): object {
  const env = Object.entries(inst.env).map(([k, v]) => `${k}=${v}`);
  const quota = Math.max(1000, Math.round(inst.limits.cpus * 100_000));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: inst.uid, gid: inst.gid, additionalGids: [] },
      args: [opts.tini, '-g', '--', ...inst.argv],
      env,
      cwd: '/app',
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      noNewPrivileges: true,
      oomScoreAdj: 500,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: inst.id.slice(0, 63),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=268435456'] },
      ...systemMounts(opts.extraReadOnly ?? []),
      { destination: '/app', type: 'bind', source: inst.packageDir, options: RO },
      { destination: '/data', type: 'bind', source: inst.dataDir, options: ['rbind', 'rw', 'nosuid', 'nodev'] },
    ],
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'mount' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'cgroup' },
        ...(inst.netns === null ? [] : [{ type: 'network', path: `/run/netns/${inst.netns}` }]),
      ],
      resources: {
        memory: { limit: inst.limits.memoryBytes },
        cpu: { quota, period: 100_000 },
        pids: { limit: inst.limits.pids },
      },
      seccomp,
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

export interface SandboxRuntimeOptions {
  /** Where bundles, the empty root and runc's own state live (under the zone's state dir). */
  readonly dir: string;
  readonly runc?: string;
  readonly tini?: string;
  readonly seccomp?: OciSeccomp;
}

/** Finds runc and tini and loads the seccomp profile; throws a one-line reason when one is missing. */
export function sandboxTools(): { runc: string; tini: string; seccomp: OciSeccomp } {
  const runc = findTool('runc');
  if (!path.isAbsolute(runc)) throw new Error('runc is not installed: instances of a root supervisor run in runc sandboxes (apt-get install runc tini golang-github-containers-common)');
  const tini = findTool('tini');
  if (!path.isAbsolute(tini)) throw new Error('tini is not installed: it is PID 1 of every sandbox (apt-get install tini)');
  return { runc, tini, seccomp: loadSeccomp() };
}

function run(file: string, args: readonly string[], timeoutMs = 10_000): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }, (err, _stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stderr: String(stderr) });
    });
  });
}

/** Builds bundles and drives runc for the supervisor. */
export class SandboxRuntime {
  readonly #dir: string;
  readonly #runc: string;
  readonly #tini: string;
  readonly #seccomp: OciSeccomp;
  readonly #extraReadOnly: string[];

  constructor(opts: SandboxRuntimeOptions) {
    const tools = opts.runc !== undefined && opts.tini !== undefined && opts.seccomp !== undefined ? { runc: opts.runc, tini: opts.tini, seccomp: opts.seccomp } : sandboxTools();
    this.#dir = opts.dir;
    this.#runc = tools.runc;
    this.#tini = tools.tini;
    this.#seccomp = tools.seccomp;
    // A runtime installed outside /usr (node in /opt, say) is shown read-only too.
    const nodeDir = path.dirname(path.dirname(process.execPath));
    this.#extraReadOnly = nodeDir.startsWith('/usr') || nodeDir === '/' ? [] : [nodeDir];
    mkdirSync(path.join(this.#dir, 'bundles'), { recursive: true, mode: 0o700 });
    mkdirSync(path.join(this.#dir, 'state'), { recursive: true, mode: 0o700 });
    chmodSync(this.#dir, 0o700);
  }

  #bundle(id: string): string {
    return path.join(this.#dir, 'bundles', id);
  }

  /** Writes the bundle of `inst` and answers the argv that runs it in the foreground. */
  prepare(inst: SandboxInstance): string[] {
    const bundle = this.#bundle(inst.id);
    const rootfs = path.join(bundle, 'rootfs');
    mkdirSync(rootfs, { recursive: true, mode: 0o755 });
    chmodSync(bundle, 0o700);
    // Merged /usr: the root's /bin, /lib… are the same links as the host's.
    for (const d of ['bin', 'sbin', 'lib', 'lib32', 'lib64']) {
      const host = `/${d}`;
      const link = path.join(rootfs, d);
      if (existsSync(host) && lstatSync(host).isSymbolicLink() && !existsSync(link)) {
        try {
          symlinkSync(readlinkSync(host), link);
        } catch {
          /* made by a previous start */
        }
      }
    }
    mkdirSync(inst.dataDir, { recursive: true, mode: 0o700 });
    chownSync(inst.dataDir, inst.uid, inst.gid);
    chmodSync(inst.dataDir, 0o700);
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(ociConfig(inst, this.#seccomp, { tini: this.#tini, extraReadOnly: this.#extraReadOnly })), { mode: 0o600 });
    return [this.#runc, '--root', path.join(this.#dir, 'state'), 'run', '--bundle', bundle, inst.id];
  }

  /** Per container id: removals run one after the other, so a late one never hits a new container. */
  readonly #queues = new Map<string, Promise<void>>();

  /**
   * Kills what is left of a container and forgets it (idempotent: a missing one is fine).
   * Queued per id: a start that awaits its own removal runs after every earlier one.
   */
  remove(id: string): Promise<void> {
    const root = path.join(this.#dir, 'state');
    const prev = this.#queues.get(id) ?? Promise.resolve();
    const next = prev.then(async () => {
      await run(this.#runc, ['--root', root, 'kill', '--all', id, 'KILL']);
      await run(this.#runc, ['--root', root, 'delete', '--force', id]);
    });
    this.#queues.set(id, next);
    void next.finally(() => {
      if (this.#queues.get(id) === next) this.#queues.delete(id);
    });
    return next;
  }

  /**
   * Removes every container this runtime knows that is not in `keep`: what a runc killed
   * while no supervisor watched left behind for instances that are no longer wanted.
   */
  async sweep(keep: ReadonlySet<string>): Promise<string[]> {
    const ids = await new Promise<string[]>((resolve) => {
      execFile(this.#runc, ['--root', path.join(this.#dir, 'state'), 'list', '-q'], { timeout: 10_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }, (err, stdout) => {
        resolve(err === null ? String(stdout).split('\n').map((l) => l.trim()).filter(Boolean) : []);
      });
    });
    const gone = ids.filter((id) => !keep.has(id));
    for (const id of gone) await this.remove(id);
    return gone;
  }

  /** Resolves once every removal asked for so far is done. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()]);
  }

  /** Signals every process of a running container. */
  async kill(id: string, signal: 'KILL' | 'TERM'): Promise<void> {
    await run(this.#runc, ['--root', path.join(this.#dir, 'state'), 'kill', '--all', id, signal]);
  }
}
