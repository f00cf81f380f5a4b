/**
 * `lanes up`: the launcher. Starts the control plane, one zone supervisor per zone, the
 * gateway and the DNS server as separate, detached processes (own process groups, logs appended to
 * LANES_HOME/logs/<name>.log), waits for each to be ready, records them in context.json,
 * then supervises: a component that exits unexpectedly is restarted with backoff
 * (1 s doubling to 30 s). Ctrl-C / SIGTERM stop the platform as `lanes down` does.
 * `--detach` re-spawns the launcher in the background and returns once it is ready.
 * Isolation: `--isolation auto` (default) runs environments on private networks when the
 * host can (root, iproute2, nftables), else warns once and runs them on loopback; with
 * private networks, every `lanes-` namespace, link and nftables table is removed before a
 * start (a crashed run's) and after a stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, statSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { detectIsolation } from '@lanes/network';
import { checkName, MAX_EDGE_CIDRS, parseCidrBlock, parseZones } from '@lanes/spec';
import { ApiClient } from './api.js';
import { parseCommandArgs, expectPositionals, parseIntArg } from './args.js';
import { CliError, UsageError } from './errors.js';
import { printUsage, usageOf } from './help.js';
import { ensureDir, homePaths, readComponentState, readContext, readJson, writeJsonAtomic, type CliConfig, type LanesContext } from './home.js';
import type { Io } from './io.js';
import { decodeEnvironment, decodeTenant } from './model.js';
import { isAlive, isLauncher, sleep } from './procs.js';
import {
  describeRemoved,
  isolationSummary,
  isolationWarning,
  parseIsolationRequest,
  parseNetworkCidr,
  removeNetworkObjects,
  resolveIsolation,
  type IsolationRequest,
  type ResolvedIsolation,
} from './network.js';
import { deployAndFollow, envPath, loadPackage } from './rollout.js';
import { stopPlatform } from './stop.js';

export interface UpOptions {
  readonly httpPort: number;
  readonly apiPort: number;
  /** UDP and TCP port of the platform's authoritative DNS server. @default 8053 */
  readonly dnsPort: number;
  /** The gateway's HTTPS port (TLS 1.2/1.3, certificates by SNI). @default 8443 */
  readonly httpsPort: number;
  /** The range platform TCP ports of `tcp: true` services come from. @default '30000-30999' */
  readonly tcpPorts: string;
  readonly zones: readonly string[];
  readonly domain: string;
  readonly demo: boolean;
  readonly detach: boolean;
  /** auto: private networks when the host supports them. @default 'auto' */
  readonly isolation: IsolationRequest;
  /** The platform CIDR environments' subnets come from (netns). @default '10.88.0.0/16' */
  readonly networkCidr: string;
  /**
   * How tenant instances are contained: `runc` sandboxes (root only), `none` (plain processes),
   * `auto`: runc when root. @default 'auto'
   */
  readonly sandbox: 'auto' | 'runc' | 'none';
  /**
   * CIDR blocks of proxies in front of the gateway whose X-Forwarded-For chain it keeps (its
   * `--trusted-proxies`), normalized. @default [] (the peer is always the client)
   */
  readonly trustedProxies: readonly string[];
  /** Internal: this process is the background launcher `--detach` spawned. */
  readonly launcherChild: boolean;
  /** Internal: why `--isolation` is what it is, decided by the foreground `up --detach`. */
  readonly isolationReason: string | null;
}

const DOMAIN_RE = /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * `--trusted-proxies 10.0.0.0/8,192.168.1.5` (a bare address is one host; '' or none: no
 * proxy), checked and normalized as the gateway's flag of the same name does (spec's
 * parseCidrBlock), so that a bad block fails here with one line instead of in the gateway.
 */
