/**
 * The zone supervisor's core: keeps the desired instances running as OS processes.
 * Level-triggered (`setDesired` with the full list), restarts with backoff and crash-loop
 * detection, health checks, graceful stops, and a state file so that a restarted
 * supervisor re-adopts the instances that kept running while it was gone. Instances are
 * spawned detached in their own process group with output to files, so the supervisor's
 * death (even kill -9) does not take them down. Knows nothing of the control plane.
 * An instance with a `network` runs inside its own network namespace (see network.ts),
 * unprivileged, listening on its own address; without one it listens on `address`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { HEALTH_DEFAULTS } from '@lanes/spec';
import type { DesiredInstance, EnvironmentNetwork, InstanceMetrics, InstanceState, ObservedInstance } from '@lanes/spec';
import { execArgv } from '@lanes/network';
import { pickBaseEnv } from './config.js';
import { HealthProbe } from './health.js';
import type { ProbeKind } from './health.js';
import { rotateIfLarge } from './logs.js';
import { DEFAULT_LIMITS, type SandboxRuntime } from './sandbox.js';
import { InstanceNetworks, accessProblem, findTool } from './network.js';
import { DEFAULT_RESTART_POLICY, decideRestart, initialHistory } from './policy.js';
import type { RestartHistory, RestartPolicy } from './policy.js';
import { findFreePort, isPortFree } from './ports.js';
import { isSameLiveProcess, readChildren, readProcStat, treeCpuTicks } from './procfs.js';
import { readStateFile, writeStateFile } from './state.js';
import type { InstanceRecord, SupervisorState } from './state.js';
import { parseDesiredList, parseNetworkList } from './validate.js';

export interface SupervisorOptions {
  readonly zone: string;
  /** The address instances listen on and are reported at. @default '127.0.0.1' */
  readonly address?: string;
  readonly stateDir: string;
  /** Returns the directory holding the unpacked release package (the instance's cwd). */
  readonly resolvePackage: (release: string) => Promise<string>;
  readonly logger: Logger;
  /** @default DEFAULT_RESTART_POLICY (1 s doubling to 30 s, ±20 %, reset after 10 s, 5 exits in 60 s) */
  readonly restartPolicy?: Partial<RestartPolicy>;
  /** A log file at least this large is rotated to `.1` when its instance (re)starts. @default 10 MiB */
  readonly maxLogBytes?: number;
  /** How often the liveness of adopted (non-child) processes is checked. @default 250 */
  readonly pollIntervalMs?: number;
  /** The base environment of every instance. @default PATH, HOME, LANG and TZ of this process, where set */
  readonly baseEnv?: Readonly<Record<string, string>>;
  /** Extra wait for a process group to vanish after SIGKILL. @default 5000 */
  readonly killWaitMs?: number;
  /**
   * How long a healthy instance that is no longer desired keeps running before its SIGTERM,
   * so the gateway (told at the same moment) stops sending it new requests first. @default 1000
   */
  readonly drainDelayMs?: number;
  /** Prefix of the kernel objects of environment networks (tests use `lanes-t`…). @default 'lanes-' */
  readonly networkPrefix?: string;
  /**
   * The user and group instances with a network run as (never root: root could leave its
   * namespace or rewrite its firewall). Their package directory must be readable by it.
   * @default { uid: 65534, gid: 65534 } (nobody)
   */
  readonly instanceUser?: { readonly uid: number; readonly gid: number };
  /**
   * Runs tenant instances (those with a `user`) in OCI sandboxes (sandbox.ts); null: as plain
   * processes. The platform's own programs (no `user`) are never sandboxed. @default null
   */
  readonly sandbox?: SandboxRuntime | null;
}

/** The port an instance with a network gets when the control plane sends none: its address is its own. */
export const DEFAULT_NETWORK_PORT = 8080;

/**
 * The CHECK_PORT of an instance with a network: the port next to its PORT (every port of its
 * own address is free). The control plane follows the same rule when it opens the instance's
 * security group to the gateway, so the two must change together.
 */
export function networkCheckPort(port: number): number {
  return port < 65_535 ? port + 1 : port - 1;
}