export function parseTrustedProxiesArg(value: string | undefined): readonly string[] {
  const text = (value ?? '').trim();
  if (text === '' || text === 'none') return [];
  const items = text.split(',').map((s) => s.trim());
  if (items.length > MAX_EDGE_CIDRS) throw new UsageError(`--trusted-proxies: ${items.length} blocks; use at most ${MAX_EDGE_CIDRS}`);
  const out: string[] = [];
  for (const item of items) {
    let block: string;
    try {
      block = parseCidrBlock('--trusted-proxies', item).text;
    } catch (err) {
      throw new UsageError((err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '--trusted-proxies: not a list of CIDRs');
    }
    if (!out.includes(block)) out.push(block);
  }
  return out;
}

export function parseUpArgs(argv: readonly string[]): UpOptions | 'help' {
  const args = parseCommandArgs('up', argv, {
    'http-port': { type: 'string' },
    'api-port': { type: 'string' },
    'dns-port': { type: 'string' },
    'https-port': { type: 'string' },
    'tcp-ports': { type: 'string' },
    zones: { type: 'string' },
    domain: { type: 'string' },
    demo: { type: 'boolean' },
    detach: { type: 'boolean' },
    isolation: { type: 'string' },
    'network-cidr': { type: 'string' },
    sandbox: { type: 'string' },
    'trusted-proxies': { type: 'string' },
    'launcher-child': { type: 'boolean' },
    'isolation-reason': { type: 'string' },
  });
  if (args.help) return 'help';
  expectPositionals('up', args.positionals, 0, 0, usageOf('up'));
  const v = args.values;
  const domain = (v.domain ?? 'lanes.localhost').toLowerCase();
  if (!DOMAIN_RE.test(domain)) throw new UsageError(`--domain: ${JSON.stringify(v.domain)} is not a domain name, e.g. lanes.localhost`);
  let zones: string[];
  try {
    zones = parseZones(v.zones ?? 'a,b,c');
  } catch (err) {
    throw new UsageError(`--zones: ${(err instanceof Error ? err.message : String(err)).replace(/^zones(\[\d+\])?: /, '')}`);
  }
  const httpPort = parseIntArg('--http-port', v['http-port'] ?? '8080', 1, 65535);
  const apiPort = parseIntArg('--api-port', v['api-port'] ?? '7070', 1, 65535);
  if (httpPort === apiPort) throw new UsageError(`--http-port and --api-port are both ${httpPort}; give them different ports`);
  const dnsPort = parseIntArg('--dns-port', v['dns-port'] ?? '8053', 1, 65535);
  if (dnsPort === httpPort || dnsPort === apiPort) throw new UsageError(`--dns-port ${dnsPort} is also --${dnsPort === httpPort ? 'http' : 'api'}-port; give it its own port`);
  const httpsPort = parseIntArg('--https-port', v['https-port'] ?? '8443', 1, 65535);
  if (httpsPort === httpPort || httpsPort === apiPort || httpsPort === dnsPort) {
    throw new UsageError(`--https-port ${httpsPort} is also --${httpsPort === httpPort ? 'http' : httpsPort === apiPort ? 'api' : 'dns'}-port; give it its own port`);
  }
  const tcpPorts = v['tcp-ports'] ?? process.env['LANES_TCP_PORTS'] ?? '30000-30999';
  const range = /^(\d{1,5})-(\d{1,5})$/.exec(tcpPorts);
  if (range === null || Number(range[1]) < 1 || Number(range[2]) > 65535 || Number(range[1]) > Number(range[2])) {
    throw new UsageError(`--tcp-ports: ${JSON.stringify(tcpPorts)} is not a port range like 30000-30999`);
  }
  const isolation = parseIsolationRequest(v.isolation);
  const sandbox = v.sandbox ?? 'auto';
  if (sandbox !== 'auto' && sandbox !== 'runc' && sandbox !== 'none') throw new UsageError(`--sandbox: ${JSON.stringify(v.sandbox)} should be auto, runc or none`);
  const networkCidr = parseNetworkCidr(v['network-cidr'], isolation, zones);
  const trustedProxies = parseTrustedProxiesArg(v['trusted-proxies']);
  return {
    httpPort,
    apiPort,
    dnsPort,
    httpsPort,
    tcpPorts,
    zones,
    domain,
    demo: v.demo === true,
    detach: v.detach === true,
    isolation,
    networkCidr,
    sandbox,
    trustedProxies,
    launcherChild: v['launcher-child'] === true,
    isolationReason: v['launcher-child'] === true ? (v['isolation-reason'] ?? null) : null,
  };
}

/** The URL the gateway is reached at: the domain when it resolves to loopback by itself. */
export function gatewayBaseUrl(domain: string, httpPort: number): string {
  const loopbackName = domain === 'localhost' || domain.endsWith('.localhost');
  return `http://${loopbackName ? domain : '127.0.0.1'}:${httpPort}`;
}

export async function upCommand(config: CliConfig, io: Io, argv: readonly string[]): Promise<number> {
  const opts = parseUpArgs(argv);
  if (opts === 'help') return printUsage(io, 'up');
  const paths = homePaths(config.home);
  await ensureDir(config.home);
  await chmod(config.home, 0o700);
  await ensureDir(paths.logs);
  await refuseIfRunning(config.home);
  // Decided once, here: `netns` asked for on a host that cannot do it fails before anything starts.
  let isolation: ResolvedIsolation =
    opts.isolationReason !== null && opts.isolation !== 'auto'
      ? { mode: opts.isolation, reason: opts.isolationReason }
      : await resolveIsolation(opts.isolation, opts.zones);
  // As root every tenant instance runs in a runc sandbox that sees its package through a
  // mount: LANES_HOME stays 0700. The tools are checked here, before anything starts.
  const root = process.getuid?.() === 0;
  if (opts.sandbox === 'runc' && !root) throw new CliError('--sandbox runc: sandboxes need root; run as root or use --sandbox none');
  const sandboxed = root && opts.sandbox !== 'none';
  if (root && opts.sandbox === 'none' && !opts.launcherChild) io.err('lanes: --sandbox none: tenant instances run as plain processes of the supervisors, as root without a network namespace (for benchmarks and debugging, never for tenants)');
  if (sandboxed) {
    const missing = ['runc', 'tini'].filter((t) => !['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'].some((d) => existsSync(`${d}/${t}`)));
    if (!existsSync('/usr/share/containers/seccomp.json')) missing.push('golang-github-containers-common');
    if (missing.length > 0) throw new CliError(`as root, instances run in runc sandboxes: install ${missing.join(', ')} (apt-get install runc tini golang-github-containers-common)`);
  } else if (!root && !opts.launcherChild) {
    io.err('lanes: not root: instances run as processes of the invoking user, without sandboxes');
  }
  // Without sandboxes, isolated instances run unprivileged and must reach their package below
  // LANES_HOME (root's default ~/.lanes sits in /root, mode 0700): auto falls back, netns refuses.
  const blocked = isolation.mode === 'netns' && !sandboxed ? unsearchableAncestor(config.home) : null;
  if (blocked !== null) {
    const why = `instances run unprivileged and cannot reach ${config.home} (${blocked}); use a LANES_HOME such as /var/lib/lanes`;
    if (opts.isolation === 'netns') throw new CliError(`--isolation netns: ${why}`);
    isolation = { mode: 'none', reason: why };
  }
  // With netns, instances run unprivileged and read their package below LANES_HOME/zones:
  // search (not read) permission for others; every file with a secret inside stays 0600.
  if (isolation.mode === 'netns' && !sandboxed) await chmod(config.home, 0o711);
  if (opts.detach) return startDetached(config, io, opts, isolation);
  const launcher = new Launcher(config.home, io, opts, isolation);
  return launcher.run();
}

async function refuseIfRunning(home: string): Promise<void> {
  const ctx = await readContext(home);
  if (ctx !== null && ctx.launcherPid !== process.pid && isLauncher(ctx.launcherPid)) {
    throw new CliError(`the platform is already running (pid ${ctx.launcherPid}); run lanes down first`);
  }
}

function binPath(): string {
  return fileURLToPath(new URL('../bin/lanes.js', import.meta.url));
}

/** Resolves a component's entry (`@lanes/<pkg>/main`) and checks it has been built. */
function componentEntry(pkg: 'controlplane' | 'agent' | 'gateway' | 'dns'): string {
  const specifier = `@lanes/${pkg}/main`;
  let file: string;
  try {
    file = fileURLToPath(import.meta.resolve(specifier));
  } catch {
    throw new CliError(`cannot find ${specifier}; build the workspace first (npm run build)`);
  }
  if (!existsSync(file)) throw new CliError(`${specifier} is not built (no ${file}); build the workspace first (npm run build)`);
  return file;
}

/** `--detach`: start the launcher in the background and mirror its progress until it is ready. */
async function startDetached(config: CliConfig, io: Io, opts: UpOptions, isolation: ResolvedIsolation): Promise<number> {
  const paths = homePaths(config.home);
  const logFile = paths.log('launcher');
  let offset = 0;
  try {
    offset = statSync(logFile).size;
  } catch {
    /* new log */
  }
  const args = [
    binPath(),
    'up',
    '--http-port', String(opts.httpPort),
    '--api-port', String(opts.apiPort),
    '--dns-port', String(opts.dnsPort),
    '--https-port', String(opts.httpsPort),
    '--tcp-ports', opts.tcpPorts,
    '--zones', opts.zones.join(','),
    '--domain', opts.domain,
    ...(opts.demo ? ['--demo'] : []),
    '--isolation', isolation.mode,
    ...(isolation.mode === 'netns' ? ['--network-cidr', opts.networkCidr] : []),
    '--sandbox', opts.sandbox,
    ...(opts.trustedProxies.length > 0 ? ['--trusted-proxies', opts.trustedProxies.join(',')] : []),
    '--launcher-child',
    `--isolation-reason=${isolation.reason}`, // `=`: the reason may start with "--"
  ];
  const fd = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, LANES_HOME: config.home } });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new CliError(`cannot start the launcher in the background (${process.execPath})`);
  let exitCode: number | null = null;
  child.on('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : 1);
  });
  child.unref();

  const mirror = (): void => {
    try {
      const text = readFileSync(logFile).subarray(offset);
      const end = text.lastIndexOf(10); // only whole lines
      if (end < 0) return;
      offset += end + 1;
      for (const line of text.subarray(0, end).toString('utf8').split('\n')) {
        if (line.startsWith('warning: ')) io.err(line);
        else if (!line.startsWith('lanes: ')) io.line(line); // the failure itself goes to stderr below
      }
    } catch {
      /* no log yet */
    }
  };
  const waitMs = opts.demo ? 300_000 : 180_000;
  const deadline = Date.now() + waitMs;
  for (;;) {
    await sleep(150);
    mirror();
    const ctx = await readContext(config.home);
    if (ctx !== null && ctx.launcherPid === pid) {
      if (ctx.state === 'ready') {
        await sleep(50);
        mirror();
        io.line(`the launcher runs in the background (pid ${pid}, log ${logFile}); stop the platform with lanes down`);
        return 0;
      }
      if (ctx.state === 'failed') {
        await waitGone(pid, 15_000);
        mirror();
        await rm(paths.context, { force: true });
        throw new CliError(ctx.message ?? `the platform did not start; see ${logFile}`);
      }
    }
    if (exitCode !== null || !isAlive(pid)) {
      mirror();
      throw new CliError(`the launcher exited${exitCode !== null ? ` with code ${exitCode}` : ''} before the platform was ready; see ${logFile}`);
    }
    if (Date.now() > deadline) {
      throw new CliError(`the platform was not ready within ${waitMs / 1000}s; see ${logFile}, then run lanes down`);
    }
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
}