export interface InstanceLogFiles {
  readonly service: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Everything the supervisor tracks for one instance id. */
interface Slot {
  readonly desired: DesiredInstance;
  /** Still in the desired list; false once it is to be stopped and removed. */
  wanted: boolean;
  state: InstanceState;
  pid: number | null;
  startTime: string | null;
  /** Our own child; null for an adopted process (polled instead). */
  child: ChildProcess | null;
  port: number | null;
  /** The second port (CHECK_PORT) of an instance that asked for one; kept across restarts like `port`. */
  checkPort: number | null;
  restarts: number;
  lastExitCode: number | null;
  lastExitSignal: string | null;
  message: string;
  startedAt: string | null;
  startedAtMs: number | null;
  healthy: boolean;
  /** Became healthy at least once since its last (re)start. */
  everHealthy: boolean;
  /** Has been started at least once, so the next start counts as a restart. */
  hasRun: boolean;
  history: RestartHistory;
  crashLooping: boolean;
  /** Bumped by every launch and stop, so late callbacks of an older process are ignored. */
  generation: number;
  restartTimer: NodeJS.Timeout | null;
  pollTimer: NodeJS.Timeout | null;
  /** Without a health check: ends the crash-loop state once the process has run resetAfterMs. */
  stableTimer: NodeJS.Timeout | null;
  probe: HealthProbe | null;
  goneWaiters: Array<() => void>;
  stopping: Promise<void> | null;
}

type ChangeListener = (observed: readonly ObservedInstance[]) => void;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function exitText(code: number | null, signal: string | null): string {
  if (signal !== null) return `killed by signal ${signal}`;
  if (code !== null) return `exited with code ${code}`;
  return 'exited (exit status unknown: not a child of this supervisor)';
}

/** How long a process without any health check must stay up before it counts as healthy. */
const NO_CHECK_READY_MS = 1000;

export class Supervisor {
  readonly zone: string;
  readonly address: string;
  private readonly stateDir: string;
  private readonly stateFile: string;
  private readonly policy: RestartPolicy;
  private readonly maxLogBytes: number;
  private readonly pollIntervalMs: number;
  private readonly killWaitMs: number;
  private readonly drainDelayMs: number;
  private readonly baseEnv: Readonly<Record<string, string>>;
  private readonly log: Logger;
  private readonly slots = new Map<string, Slot>();
  private readonly networks: InstanceNetworks;
  private readonly instanceUser: { readonly uid: number; readonly gid: number };
  private readonly sandbox: SandboxRuntime | null;
  /** Absolute paths of ip and setpriv, found once: an instance's PATH must not choose what runs as root. */
  private tools: { ipPath: string; setprivPath: string } | null = null;
  private networkList: readonly EnvironmentNetwork[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private desired: readonly DesiredInstance[] = [];
  /** A list given before start(); applied once the state file has been recovered. */
  private pendingDesired: readonly DesiredInstance[] | null = null;
  private pendingNetworks: readonly EnvironmentNetwork[] | null = null;
  private started = false;
  private closing = false;

  constructor(private readonly opts: SupervisorOptions) {
    this.zone = opts.zone;
    this.address = opts.address ?? '127.0.0.1';
    this.stateDir = opts.stateDir;
    this.stateFile = path.join(opts.stateDir, 'state.json');
    this.policy = { ...DEFAULT_RESTART_POLICY, ...opts.restartPolicy };
    this.maxLogBytes = opts.maxLogBytes ?? 10 * 1024 * 1024;
    this.pollIntervalMs = opts.pollIntervalMs ?? 250;
    this.killWaitMs = opts.killWaitMs ?? 5000;
    this.drainDelayMs = opts.drainDelayMs ?? 1000;
    this.baseEnv = opts.baseEnv ?? pickBaseEnv();
    this.log = opts.logger;
    this.instanceUser = opts.instanceUser ?? { uid: 65534, gid: 65534 };
    this.sandbox = opts.sandbox ?? null;
    this.networks = new InstanceNetworks({
      zone: this.zone,
      logger: this.log,
      inUse: () => new Set([...this.slots.values()].flatMap((s) => (s.desired.network === null ? [] : [s.desired.network.envIndex]))),
      ...(opts.networkPrefix === undefined ? {} : { prefix: opts.networkPrefix }),
    });
  }

  /** Loads state.json, re-adopts instances still running, and restarts the ones that are gone. */
  async start(): Promise<void> {
    if (this.started) return;
    mkdirSync(path.join(this.stateDir, 'instances'), { recursive: true });
    let state: SupervisorState;
    try {
      state = readStateFile(this.stateFile);
    } catch (err) {
      this.log.error({ err, stateFile: this.stateFile }, 'state file unreadable; starting empty');
      state = { version: 1, desired: [], instances: [], networks: [] };
    }
    this.started = true;
    // Queued before any instance's namespace: a restarting instance gets its security group at once.
    this.networkList = state.networks;
    if (state.networks.length > 0) void this.networks.setNetworks(state.networks);
    const records = new Map(state.instances.map((r) => [r.id, r]));
    this.desired = state.desired;
    for (const d of state.desired) {
      const slot = this.newSlot(d, records.get(d.id));
      this.slots.set(d.id, slot);
      this.recover(slot, records.get(d.id));
    }
    // A process recorded but no longer desired (the supervisor died while stopping it): adopt, then stop.
    for (const r of state.instances) {
      if (this.slots.has(r.id) || r.pid === null || !isSameLiveProcess(r.pid, r.startTime)) continue;
      this.log.info({ instance: r.id, pid: r.pid }, 'stopping undesired instance left running');
      const placeholder: DesiredInstance = {
        id: r.id, tenant: '', environment: '', service: '', release: '', argv: ['-'], env: {}, port: r.port, listens: false, health: null, stopGraceMs: 10_000, network: r.network,
      };
      const slot = this.newSlot(placeholder, r);
      slot.wanted = false;
      this.slots.set(r.id, slot);
      this.adopt(slot, r.pid, r.startTime);
      void this.stopSlot(slot, true);
    }
    // Containers of instances this supervisor no longer has (their runc killed while it was away).
    if (this.sandbox !== null) {
      const keep = new Set(this.slots.keys());
      void this.sandbox.sweep(keep).then(
        (gone) => {
          if (gone.length > 0) this.log.warn({ containers: gone }, 'removed sandboxes of instances no longer wanted');
        },
        (err: unknown) => this.log.warn({ err }, 'could not sweep sandboxes'),
      );
    }
    if (this.pendingDesired !== null) {
      const pending = this.pendingDesired;
      const nets = this.pendingNetworks ?? [];
      this.pendingDesired = null;
      this.pendingNetworks = null;
      this.setDesired(pending, nets);
    }
    this.changed();
  }

  /**
   * The full list of instances this zone should run (anything else is stopped), and the
   * networks of the live environments (empty without isolation; any environment network
   * this supervisor set up that is neither listed nor used by its instances is removed).
   */
  setDesired(list: readonly DesiredInstance[], networks: readonly EnvironmentNetwork[] = []): void {
    if (this.closing) return;
    const checked = parseDesiredList('instances', list);
    const nets = parseNetworkList('networks', networks);
    if (!this.started) {
      this.pendingDesired = checked;
      this.pendingNetworks = nets;
      return;
    }
    this.desired = checked;
    this.networkList = nets;
    // Queued before the new instances' namespaces, so they start with their groups known.
    void this.networks.setNetworks(nets);
    const ids = new Set(checked.map((d) => d.id));
    for (const d of checked) {
      const slot = this.slots.get(d.id);
      if (slot === undefined) {
        const fresh = this.newSlot(d, undefined);
        this.slots.set(d.id, fresh);
        void this.launch(fresh);
      } else if (!slot.wanted) {
        // Re-desired while stopping: started again once the stop completes (see stopSlot).
        slot.wanted = true;
        if (slot.stopping === null) void this.launch(slot);
      }
    }
    for (const slot of this.slots.values()) {
      if (!ids.has(slot.desired.id) && slot.wanted) {
        slot.wanted = false;
        void this.stopSlot(slot, true, slot.healthy ? this.drainDelayMs : 0);
      }
    }
    this.changed();
  }

  observed(): ObservedInstance[] {
    return [...this.slots.values()].map((s) => ({
      id: s.desired.id,
      state: s.state,
      pid: s.pid,
      address: s.desired.network?.address ?? this.address,
      port: s.port,
      // Only instances that asked for one report it, so other reports stay as they were.
      ...(s.desired.checkPort !== undefined && s.desired.checkPort !== false ? { checkPort: s.checkPort } : {}),
      healthy: s.healthy,
      restarts: s.restarts,
      lastExitCode: s.lastExitCode,
      lastExitSignal: s.lastExitSignal,
      message: s.message,
      startedAt: s.startedAt,
    }));
  }

  readonly #cpuSamples = new Map<string, { ticks: number; at: number }>();

  /** CPU use of each running instance (its whole process tree) since the previous call, in percent of one core. */
  metrics(now = Date.now()): InstanceMetrics[] {
    const out: InstanceMetrics[] = [];
    const children = readChildren();
    for (const s of this.slots.values()) {
      if (s.pid === null) continue;
      const ticks = treeCpuTicks(s.pid, children);
      if (ticks === null) continue;
      const prev = this.#cpuSamples.get(s.desired.id);
      this.#cpuSamples.set(s.desired.id, { ticks, at: now });
      if (prev && now > prev.at && ticks >= prev.ticks) {
        out.push({ id: s.desired.id, cpuPercent: Math.round(((ticks - prev.ticks) * 10 * 1000) / (now - prev.at)) / 10 });
      }
    }
    for (const id of this.#cpuSamples.keys()) if (!this.slots.has(id)) this.#cpuSamples.delete(id);
    return out;
  }

  /** Calls `listener` after every observable change; returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Where an instance's output goes; null for an unknown instance. */
  logFiles(id: string): InstanceLogFiles | null {
    const slot = this.slots.get(id);
    if (slot === undefined) return null;
    const dir = this.instanceDir(id);
    return { service: slot.desired.service, stdout: path.join(dir, 'stdout.log'), stderr: path.join(dir, 'stderr.log') };
  }

  /**
   * Stops supervising. With stopInstances the instances are stopped gracefully first;
   * without, they keep running and the next supervisor on this stateDir re-adopts them.
   */
  async shutdown({ stopInstances }: { stopInstances: boolean }): Promise<void> {
    this.closing = true;
    if (stopInstances) {
      await Promise.all([...this.slots.values()].map((s) => this.stopSlot(s, false)));
      // Stopped instances hold nothing: their namespaces go (a next start makes them anew).
      await Promise.all([...this.slots.values()].flatMap((s) => (s.desired.network === null ? [] : [this.networks.removeInstance(s.desired.id, s.desired.network)])));
    }
    this.networks.close();
    await this.networks.idle();
    await this.sandbox?.idle();
    for (const slot of this.slots.values()) {
      this.clearTimers(slot);
      slot.generation += 1;
      // The child stays in our process table until it exits; nothing of ours may react to it.
      slot.child?.removeAllListeners('exit');
      slot.child?.removeAllListeners('error');
    }
    this.persist();
    this.listeners.clear();
  }

  // ---- lifecycle of one instance ----

  private newSlot(d: DesiredInstance, r: InstanceRecord | undefined): Slot {
    return {
      desired: d,
      wanted: true,
      state: 'starting',
      pid: null,
      startTime: null,
      child: null,
      port: r?.port ?? null,
      checkPort: r?.checkPort ?? null,
      restarts: r?.restarts ?? 0,
      lastExitCode: r?.lastExitCode ?? null,
      lastExitSignal: r?.lastExitSignal ?? null,
      message: r?.message ?? 'starting',
      startedAt: r?.startedAt ?? null,
      startedAtMs: r?.startedAt ? Date.parse(r.startedAt) : null,
      healthy: false,
      everHealthy: false,
      hasRun: r !== undefined && r.startedAt !== null,
      history: r !== undefined && r.history.backoffMs > 0 ? r.history : initialHistory(this.policy),
      crashLooping: false,
      generation: 0,
      restartTimer: null,
      pollTimer: null,
      stableTimer: null,
      probe: null,
      goneWaiters: [],
      stopping: null,
    };
  }

  /** At start: adopt a recorded process that is still ours, else treat it as exited. */
  private recover(slot: Slot, r: InstanceRecord | undefined): void {
    if (r !== undefined && r.pid !== null && isSameLiveProcess(r.pid, r.startTime)) {
      slot.healthy = r.healthy;
      slot.everHealthy = r.everHealthy;
      this.adopt(slot, r.pid, r.startTime);
      this.log.info({ instance: slot.desired.id, pid: r.pid, port: slot.port }, 'instance re-adopted');
      return;
    }
    if (r !== undefined && r.pid !== null) {
      // Gone while no supervisor watched (a host reboot, `lanes down`, a kill of everything):
      // start it again at once; its crash history is not evidence of a crash loop.
      this.log.info({ instance: slot.desired.id, pid: r.pid }, 'recorded instance is gone; starting it again');
      slot.message = `not running after supervisor restart (pid ${r.pid} gone or reused); started again`;
      void this.launch(slot);
      return;
    }
    void this.launch(slot);
  }

  /** Watches a running process that is not our child: polls /proc for it. */
  private adopt(slot: Slot, pid: number, startTime: string | null): void {
    slot.generation += 1;
    const gen = slot.generation;
    slot.pid = pid;
    slot.startTime = startTime;
    slot.child = null;
    slot.state = slot.everHealthy ? 'running' : 'starting';
    slot.message = slot.healthy ? 'adopted after supervisor restart; healthy' : 'adopted after supervisor restart';
    slot.pollTimer = setInterval(() => {
      if (slot.generation !== gen || slot.pid !== pid) return;
      if (!isSameLiveProcess(pid, startTime)) this.handleGone(slot, gen, null, null, null);
    }, this.pollIntervalMs);
    this.startHealth(slot, gen);
  }

  private instanceDir(id: string): string {
    return path.join(this.stateDir, 'instances', id);
  }

  private async launch(slot: Slot): Promise<void> {
    if (this.closing || !slot.wanted) return;
    this.clearTimers(slot);
    slot.generation += 1;
    const gen = slot.generation;
    const d = slot.desired;
    const isRestart = slot.hasRun;
    slot.state = slot.crashLooping ? 'crashloop' : 'starting';
    slot.healthy = false;
    slot.everHealthy = false;
    let cwd: string;
    let port: number;
    let checkPort: number | null = null;
    let netns: string | null = null;
    try {
      cwd = await this.opts.resolvePackage(d.release);
      if (slot.generation !== gen) return;
      port = await this.choosePort(slot);
      if (slot.generation !== gen) return;
      slot.port = port;
      if (d.checkPort !== undefined && d.checkPort !== false) {
        checkPort = typeof d.checkPort === 'number' ? d.checkPort : await this.chooseCheckPort(slot, port);
        if (slot.generation !== gen) return;
        slot.checkPort = checkPort;
      }
      if (this.sandboxed(d)) {
        // A container left by a runc killed with its supervisor would hold the id (and the port).
        await this.sandbox?.remove(d.id);
        if (slot.generation !== gen) return;
      }
      if (d.network !== null) {
        // Unsandboxed, the unprivileged program reads its package in place; a sandbox mounts it.
        if (!this.sandboxed(d)) {
          const { uid, gid } = this.instanceUser;
          const problem = accessProblem(cwd, uid, gid);
          if (problem !== null) throw new Error(`package directory ${cwd} is not readable by uid ${uid}: ${problem}`);
        }
        netns = (await this.networks.addInstance({ ...d, network: d.network })).netns;
        if (slot.generation !== gen) return;
      }
    } catch (err) {
      if (slot.generation !== gen) return;
      const reason = err instanceof Error ? err.message : String(err);
      this.log.warn({ instance: d.id, release: d.release, err: reason }, 'instance could not be prepared');
      slot.hasRun = true;
      this.handleGone(slot, gen, null, null, `could not start: ${reason}`);
      return;
    }
    const dir = this.instanceDir(d.id);
    mkdirSync(dir, { recursive: true });
    const outFile = path.join(dir, 'stdout.log');
    const errFile = path.join(dir, 'stderr.log');
    rotateIfLarge(outFile, this.maxLogBytes);
    rotateIfLarge(errFile, this.maxLogBytes);
    const platformVars: Record<string, string> = {
      PORT: String(port),
      ...(checkPort === null ? {} : { CHECK_PORT: String(checkPort) }),
      HOST: d.network?.address ?? this.address,
      LANES_TENANT: d.tenant,
      LANES_ENV: d.environment,
      LANES_SERVICE: d.service,
      LANES_INSTANCE: d.id,
      LANES_ZONE: this.zone,
      LANES_RELEASE: d.release,
    };
    const env: Record<string, string> = { ...this.baseEnv, ...d.env, ...platformVars };
    let argv: string[];
    let spawnEnv: Record<string, string> = env;
    let spawnCwd = cwd;
    try {
      if (this.sandbox !== null && d.user !== undefined) {
        // The tenant's variables go into the sandbox's config only: runc itself runs with a clean environment.
        argv = this.sandbox.prepare({
          id: d.id,
          argv: d.argv,
          // Nothing of the supervisor's own environment (its HOME, its PATH) leaks in.
          env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/data', TMPDIR: '/tmp', ...(this.baseEnv.LANG ? { LANG: this.baseEnv.LANG } : {}), ...(this.baseEnv.TZ ? { TZ: this.baseEnv.TZ } : {}), ...d.env, ...platformVars, LANES_DATA_DIR: '/data' },
          packageDir: cwd,
          dataDir: path.join(dir, 'data'),
          netns,
          uid: d.user.uid,
          gid: d.user.gid,
          limits: d.limits ?? DEFAULT_LIMITS,
        });
        spawnEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
        spawnCwd = dir;
      } else {
        argv = netns === null ? [...d.argv] : this.namespacedArgv(netns, d.argv);
      }
    } catch (err) {
      slot.hasRun = true;
      this.handleGone(slot, gen, null, null, `could not start: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const [file, ...args] = argv;
    if (file === undefined) return; // parseDesiredList guarantees a program
    const outFd = openSync(outFile, 'a', 0o600);
    const errFd = openSync(errFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: spawnCwd, env: spawnEnv, detached: true, stdio: ['ignore', outFd, errFd] });
    } catch (err) {
      // Synchronous failures (e.g. an invalid argument) go through the normal exit path.
      slot.hasRun = true;
      this.handleGone(slot, gen, null, null, `could not start: ${err instanceof Error ? err.message : String(err)}`);
      return;
    } finally {
      closeSync(outFd);
      closeSync(errFd);
    }
    child.unref();
    if (isRestart) slot.restarts += 1;
    slot.hasRun = true;
    slot.port = port;
    if (child.pid === undefined) {
      // Spawning failed (ENOENT, EACCES...): reported asynchronously by 'error'.
      slot.pid = null;
      child.once('error', (err) => this.handleGone(slot, gen, null, null, `could not start: ${err.message}`));
      this.changed();
      return;
    }
    const pid = child.pid;
    slot.child = child;
    slot.pid = pid;
    slot.startTime = readProcStat(pid)?.startTime ?? null;
    slot.startedAtMs = Date.now();
    slot.startedAt = new Date(slot.startedAtMs).toISOString();
    slot.message = isRestart ? `restarted (restart ${slot.restarts})` : 'started';
    child.once('exit', (code, signal) => this.handleGone(slot, gen, code, signal, null));
    child.once('error', (err) => this.log.warn({ instance: d.id, err: err.message }, 'instance process error'));
    this.log.info({ instance: d.id, pid, port, ...(checkPort === null ? {} : { checkPort }), restarts: slot.restarts }, 'instance started');
    this.startHealth(slot, gen);
    this.changed();
  }

  /** A tenant instance on a sandboxing supervisor (the platform's own programs have no user). */
  private sandboxed(d: DesiredInstance): boolean {
    return this.sandbox !== null && d.user !== undefined;
  }

  /** `ip netns exec NS setpriv … argv`: the program runs in place (same pid), unprivileged. */
  private namespacedArgv(netns: string, argv: readonly string[]): string[] {
    this.tools ??= { ipPath: findTool('ip'), setprivPath: findTool('setpriv') };
    return execArgv(netns, argv, { ...this.instanceUser, ...this.tools });
  }

  private async choosePort(slot: Slot): Promise<number> {
    if (slot.desired.port !== null) return slot.desired.port;
    // The instance has its own address in its own namespace: every port there is free.
    if (slot.desired.network !== null) return DEFAULT_NETWORK_PORT;
    // Keep the port across restarts so routes stay valid; only a taken port is replaced.
    return this.pickPort(slot, slot.port, 'port', (port) => this.portTaken(slot, port));
  }

  /** CHECK_PORT: like PORT, a free port kept across restarts, never the instance's own PORT. */
  private async chooseCheckPort(slot: Slot, port: number): Promise<number> {
    if (slot.desired.network !== null) return networkCheckPort(port);
    return this.pickPort(slot, slot.checkPort, 'checkPort', (p) => p === slot.port || this.portTaken(slot, p));
  }

  /** A port another instance of ours has (as PORT or CHECK_PORT), bound or about to be. */
  private portTaken(slot: Slot, port: number): boolean {
    for (const s of this.slots.values()) if (s !== slot && (s.port === port || s.checkPort === port)) return true;
    return false;
  }

  /** `previous` when it is still free, else a fresh free port. Checked after each await: another instance may have been given it meanwhile. */
  private async pickPort(slot: Slot, previous: number | null, field: string, taken: (port: number) => boolean): Promise<number> {
    if (previous !== null && !taken(previous) && (await isPortFree(this.address, previous)) && !taken(previous)) return previous;
    // The kernel may hand out a port another instance was just given but has not bound yet.
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await findFreePort(this.address);
      if (!taken(port)) return port;
    }
    throw new Error(`${field}: no free port found on ${this.address} for ${slot.desired.id}`);
  }

  private startHealth(slot: Slot, gen: number): void {
    const d = slot.desired;
    let kind: ProbeKind | null = null;
    if (d.health !== null) kind = { kind: 'http', path: d.health.path };
    else if (d.listens) kind = { kind: 'tcp' };
    if (kind === null || slot.port === null) {
      // Without a check, a process counts as healthy once it has stayed up for a moment, so
      // one that dies at start-up never looks ready (a deploy of it must not pass).
      if (slot.healthy) return; // adopted and already known healthy
      slot.stableTimer = setTimeout(() => {
        if (slot.generation !== gen) return;
        slot.stableTimer = null;
        slot.healthy = true;
        slot.everHealthy = true;
        if (slot.state === 'starting') slot.state = 'running';
        if (slot.state === 'crashloop') {
          slot.stableTimer = setTimeout(() => {
            if (slot.generation !== gen) return;
            slot.stableTimer = null;
            slot.crashLooping = false;
            slot.state = 'running';
            slot.message = `running for ${seconds(this.policy.resetAfterMs)} after a crash loop`;
            this.changed();
          }, Math.max(0, this.policy.resetAfterMs - NO_CHECK_READY_MS));
        }
        this.changed();
      }, NO_CHECK_READY_MS);
      return;
    }
    // In an environment network the instance's firewall admits probes only from the supervisor link.
    const network = d.network;
    const localAddress = network === null ? null : this.networks.plan(network).supervisorAddress;
    slot.probe = new HealthProbe({
      address: network?.address ?? this.address,
      ...(localAddress === null ? {} : { localAddress }),
      port: slot.port,
      kind,
      spec: d.health ?? HEALTH_DEFAULTS,
      initialHealthy: slot.healthy,
      onChange: (healthy, reason) => {
        if (slot.generation !== gen) return;
        slot.healthy = healthy;
        if (healthy) {
          slot.everHealthy = true;
          slot.crashLooping = false;
          if (slot.state === 'starting' || slot.state === 'crashloop') slot.state = 'running';
          slot.message = `healthy: ${reason}`;
        } else {
          slot.message = `unhealthy: ${reason}`;
        }
        this.log.info({ instance: d.id, healthy, reason }, 'instance health changed');
        this.changed();
      },
    });
    slot.probe.start();
  }

  /**
   * The process of `slot` is gone (exit event, failed poll, failed start, or found gone at
   * start). Records why, then either completes a stop or schedules a restart by policy.
   * `reason` overrides the exit description.
   */
  private handleGone(slot: Slot, gen: number, code: number | null, signal: string | null, reason: string | null): void {
    if (slot.generation !== gen) return;
    const ranMs = slot.startedAtMs !== null && slot.pid !== null ? Date.now() - slot.startedAtMs : null;
    this.clearTimers(slot);
    slot.pid = null;
    slot.child = null;
    slot.startTime = null;
    slot.healthy = false;
    slot.lastExitCode = code;
    slot.lastExitSignal = signal;
    // runc killed (kill -9 of the reported pid, say) leaves its container running: it goes too.
    // (Any instance: a placeholder adopted after a restart does not know it was sandboxed; a missing container is fine.)
    if (this.sandbox !== null) void this.sandbox.remove(slot.desired.id);
    const waiters = slot.goneWaiters.splice(0);
    for (const w of waiters) w();
    if (slot.stopping !== null || this.closing || !slot.wanted) {
      this.changed();
      return;
    }
    const what = reason ?? exitText(code, signal);
    const decision = decideRestart(slot.history, this.policy, ranMs, Date.now(), Math.random());
    slot.history = decision.history;
    slot.crashLooping = decision.crashLooping;
    const last = signal !== null ? `last signal ${signal}` : code !== null ? `last exit code ${code}` : reason !== null ? `last: ${reason}` : 'last exit status unknown';
    if (decision.crashLooping) {
      slot.state = 'crashloop';
      slot.message = `crash-looping: exited ${decision.exitsInWindow} times within ${Math.round(this.policy.crashLoopWindowMs / 1000)}s (${last}); restarting in ${seconds(decision.delayMs)}`;
    } else {
      slot.state = 'backoff';
      slot.message = `${what}; restarting in ${seconds(decision.delayMs)}`;
    }
    this.log.warn({ instance: slot.desired.id, code, signal, reason: what, delayMs: decision.delayMs, crashLooping: decision.crashLooping }, 'instance exited');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      void this.launch(slot);
    }, decision.delayMs);
    this.changed();
  }

  private waitGone(slot: Slot, timeoutMs: number): Promise<boolean> {
    if (slot.pid === null) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        slot.goneWaiters = slot.goneWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      slot.goneWaiters.push(done);
    });
  }

  /** SIGTERM to the process group, SIGKILL after stopGraceMs; `remove` drops the slot afterwards. */
  private stopSlot(slot: Slot, remove: boolean, drainMs = 0): Promise<void> {
    if (slot.stopping !== null) return slot.stopping;
    const run = async (): Promise<void> => {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      slot.probe?.stop();
      slot.probe = null;
      if (drainMs > 0 && slot.pid !== null) {
        slot.state = 'stopping';
        slot.message = `draining: no new requests are routed to it; SIGTERM in ${seconds(drainMs)}`;
        this.changed();
        await new Promise((r) => setTimeout(r, drainMs));
      }
      const pid = slot.pid;
      if (pid === null) {
        // Nothing running (backoff, or a launch still resolving its package): cancel it.
        slot.generation += 1;
      } else {
        slot.state = 'stopping';
        slot.message = `stopping: SIGTERM sent, SIGKILL after ${seconds(slot.desired.stopGraceMs)}`;
        this.log.info({ instance: slot.desired.id, pid }, 'stopping instance');
        this.changed();
        this.signalGroup(pid, 'SIGTERM');
        if (!(await this.waitGone(slot, slot.desired.stopGraceMs))) {
          this.log.warn({ instance: slot.desired.id, pid, graceMs: slot.desired.stopGraceMs }, 'instance ignored SIGTERM; killing');
          if (this.sandbox !== null) await this.sandbox.kill(slot.desired.id, 'KILL');
          this.signalGroup(pid, 'SIGKILL');
          await this.waitGone(slot, this.killWaitMs);
          slot.message = `stopped: killed after ${seconds(slot.desired.stopGraceMs)} grace`;
        } else {
          slot.message = 'stopped';
        }
        // Leftover members of the group (children of the instance) go with it.
        this.signalGroup(pid, 'SIGKILL');
      }
      slot.state = 'stopped';
      slot.healthy = false;
    };
    slot.stopping = run().finally(() => {
      slot.stopping = null;
      if (slot.wanted && !this.closing) {
        void this.launch(slot);
      } else if (remove && !slot.wanted) {
        this.slots.delete(slot.desired.id);
        // Gone for good: its namespace goes too (never rejects; failures are retried).
        const network = slot.desired.network;
        if (network !== null) void this.networks.removeInstance(slot.desired.id, network);
      }
      this.changed();
    });
    return slot.stopping;
  }

  private signalGroup(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  }

  private clearTimers(slot: Slot): void {
    if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
    if (slot.pollTimer !== null) clearInterval(slot.pollTimer);
    if (slot.stableTimer !== null) clearTimeout(slot.stableTimer);
    slot.restartTimer = null;
    slot.pollTimer = null;
    slot.stableTimer = null;
    slot.probe?.stop();
    slot.probe = null;
  }

  // ---- state and notifications ----

  private persist(): void {
    const instances: InstanceRecord[] = [...this.slots.values()].map((s) => ({
      id: s.desired.id,
      pid: s.pid,
      startTime: s.startTime,
      port: s.port,
      checkPort: s.checkPort,
      restarts: s.restarts,
      startedAt: s.startedAt,
      healthy: s.healthy,
      everHealthy: s.everHealthy,
      lastExitCode: s.lastExitCode,
      lastExitSignal: s.lastExitSignal,
      message: s.message,
      history: s.history,
      network: s.desired.network,
    }));
    try {
      writeStateFile(this.stateFile, { version: 1, desired: this.desired, instances, networks: this.networkList });
    } catch (err) {
      this.log.error({ err, stateFile: this.stateFile }, 'state file write failed');
    }
  }

  private changed(): void {
    if (!this.started) return;
    this.persist();
    if (this.listeners.size === 0) return;
    const snapshot = this.observed();
    for (const l of this.listeners) {
      try {
        l(snapshot);
      } catch (err) {
        this.log.error({ err }, 'change listener failed');
      }
    }
  }
}