type ComponentKind = 'controlplane' | 'agent' | 'gateway' | 'dns';

interface Component {
  readonly key: string; // controlplane | gateway | agent-<zone>
  readonly label: string; // "control plane", "zone a supervisor", "gateway"
  readonly kind: ComponentKind;
  readonly zone: string | null;
  readonly argv: readonly string[];
  readonly logName: string;
  readonly readyTimeoutMs: number;
  child: ChildProcess | null;
  pid: number | null;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  startedAtMs: number;
  failures: number;
  restartTimer: NodeJS.Timeout | null;
  /** Has been ready once: from then on an exit means a restart, even while others start. */
  wasReady: boolean;
}

/** @default 1000, doubling to 30000; reset once a component stayed up this long. */
const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
const STABLE_AFTER_MS = 60_000;

/** The foreground (or background, with --detach) launcher process. */
class Launcher {
  readonly #home: string;
  readonly #io: Io;
  readonly #opts: UpOptions;
  readonly #isolation: ResolvedIsolation;
  readonly #paths: ReturnType<typeof homePaths>;
  readonly #components: Component[] = [];
  #ctx: LanesContext;
  /** No more restarts: the platform is being stopped (by a signal, a failed start or `lanes down`). */
  #stopping = false;
  #signalled = false;
  #writes: Promise<void> = Promise.resolve();
  #done: (code: number) => void = () => undefined;

  constructor(home: string, io: Io, opts: UpOptions, isolation: ResolvedIsolation) {
    this.#home = home;
    this.#io = io;
    this.#opts = opts;
    this.#isolation = isolation;
    this.#paths = homePaths(home);
    this.#ctx = {
      state: 'starting',
      message: null,
      apiUrl: null,
      gatewayUrl: null,
      domain: opts.domain,
      httpPort: opts.httpPort,
      zones: opts.zones,
      launcherPid: process.pid,
      components: { controlplane: null, gateway: null, dns: null, agents: {} },
      startedAt: new Date().toISOString(),
      isolation: isolation.mode,
      networkCidr: isolation.mode === 'netns' ? opts.networkCidr : null,
      downZones: [],
    };
  }

  /** Stops what was started and, with private networks, removes them (a failed start, a signal). */
  async #stopAll(): Promise<string[]> {
    const stopped = await stopPlatform(this.#home, this.#io, { selfPid: process.pid });
    if (this.#isolation.mode === 'netns') {
      try {
        const removed = describeRemoved(await removeNetworkObjects());
        if (removed !== null) {
          this.#io.line(`removed the platform's network objects: ${removed}`);
          stopped.push('network');
        }
      } catch (err) {
        this.#io.line(err instanceof Error ? err.message : String(err));
      }
    }
    return stopped;
  }

  async run(): Promise<number> {
    // Signal handlers do not keep Node alive: without this, a launcher whose components
    // were all stopped by `lanes down` would exit before down's SIGTERM reaches it.
    const keepAlive = setInterval(() => undefined, 3_600_000);
    const finished = new Promise<number>((resolve) => (this.#done = resolve)).finally(() => clearInterval(keepAlive));
    const onSignal = (signal: NodeJS.Signals): void => void this.#onSignal(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    try {
      await this.#start();
    } catch (err) {
      if (this.#stopping) return finished; // a signal arrived mid-start; its handler finishes
      const message = err instanceof Error ? err.message : String(err);
      this.#stopping = true;
      this.#io.line('start failed; stopping what was started');
      await this.#stopAll();
      clearInterval(keepAlive);
      if (this.#opts.launcherChild) {
        // The foreground `up --detach` reads the reason from here, then removes the file.
        await writeJsonAtomic(this.#paths.context, { ...this.#ctx, state: 'failed', message });
      }
      throw err instanceof CliError ? err : new CliError(message);
    }
    return finished;
  }

  async #onSignal(signal: NodeJS.Signals): Promise<void> {
    if (this.#signalled) return;
    this.#signalled = true;
    this.#stopping = true;
    for (const c of this.#components) if (c.restartTimer) clearTimeout(c.restartTimer);
    const onDisk = await readContext(this.#home);
    if (onDisk !== null && onDisk.launcherPid === process.pid && onDisk.state === 'stopping') {
      // `lanes down` is stopping the platform and signalled us last: nothing left to do.
      this.#io.line(`${stamp()} the platform was stopped by lanes down`);
      this.#done(0);
      this.#exitSoon(0);
      return;
    }
    this.#io.line(`${stamp()} ${signal}: stopping the platform`);
    const stopped = await this.#stopAll();
    this.#io.line(stopped.length > 0 ? 'the platform is stopped' : 'nothing was running');
    this.#done(0);
    this.#exitSoon(0);
  }

  /** A start sequence may still be waiting on timers; the launcher's work is over. */
  #exitSoon(code: number): void {
    setTimeout(() => process.exit(code), 100).unref();
  }

  async #start(): Promise<void> {
    const paths = this.#paths;
    if (this.#isolation.mode === 'none') this.#io.err(isolationWarning(this.#isolation.reason));
    const previous = await readContext(this.#home);
    if (previous !== null) {
      this.#io.line(`cleaning up after a previous run (launcher pid ${previous.launcherPid} is gone)…`);
    }
    // Leftovers of a crashed run: components and instances still running, stale state files.
    await stopPlatform(this.#home, previous === null ? silentIo() : this.#io, { selfPid: process.pid });
    for (const file of [paths.controlplaneState, paths.gatewayState, paths.dnsState, ...this.#opts.zones.map((z) => paths.agentState(z))]) {
      await rm(file, { force: true });
    }
    if (this.#isolation.mode === 'netns') {
      // A crashed run's namespaces, links and tables (and what still runs inside) would clash.
      const removed = describeRemoved(await removeNetworkObjects());
      if (removed !== null) this.#io.line(`removed network objects left by a previous run: ${removed}`);
    }
    await ensureDir(paths.gatewayDir);
    await ensureDir(paths.dnsDir);
    await ensureDir(paths.zones);
    for (const zone of this.#opts.zones) await ensureDir(paths.zoneDir(zone));
    if (this.#isolation.mode === 'netns') {
      for (const dir of [paths.zones, ...this.#opts.zones.map((z) => paths.zoneDir(z))]) await chmod(dir, 0o711);
    }
    await this.#writeContext();

    const cpEntry = componentEntry('controlplane');
    const agentEntry = componentEntry('agent');
    const gatewayEntry = componentEntry('gateway');
    const dnsEntry = componentEntry('dns');
    const gatewayUrl = gatewayBaseUrl(this.#opts.domain, this.#opts.httpPort);

    const cp = this.#component('controlplane', 'control plane', null, 'controlplane', 60_000, [
      cpEntry,
      '--home', this.#home,
      '--api-port', String(this.#opts.apiPort),
      '--host', '127.0.0.1',
      '--domain', this.#opts.domain,
      '--zones', this.#opts.zones.join(','),
      '--gateway-url', gatewayUrl,
      '--tcp-ports', this.#opts.tcpPorts,
      '--isolation', this.#isolation.mode,
      ...(this.#isolation.mode === 'netns' ? ['--network-cidr', this.#opts.networkCidr] : []),
    ]);
    const apiUrl = await this.#startAndWait(cp);
    this.#ctx = { ...this.#ctx, apiUrl };
    await this.#writeContext();

    for (const zone of this.#opts.zones) {
      const agent = this.#component('agent', `zone ${zone} supervisor`, zone, `agent-${zone}`, 30_000, [
        agentEntry,
        '--zone', zone,
        '--api', apiUrl,
        '--token-file', paths.nodeToken,
        '--state-dir', paths.zoneDir(zone),
        '--address', '127.0.0.1',
        '--port', '0',
        '--sandbox', this.#opts.sandbox,
      ]);
      await this.#startAndWait(agent);
    }

    const gw = this.#component('gateway', 'gateway', null, 'gateway', 30_000, [
      gatewayEntry,
      '--http-port', String(this.#opts.httpPort),
      '--https-port', String(this.#opts.httpsPort),
      '--host', '127.0.0.1',
      '--api', apiUrl,
      '--token-file', paths.nodeToken,
      '--state-dir', paths.gatewayDir,
      '--admin-port', '0',
      ...(this.#opts.trustedProxies.length > 0 ? ['--trusted-proxies', this.#opts.trustedProxies.join(',')] : []),
    ]);
    await this.#startAndWait(gw);
    this.#ctx = { ...this.#ctx, gatewayUrl };
    await this.#writeContext();

    // The platform's authoritative DNS: it answers from its last zone even before the
    // control plane streams one, and keeps answering while the control plane is away.
    const dns = this.#component('dns', 'dns server', null, 'dns', 30_000, [
      dnsEntry,
      '--port', String(this.#opts.dnsPort),
      '--host', '127.0.0.1',
      '--api', apiUrl,
      '--token-file', paths.nodeToken,
      '--state-dir', paths.dnsDir,
    ]);
    await this.#startAndWait(dns);

    const port = this.#opts.httpPort;
    this.#io.line('');
    this.#io.line(`API          ${apiUrl}`);
    this.#io.line(`gateway      http://<env>.<tenant>.${this.#opts.domain}:${port}/`);
    this.#io.line(`https        https://<env>.<tenant>.${this.#opts.domain}:${this.#opts.httpsPort}/ (trust the platform CA: lanes ca --out ca.pem)`);
    this.#io.line(`dns          udp+tcp 127.0.0.1:${this.#opts.dnsPort} (dig @127.0.0.1 -p ${this.#opts.dnsPort} <env>.<tenant>.${this.#opts.domain})`);
    const metricsUrl = readAdminUrl(paths.gatewayState);
    if (metricsUrl !== null) this.#io.line(`metrics      ${metricsUrl}/metrics (Prometheus text; bearer: the node token)`);
    this.#io.line(`admin token  ${paths.adminToken}`);
    this.#io.line(`isolation    ${isolationSummary(this.#isolation.mode, this.#opts.networkCidr)}`);
    if (this.#opts.demo) await this.#demo(apiUrl);
    if (this.#stopping) throw new CliError('stopped while starting');
    this.#ctx = { ...this.#ctx, state: 'ready' };
    await this.#writeContext();
    if (!this.#opts.launcherChild) this.#io.line('the platform is running; Ctrl-C (or lanes down) stops it');
  }

  #component(kind: ComponentKind, label: string, zone: string | null, logName: string, readyTimeoutMs: number, argv: string[]): Component {
    const c: Component = {
      key: zone === null ? kind : `agent-${zone}`,
      label,
      kind,
      zone,
      argv,
      logName,
      readyTimeoutMs,
      child: null,
      pid: null,
      exited: null,
      startedAtMs: 0,
      failures: 0,
      restartTimer: null,
      wasReady: false,
    };
    this.#components.push(c);
    return c;
  }

  #spawn(c: Component): number {
    const fd = openSync(this.#paths.log(c.logName), 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...c.argv], { detached: true, stdio: ['ignore', fd, fd], env: componentEnv() });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new CliError(`cannot start the ${c.label} (${process.execPath})`);
    const pid = child.pid;
    c.child = child;
    c.pid = pid;
    c.exited = null;
    c.startedAtMs = Date.now();
    child.on('error', () => undefined); // spawn errors surface as an exit too
    child.on('exit', (code, signal) => {
      if (c.pid !== pid) return;
      c.exited = { code, signal };
      void this.#onExit(c, pid);
    });
    this.#recordPid(c, pid);
    return pid;
  }

  #recordPid(c: Component, pid: number): void {
    const comps = this.#ctx.components;
    this.#ctx = {
      ...this.#ctx,
      components:
        c.kind === 'agent' && c.zone !== null
          ? { ...comps, agents: { ...comps.agents, [c.zone]: pid } }
          : c.kind === 'controlplane'
            ? { ...comps, controlplane: pid }
            : c.kind === 'dns'
              ? { ...comps, dns: pid }
              : { ...comps, gateway: pid },
    };
  }

  /** Starts a component, prints `starting X… ready (0.8s)`; answers its URL. */
  async #startAndWait(c: Component): Promise<string> {
    const t0 = Date.now();
    this.#io.write(`starting ${c.label}… `);
    try {
      const pid = this.#spawn(c);
      await this.#writeContext();
      const url = await this.#waitReady(c, pid);
      c.wasReady = true;
      this.#io.line(`ready (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
      return url;
    } catch (err) {
      this.#io.line('failed');
      throw err;
    }
  }

  async #waitReady(c: Component, pid: number): Promise<string> {
    const deadline = Date.now() + c.readyTimeoutMs;
    const stateFile =
      c.kind === 'controlplane'
        ? this.#paths.controlplaneState
        : c.kind === 'gateway'
          ? this.#paths.gatewayState
          : c.kind === 'dns'
            ? this.#paths.dnsState
            : this.#paths.agentState(c.zone ?? '');
    for (;;) {
      if (this.#stopping) throw new CliError('stopped while starting');
      if (c.pid !== pid || c.exited !== null) {
        const how = c.exited?.signal ? `was killed by ${c.exited.signal}` : `exited with code ${c.exited?.code ?? '?'}`;
        throw new CliError(`the ${c.label} ${how} before it was ready; see ${this.#paths.log(c.logName)}${lastLogLine(this.#paths.log(c.logName))}`);
      }
      const state = await readComponentState(stateFile);
      if (state !== null && state.pid === pid) {
        if (c.kind !== 'controlplane') return state.url ?? '';
        if (state.url !== null && (await healthy(state.url))) return state.url.replace(/\/+$/, '');
      }
      if (Date.now() > deadline) {
        throw new CliError(`the ${c.label} was not ready within ${c.readyTimeoutMs / 1000}s; see ${this.#paths.log(c.logName)}${lastLogLine(this.#paths.log(c.logName))}`);
      }
      await sleep(100);
    }
  }

  async #onExit(c: Component, pid: number): Promise<void> {
    if (this.#stopping || !c.wasReady) return; // failures before the first ready are handled by #waitReady
    const onDisk = await readContext(this.#home);
    if (onDisk === null || onDisk.state === 'stopping' || onDisk.launcherPid !== process.pid) {
      this.#stopping = true; // `lanes down` is at work: do not fight it
      return;
    }
    if (Date.now() - c.startedAtMs > STABLE_AFTER_MS) c.failures = 0;
    // The first restart after a stable run is immediate (a zone supervisor back within the
    // control plane's heartbeat grace is a blip, not a zone loss); repeated ones back off.
    const delayMs = c.failures === 0 ? 0 : Math.min(BACKOFF_START_MS * 2 ** (c.failures - 1), BACKOFF_MAX_MS);
    c.failures++;
    const how = c.exited?.signal ? `killed by ${c.exited.signal}` : `exit code ${c.exited?.code ?? '?'}`;
    this.#io.line(`${stamp()} ${c.label} (pid ${pid}) exited unexpectedly (${how}); restarting in ${delayMs / 1000}s`);
    c.restartTimer = setTimeout(() => void this.#restart(c), delayMs);
  }

  async #restart(c: Component): Promise<void> {
    c.restartTimer = null;
    if (this.#stopping) return;
    const onDisk = await readContext(this.#home);
    if (onDisk === null || onDisk.state === 'stopping') {
      this.#stopping = true;
      return;
    }
    let pid: number;
    try {
      pid = this.#spawn(c);
    } catch (err) {
      this.#io.line(`${stamp()} cannot restart the ${c.label}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    await this.#writeContext();
    this.#io.line(`${stamp()} restarted the ${c.label} (pid ${pid})`);
    try {
      await this.#waitReady(c, pid);
      this.#io.line(`${stamp()} the ${c.label} (pid ${pid}) is ready again`);
    } catch (err) {
      if (!this.#stopping) this.#io.line(`${stamp()} ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Writes context.json, in order, unless `lanes down` has taken over. `downZones` belongs to
   * `lanes zone down|up`: the file's value is kept, never the launcher's.
   */
  #writeContext(): Promise<void> {
    const snapshot = this.#ctx;
    this.#writes = this.#writes.then(async () => {
      const onDisk = await readContext(this.#home);
      if (snapshot.state !== 'starting' && onDisk !== null && onDisk.state === 'stopping') return;
      const downZones = onDisk !== null && onDisk.launcherPid === process.pid ? onDisk.downZones : [];
      await writeJsonAtomic(this.#paths.context, { ...snapshot, downZones });
    });
    return this.#writes;
  }

  /** `--demo`: tenant demo, environment demo/prod (lane double), examples/hello deployed. */
  async #demo(apiUrl: string): Promise<void> {
    const token = readFileSync(this.#paths.adminToken, 'utf8').trim();
    const api = new ApiClient(apiUrl, token);
    const tenant = checkName('tenant', 'demo');
    const environment = checkName('environment', 'prod');
    this.#io.line('');
    const tenants = (await api.get('/v1/tenants')) ?? {};
    const items = typeof tenants === 'object' && 'items' in tenants && Array.isArray(tenants.items) ? tenants.items : [];
    if (!items.some((t) => decodeTenant(t).name === tenant)) {
      await api.request('POST', '/v1/tenants', { json: { name: tenant } });
      this.#io.line(`created tenant ${tenant}`);
    }
    const envs = (await api.get(`/v1/tenants/${tenant}/environments`)) ?? {};
    const envItems = typeof envs === 'object' && 'items' in envs && Array.isArray(envs.items) ? envs.items : [];
    if (!envItems.some((e) => decodeEnvironment(e).name === environment)) {
      await api.request('POST', `/v1/tenants/${tenant}/environments`, { json: { name: environment, lane: 'double' } });
      this.#io.line(`created environment ${tenant}/${environment} (lane double)`);
    }
    const example = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
    const pkg = await loadPackage(example);
    this.#io.line(`deploying ${example}…`);
    await deployAndFollow(api, this.#io, tenant, environment, pkg, 120_000);
    const env = decodeEnvironment(await api.get(envPath(tenant, environment)));
    this.#io.line(`demo         ${env.url || `http://${environment}.${tenant}.${this.#opts.domain}:${this.#opts.httpPort}/`}`);
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/healthz`, { signal: AbortSignal.timeout(1_000) });
    await res.text().catch(() => '');
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The components get the launcher's environment without the CLI's own overrides. */
/** The gateway's admin listener (`/metrics`) from its ready file, if it has one. */
function readAdminUrl(file: string): string | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { adminUrl?: unknown };
    return typeof v.adminUrl === 'string' ? v.adminUrl : null;
  } catch {
    return null;
  }
}

function componentEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['LANES_API_URL'];
  delete env['LANES_TOKEN'];
  // Set by `node --test` for its children; a component (and its cluster workers) is none.
  delete env['NODE_TEST_CONTEXT'];
  return env;
}

/** `; last log line: …` from a component's log (pino JSON or plain), to make failures readable. */
function lastLogLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const last = lines[lines.length - 1]?.trim();
    if (!last) return '';
    let text = last;
    try {
      const v: unknown = JSON.parse(last);
      if (typeof v === 'object' && v !== null && 'msg' in v && typeof v.msg === 'string') {
        const err = 'err' in v && typeof v.err === 'object' && v.err !== null && 'message' in v.err ? String(v.err.message) : '';
        text = err ? `${v.msg}: ${err}` : v.msg;
      }
    } catch {
      /* plain text */
    }
    return `; last log line: ${text.slice(0, 300)}`;
  } catch {
    return '';
  }
}

/** The first directory above `dir` that others cannot search ("/root is mode 0700"), or null. */
function unsearchableAncestor(dir: string): string | null {
  const parts = dir.split('/').filter((p) => p !== '');
  for (let i = 0; i < parts.length; i++) {
    const current = `/${parts.slice(0, i).join('/')}`;
    try {
      const mode = statSync(current).mode;
      if ((mode & 0o001) === 0) return `${current} is mode ${(mode & 0o7777).toString(8).padStart(4, '0')}`;
    } catch {
      return `${current} cannot be read`;
    }
  }
  return null;
}

function stamp(): string {
  return new Date().toISOString();
}

function silentIo(): Io {
  return { write: () => undefined, line: () => undefined, err: () => undefined };
}

/** `lanes down` */
export async function downCommand(config: CliConfig, io: Io, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('down', argv, {});
  if (args.help) return printUsage(io, 'down');
  expectPositionals('down', args.positionals, 0, 0, usageOf('down'));
  const raw = await readJson(homePaths(config.home).context);
  const ctx = await readContext(config.home);
  const stopped = await stopPlatform(config.home, io);
  // Private networks outlive their processes: remove them when this run had them, or, for a
  // context.json that does not say (an older launcher's), when this host can have them.
  // Without a context.json there was no run to clean after (and other users of `lanes-`
  // names on this host, e.g. the network package's tests, are left alone).
  const netns = ctx !== null && (ctx.isolation === 'netns' || (ctx.isolation === null && (await detectIsolation()).mode === 'netns'));
  if (netns) {
    const removed = describeRemoved(await removeNetworkObjects());
    io.line(removed === null ? 'no network objects (lanes-*) were left' : `removed the platform's network objects: ${removed}`);
  }
  io.line(stopped.length > 0 ? 'the platform is stopped' : raw === null ? 'nothing is running' : 'nothing was running (removed a stale context.json)');
  return 0;
}
