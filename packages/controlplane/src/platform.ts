/**
 * The control plane's core: API operations that write intent to the store, the
 * environment reconciler that converges instances toward it, and the feeds that hand the
 * result to supervisors (desired instances per zone) and to the gateway (routing table).
 *
 * Reconciling is level-triggered: any change in the store, any report from a supervisor,
 * and a periodic resync all mark the world dirty; one loop then re-reads the state,
 * decides (a pure function from @lanes/spec) and applies the plan. Running it twice in a
 * row is harmless: the second run finds nothing to do.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { extractArchive, readPackageManifest } from '@lanes/archive';
import {
  ConflictError,
  InputError,
  NotFoundError,
  TooLargeError,
  askedCount,
  DEFAULT_ROLLOUT_DEADLINE_MS,
  DEFAULT_ROUTE_TIMEOUT_MS,
  HEALTH_DEFAULTS,
  OUTLIER_DEFAULTS,
  checkLane,
  checkName,
  databaseService,
  databaseVariable,
  recommendInstances,
  decideEnvironment,
  effectiveCount,
  environmentHost,
  type AgentReport,
  type DesiredInstance,
  type Endpoint,
  type EnvironmentNetwork,
  type ServiceGroup,
  type EnvironmentView,
  type Lane,
  type Manifest,
  type ObservedInstance,
  type Plan,
  type RoutingTable,
  type TcpRoute,
  type VirtualHost,
} from '@lanes/spec';
import { SANDBOX_UID_BASE } from '@lanes/spec';
import { DEFAULT_EDGE, describeEdge, isDefaultEdge, mergeEdge, parseEdgePatch, parseEdgeSettings, sameEdge, type EdgeSettings } from '@lanes/spec';
import { allocateAddress, checkEgress, maxEnvironments, planEnvironment } from '@lanes/network';
import type { EgressEntry, Store } from '@lanes/store';
import { Certificates } from './certificates.js';
import type { Config } from './config.js';
import { Hub } from './hub.js';
import { DnsFeed } from './dns.js';
import { DATABASE_PRIMARY_CHECK, Databases, type DatabaseStatus } from './databases.js';
import { ZoneRegistry } from './zones.js';

type Environment = Awaited<ReturnType<Store['getEnvironment']>>;
type InstanceRow = Awaited<ReturnType<Store['listInstances']>>[number];
type Release = Awaited<ReturnType<Store['getRelease']>>;

export interface InstanceInfo {
  id: string;
  service: string;
  release: string;
  zone: string;
  desired: 'running' | 'stopped';
  state: string;
  healthy: boolean;
  pid: number | null;
  address: string | null;
  port: number | null;
  restarts: number;
  message: string;
  lastExitCode: number | null;
}

export interface ServiceInfo {
  name: string;
  instances: number;
  effectiveInstances: number;
  http: boolean;
  path: string | null;
  ready: number;
  /** Where clients reach a tcp service: its platform TCP port on the gateway; null for others (or before a port is assigned). */
  tcp: { address: string; port: number } | null;
}

const RESYNC_MS = 1000;
/** The request rate the autoscaler acts on is averaged over this window. */
const TRAFFIC_WINDOW_MS = 10_000;

export class Platform {
  readonly store: Store;
  readonly config: Config;
  readonly log: Logger;
  readonly zones: ZoneRegistry;
  readonly desiredHub = new Hub<readonly DesiredInstance[]>();
  readonly tableHub = new Hub<RoutingTable>();
  /** The zone the authoritative DNS server follows (`GET /v1/dns/watch`). */
  readonly dns: DnsFeed;
  readonly packagesDir: string;
  /** The platform CA and every environment's certificate. */
  readonly certificates: Certificates;
  /** Managed databases: their records, members, keepers' API. */
  readonly databases: Databases;
  #revision = Date.now();
  #table: RoutingTable;
  #dirty = false;
  #running: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #stopped = false;
  readonly #manifests = new Map<string, Manifest>();
  readonly #rollouts = new Map<string, string>();
  /** When the rollout of an environment's current release began (for its deadline). */
  readonly #rolloutSince = new Map<string, { hash: string; since: number }>();
  /** Request counts from the gateway per tenant/environment/service: (time, requests) samples. */
  readonly #traffic = new Map<string, { at: number; requests: number }[]>();
  /** Latest CPU figure per instance from its supervisor's report. */
  readonly #cpu = new Map<string, { cpuPercent: number; at: number }>();
  /** Autoscaler recommendations per environment id/service, for the scale-in stabilization window. */
  readonly #recommendations = new Map<string, { at: number; count: number }[]>();
  /** The last automatic rollback per environment, shown in its status. */
  readonly rollbacks = new Map<string, { from: string; to: string; reason: string; time: string }>();
  readonly #readyZones = new Set<string>();

  constructor(store: Store, config: Config, log: Logger) {
    this.store = store;
    this.config = config;
    this.log = log;
    this.zones = new ZoneRegistry(config.zoneList, config.zoneGraceMs);
    this.dns = new DnsFeed(config);
    this.packagesDir = path.join(config.home, 'packages');
    this.certificates = new Certificates(store, config, log.child({ component: 'certificates' }), (e) => this.event(e));
    this.databases = new Databases({
      store,
      config,
      log: log.child({ component: 'databases' }),
      zones: this.zones,
      event: (e) => this.event(e),
      tcpAddress: () => this.tcpAddress(),
      manifestOf: (id, hash) => this.manifestOf(id, hash),
    });
    this.#table = { revision: this.#revision, generatedAt: new Date().toISOString(), hosts: [] };
  }

  async start(): Promise<void> {
    await mkdir(this.packagesDir, { recursive: true });
    await mkdir(path.join(this.config.home, 'tmp'), { recursive: true });
    // Events and heartbeats change nothing the reconciler decides on.
    this.#unsubscribe = this.store.onChange((c) => {
      if (c.kind !== 'event' && c.kind !== 'zone') this.kick();
    });
    await this.certificates.start();
    this.#timer = setInterval(() => this.kick(), RESYNC_MS);
    this.#timer.unref();
    await this.tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
  }

  get table(): RoutingTable {
    return this.#table;
  }

  /** Marks the world dirty; one reconcile pass runs (again) soon. */
  kick(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    if (!this.#running) {
      this.#running = (async () => {
        while (this.#dirty && !this.#stopped) {
          this.#dirty = false;
          try {
            await this.tick();
          } catch (err) {
            this.log.error({ err }, 'reconcile pass failed');
          }
        }
        this.#running = null;
      })();
    }
  }

  /** Waits until no reconcile pass is running or pending. */
  async settle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  // ---- reconciling ------------------------------------------------------------------

  async tick(): Promise<void> {
    const reconcileId = randomBytes(4).toString('hex');
    const ready = new Set(this.zones.ready());
    for (const z of this.zones.names) {
      const was = this.#readyZones.has(z);
      if (was && !ready.has(z)) {
        this.#readyZones.delete(z);
        await this.event({ reason: 'ZoneUnavailable', object: `zone/${z}`, message: `zone ${z} is unavailable: its supervisor has not reported for ${this.config.zoneGraceMs} ms` });
      } else if (!was && ready.has(z)) {
        this.#readyZones.add(z);
        await this.event({
          reason: 'ZoneReady',
          object: `zone/${z}`,
          message: this.zones.isFenced(z) ? `zone ${z} reports again: its instances are re-admitted once it has stayed up for a moment` : `zone ${z} is ready: its supervisor reports`,
        });
      }
    }
    // Databases first: their members' instances and TCP ports exist before services are
    // published, so a release's first instances start with their DATABASE_URL.
    await this.databases.reconcile(await this.store.listEnvironments());
    await this.syncTcpListeners();
    for (const env of await this.store.listEnvironments()) {
      if (env.phase === 'active' && env.currentRelease) {
        await this.autoscale(env, await this.manifestOf(env.id, env.currentRelease), await this.store.getScales(env.id));
        // A release's services start with their DATABASE_URL: not before its databases have their port.
        if (!(await this.databases.readyFor(env, await this.manifestOf(env.id, env.currentRelease)))) continue;
      }
      const view = await this.viewOf(env);
      // Placement uses the live zones (view.zones); stopped instances are forgotten once a
      // report from their (ready) zone says they are gone.
      const plan = decideEnvironment(view, ready);
      await this.apply(env, view, plan, reconcileId);
    }
    await this.syncTcpListeners();
    await this.certificates.reconcile(await this.store.listEnvironments());
    await this.publishFeeds();
  }

  /** Services whose platform TCP port could not be assigned (range full), so that is said once, not every pass. */
  readonly #tcpUnassigned = new Set<string>();

  /**
   * Gives every tcp service of an active environment's current release its platform TCP
   * port (kept across releases and restarts) and frees the ports of services that left it
   * or whose environment is being deleted. A full range is an event, not a failed pass.
   */
  async syncTcpListeners(): Promise<void> {
    const listeners = await this.store.listTcpListeners();
    for (const env of await this.store.listEnvironments()) {
      const scope = { tenant: env.tenant, environment: env.name };
      const wanted = env.phase === 'active' && env.currentRelease ? (await this.manifestOf(env.id, env.currentRelease)).services.filter((s) => s.tcp === true).map((s) => s.name) : [];
      // Each database is reached on a platform TCP port of its own, routed to its primary.
      if (env.phase === 'active') for (const db of await this.store.listDatabases(env.id)) if (db.phase === 'active') wanted.push(databaseService(db.name));
      const held = listeners.filter((l) => l.environmentId === env.id);
      for (const l of held) {
        if (wanted.includes(l.service)) continue;
        if (await this.store.releaseTcpPort(env.id, l.service)) {
          await this.event({ ...scope, reason: 'TcpPortReleased', object: `service/${l.service}`, message: `platform TCP port ${l.port} of ${l.service} released: ${env.phase === 'active' ? 'the service is not in the current release' : 'the environment is being deleted'}` });
        }
      }
      for (const service of wanted) {
        if (held.some((l) => l.service === service)) continue;
        const key = `${env.id}/${service}`;
        try {
          const l = await this.store.assignTcpPort(env.id, service, this.config.tcpPortRange);
          this.#tcpUnassigned.delete(key);
          await this.event({ ...scope, reason: 'TcpPortAssigned', object: `service/${service}`, message: `service ${service} is reached on platform TCP port ${l.port} (${this.tcpAddress()}:${l.port})` });
        } catch (err) {
          if (err instanceof NotFoundError) continue; // deleted meanwhile
          if (!(err instanceof ConflictError)) throw err;
          if (this.#tcpUnassigned.has(key)) continue;
          this.#tcpUnassigned.add(key);
          this.log.warn({ ...scope, service, err: err.message }, 'platform TCP port not assigned');
          await this.event({ ...scope, reason: 'TcpPortUnavailable', object: `service/${service}`, message: `service ${service} has no platform TCP port: ${err.message}` });
        }
      }
    }
  }

  /**
   * The address shown for platform TCP ports: the gateway's host. A `*.localhost` name is
   * shown as 127.0.0.1, since not every TCP client resolves it (browsers and curl do, libc often not).
   */
  tcpAddress(): string {
    const host = new URL(this.config.gatewayUrl).hostname;
    return host === 'localhost' || host.endsWith('.localhost') ? '127.0.0.1' : host;
  }

  async viewOf(env: Environment): Promise<EnvironmentView> {
    // Database members are placed by their database, not by the scheduler; an environment
    // being deleted hands them over, so they are stopped with everything else.
    const rows = (await this.store.listInstances({ environmentId: env.id })).filter((r) => env.phase !== 'active' || !Databases.isMember(r));
    const release = env.currentRelease ? { hash: env.currentRelease, manifest: await this.manifestOf(env.id, env.currentRelease) } : null;
    return {
      lane: env.lane,
      phase: env.phase,
      release,
      scales: await this.store.getScales(env.id),
      run: await this.store.getRunStates(env.id),
      zones: this.zones.live(),
      instances: rows.map((r) => ({
        id: r.id,
        service: r.service,
        release: r.release,
        zone: r.zone,
        desired: r.desired,
        state: r.observed?.state ?? null,
        healthy: r.observed?.healthy ?? false,
        createdAt: r.createdAt,
      })),
    };
  }

  async manifestOf(environmentId: string, hash: string): Promise<Manifest> {
    const key = `${environmentId}/${hash}`;
    let m = this.#manifests.get(key);
    if (!m) {
      m = (await this.store.getRelease(environmentId, hash)).manifest;
      this.#manifests.set(key, m);
    }
    return m;
  }

  async apply(env: Environment, view: EnvironmentView, plan: Plan, reconcileId: string): Promise<void> {
    const scope = { tenant: env.tenant, environment: env.name };
    for (const a of plan.actions) {
      const log = this.log.child({ ...scope, reconcileId });
      switch (a.type) {
        case 'create': {
          const id = `${a.service}-${randomBytes(3).toString('hex')}`;
          let address: string | null = null;
          if (env.netIndex !== null) {
            const used = (await this.store.listInstances({ environmentId: env.id })).flatMap((r) => (r.address ? [r.address] : []));
            address = allocateAddress(this.planOf(env.netIndex), a.zone, used);
          }
          await this.store.createInstance({ id, environmentId: env.id, service: a.service, release: a.release, zone: a.zone, address });
          log.info({ instance: id, zone: a.zone, reason: a.reason }, 'instance created');
          await this.event({ ...scope, reason: 'InstanceScheduled', object: `instance/${id}`, message: `scheduled ${id} in zone ${a.zone}: ${a.reason}` });
          break;
        }
        case 'retire':
          await this.store.setInstanceDesired(a.id, 'stopped');
          log.info({ instance: a.id, reason: a.reason }, 'instance retired');
          await this.event({ ...scope, reason: 'InstanceRetired', object: `instance/${a.id}`, message: `stopping ${a.id}: ${a.reason}` });
          break;
        case 'forget':
          await this.store.deleteInstance(a.id);
          await this.event({ ...scope, reason: 'InstanceRemoved', object: `instance/${a.id}`, message: a.reason });
          break;
      }
    }
    if (plan.gone) {
      await this.store.deleteEnvironment(env.id);
      this.#rollouts.delete(env.id);
      await this.event({ ...scope, reason: 'EnvironmentDeleted', object: `environment/${env.tenant}/${env.name}`, message: `environment ${env.tenant}/${env.name} deleted: all its instances stopped` });
      return;
    }
    if (plan.rollout && view.release) {
      // Circuit breaker: a release that crash-loops, or is not healthy within its deadline,
      // is rolled back to the release that served before it.
      const since = this.#rolloutSince.get(env.id);
      if (!since || since.hash !== view.release.hash) this.#rolloutSince.set(env.id, { hash: view.release.hash, since: Date.now() });
      const startedAt = this.#rolloutSince.get(env.id)?.since ?? Date.now();
      const deadlineMs = view.release.manifest.deadlineMs ?? DEFAULT_ROLLOUT_DEADLINE_MS;
      const overdue = plan.rollout.state === 'progressing' && Date.now() - startedAt > deadlineMs;
      if (plan.rollout.state === 'failed' || overdue) {
        const reason = overdue ? `not healthy within its deadline of ${Math.round(deadlineMs / 1000)}s (${plan.rollout.message})` : plan.rollout.message;
        if (await this.rollBack(env, view.release.hash, reason)) return;
      }
      const key = `${view.release.hash}:${plan.rollout.state}`;
      if (this.#rollouts.get(env.id) !== key) {
        this.#rollouts.set(env.id, key);
        const rel = await this.store.getRelease(env.id, view.release.hash);
        const short = view.release.hash.slice(0, 12);
        if (plan.rollout.state === 'complete' && rel.status !== 'active') {
          for (const r of await this.store.listReleases(env.id)) {
            if (r.status === 'active' && r.hash !== rel.hash) await this.store.setReleaseStatus(env.id, r.hash, 'superseded');
          }
          await this.store.setReleaseStatus(env.id, rel.hash, 'active');
          await this.event({ ...scope, reason: 'RolloutComplete', object: `release/${short}`, message: `release ${short} (version ${rel.version}) is live: ${plan.rollout.message}` });
        } else if (plan.rollout.state === 'failed' && rel.status === 'deploying') {
          await this.store.setReleaseStatus(env.id, rel.hash, 'failed');
          await this.event({ ...scope, reason: 'RolloutFailed', object: `release/${short}`, message: `release ${short} (version ${rel.version}) is not becoming ready: ${plan.rollout.message}` });
        }
      }
    }
  }

  /**
   * Points the environment back at the release that served before `failed`; false when
   * there is none (a first release that fails stays, failed, for the user to fix).
   */
  async rollBack(env: Environment, failed: string, reason: string): Promise<boolean> {
    const releases = await this.store.listReleases(env.id);
    const previous = releases.find((r) => r.hash !== failed && (r.status === 'active' || r.status === 'superseded'));
    const bad = releases.find((r) => r.hash === failed);
    if (bad && bad.status !== 'failed') await this.store.setReleaseStatus(env.id, failed, 'failed');
    if (!previous) return false;
    await this.store.setReleaseStatus(env.id, previous.hash, 'deploying');
    await this.store.setCurrentRelease(env.id, previous.hash);
    this.#rollouts.delete(env.id);
    const from = failed.slice(0, 12);
    const to = previous.hash.slice(0, 12);
    this.rollbacks.set(env.id, { from: failed, to: previous.hash, reason, time: new Date().toISOString() });
    this.log.warn({ tenant: env.tenant, environment: env.name, from, to, reason }, 'release rolled back');
    await this.event({
      tenant: env.tenant,
      environment: env.name,
      reason: 'RolledBack',
      object: `release/${from}`,
      message: `rolled back release ${from} (version ${bad?.version ?? '?'}) to ${to} (version ${previous.version}): ${reason}`,
    });
    return true;
  }

  /** `lanes rollback`: back to a given release (id prefix or version) or to the one before the current. */
  async rollbackTo(tenant: string, name: string, target: unknown): Promise<Release> {
    const env = await this.environment(tenant, name);
    if (env.phase === 'deleting') throw new ConflictError(`environment ${tenant}/${name} is being deleted`);
    const releases = await this.store.listReleases(env.id);
    let to: Release | undefined;
    if (target === undefined || target === null) {
      to = releases.find((r) => r.hash !== env.currentRelease && (r.status === 'active' || r.status === 'superseded'));
      if (!to) throw new NotFoundError(`${tenant}/${name} has no earlier release that served; see lanes releases ${tenant}/${name}`);
    } else {
      if (typeof target !== 'string' || !/^([0-9a-f]{6,64}|\d{1,9})$/.test(target)) {
        throw new InputError(`release: ${JSON.stringify(target)} is neither a release id (at least 6 hex digits) nor a version number`, 'release');
      }
      const matches = /^\d+$/.test(target) && target.length < 6 ? releases.filter((r) => r.version === Number(target)) : releases.filter((r) => r.hash.startsWith(target));
      if (matches.length !== 1) throw new NotFoundError(`release ${JSON.stringify(target)} ${matches.length ? 'is ambiguous' : 'not found'} in ${tenant}/${name}; see lanes releases ${tenant}/${name}`);
      to = matches[0] as Release;
    }
    if (to.hash === env.currentRelease) return to;
    if (env.currentRelease) await this.store.setReleaseStatus(env.id, env.currentRelease, 'superseded');
    await this.store.setReleaseStatus(env.id, to.hash, 'deploying');
    await this.store.setCurrentRelease(env.id, to.hash);
    this.#rollouts.delete(env.id);
    await this.event({ tenant, environment: name, reason: 'RollbackRequested', object: `release/${to.hash.slice(0, 12)}`, message: `rolling back to release ${to.hash.slice(0, 12)} (version ${to.version}) on request` });
    return { ...to, status: 'deploying' };
  }

  // ---- autoscaling --------------------------------------------------------------------

  /** A gateway's report: requests routed per service during `intervalMs`. */
  recordTraffic(counts: readonly { tenant: string; environment: string; service: string; requests: number }[], now = Date.now()): void {
    for (const c of counts) {
      const key = `${c.tenant}/${c.environment}/${c.service}`;
      const samples = this.#traffic.get(key) ?? [];
      samples.push({ at: now, requests: c.requests });
      this.#traffic.set(key, samples.filter((x) => now - x.at <= TRAFFIC_WINDOW_MS));
    }
  }

  /** Requests per second of a service over the traffic window. */
  rps(tenant: string, environment: string, service: string, now = Date.now()): number {
    const samples = (this.#traffic.get(`${tenant}/${environment}/${service}`) ?? []).filter((x) => now - x.at <= TRAFFIC_WINDOW_MS);
    return samples.reduce((n, x) => n + x.requests, 0) / (TRAFFIC_WINDOW_MS / 1000);
  }

  /**
   * One autoscaler step per autoscaled service: scale out as soon as the rate asks for it,
   * scale in only when every recommendation of the stabilization window agrees. The count is
   * written as the service's scale, and the decision is an event with its reason.
   */
  async autoscale(env: Environment, manifest: Manifest, scales: Readonly<Record<string, number>>, now = Date.now()): Promise<void> {
    for (const svc of manifest.services) {
      const spec = svc.autoscale;
      if (!spec) continue;
      const rate = this.rps(env.tenant, env.name, svc.name, now);
      const current = scales[svc.name] ?? spec.min;
      const cpuPercent = spec.targetCpuPercent !== null ? await this.averageCpu(env, svc.name, now) : null;
      const rec = recommendInstances(spec, { rps: rate, cpuPercent, current });
      const key = `${env.id}/${svc.name}`;
      const history = [...(this.#recommendations.get(key) ?? []), { at: now, count: rec }].filter((x) => now - x.at <= spec.stabilizationMs);
      this.#recommendations.set(key, history);
      const target = rec > current ? rec : Math.max(...history.map((x) => x.count));
      const clamped = Math.min(spec.max, Math.max(spec.min, target));
      if (clamped === current) continue;
      await this.store.setScale(env.id, svc.name, clamped);
      const why =
        spec.targetRps !== null
          ? `${rate.toFixed(1)} req/s over ${TRAFFIC_WINDOW_MS / 1000}s against a target of ${spec.targetRps} per instance`
          : `average CPU ${cpuPercent?.toFixed(0) ?? '?'}% against a target of ${spec.targetCpuPercent}%`;
      const message =
        clamped > current
          ? `scaling ${svc.name} out from ${current} to ${clamped}: ${why}`
          : `scaling ${svc.name} in from ${current} to ${clamped}: ${why}, steady for ${spec.stabilizationMs / 1000}s`;
      this.log.info({ tenant: env.tenant, environment: env.name, service: svc.name, from: current, to: clamped, rps: rate }, 'autoscaled');
      await this.event({ tenant: env.tenant, environment: env.name, reason: 'AutoScaled', object: `service/${svc.name}`, message });
    }
  }

  /** Average CPU of the running, healthy instances of a service, from fresh reports; null without any. */
  async averageCpu(env: Environment, service: string, now = Date.now()): Promise<number | null> {
    const rows = (await this.store.listInstances({ environmentId: env.id })).filter((r) => r.service === service && r.desired === 'running' && r.observed?.healthy);
    const figures = rows.flatMap((r) => {
      const c = this.#cpu.get(r.id);
      return c && now - c.at <= 5000 ? [c.cpuPercent] : [];
    });
    return figures.length === 0 ? null : figures.reduce((a, b) => a + b, 0) / figures.length;
  }

  // ---- feeds ------------------------------------------------------------------------

  async publishFeeds(): Promise<void> {
    const envs = await this.store.listEnvironments();
    const byId = new Map(envs.map((e) => [e.id, e]));
    const rows = await this.store.listInstances();
    const perZone = new Map<string, DesiredInstance[]>(this.zones.names.map((z) => [z, []]));
    const dbs = await this.store.listDatabases();
    const listeners = await this.store.listTcpListeners();
    const tcpPorts = new Map(listeners.map((l) => [`${l.environmentId}/${l.service}`, l.port]));
    const variables = new Map<string, Record<string, string>>();
    for (const r of rows) {
      if (r.desired !== 'running') continue;
      const list = perZone.get(r.zone);
      const env = byId.get(r.environmentId);
      if (!list || !env) continue;
      if (Databases.isMember(r)) {
        const d = this.databases.desiredOf(r, env, dbs);
        if (d) list.push(d);
        continue;
      }
      const svc = (await this.manifestOf(r.environmentId, r.release)).services.find((s) => s.name === r.service);
      if (!svc) continue;
      let vars = variables.get(env.id);
      if (!vars) {
        vars = await this.databases.variablesOf(env, dbs, tcpPorts);
        variables.set(env.id, vars);
      }
      const network = env?.netIndex != null && r.address ? { envIndex: env.netIndex, cidr: this.config.networkCidr, zones: this.zones.names, address: r.address } : null;
      list.push({
        id: r.id,
        tenant: r.tenant,
        environment: r.environment,
        service: r.service,
        release: r.release,
        argv: svc.argv,
        // The manifest's own variables win over the platform's (a DATABASE_URL of its own).
        env: { ...vars, ...svc.env },
        // In its own network every instance has its own address, so all can use one port.
        port: network ? (svc.port ?? this.config.instancePort) : svc.port,
        listens: svc.http || svc.tcp || svc.port !== null,
        health: svc.health,
        stopGraceMs: svc.stopGraceMs,
        network,
        // A primary_check is served on a second port (CHECK_PORT) the gateway checks.
        ...(svc.primaryCheck ? { checkPort: true } : {}),
        user: { uid: SANDBOX_UID_BASE + env.sandboxId, gid: SANDBOX_UID_BASE + env.sandboxId },
        ...(svc.limits ? { limits: svc.limits } : {}),
      });
    }
    const networks: EnvironmentNetwork[] = [];
    for (const env of envs) {
      if (env.netIndex === null) continue;
      networks.push(await this.networkOf(env, rows.filter((r) => r.environmentId === env.id)));
    }
    this.#networks = networks;
    for (const [zone, list] of perZone) {
      list.sort((a, b) => a.id.localeCompare(b.id));
      this.desiredHub.publish(zone, list, (v) => this.encodeDesired(v), (v) => JSON.stringify([v, this.#networks]));
    }

    const hosts: VirtualHost[] = [];
    for (const env of envs) {
      if (env.phase !== 'active' || !env.currentRelease) continue;
      const manifest = await this.manifestOf(env.id, env.currentRelease);
      const routes = manifest.services
        .filter((s) => s.http)
        .map((s) => ({
          pathPrefix: s.path ?? '/',
          service: s.name,
          endpoints: rows
            .filter((r) => r.environmentId === env.id && r.service === s.name && r.desired === 'running' && this.zones.routable(r.zone))
            .flatMap((r) => endpointOf(r)),
          // Releases stored before these settings existed lack them: the defaults apply.
          balance: s.balance ?? 'round_robin',
          sticky: s.sticky ?? null,
          timeoutMs: s.timeoutMs ?? DEFAULT_ROUTE_TIMEOUT_MS,
          health: s.health ? { ...s.health, expectStatus: s.health.expectStatus ?? HEALTH_DEFAULTS.expectStatus } : null,
          outlier: s.outlier ?? OUTLIER_DEFAULTS,
        }));
      if (routes.length === 0) continue;
      hosts.push({ host: environmentHost(env.name, env.tenant, this.config.domain), tenant: env.tenant, environment: env.name, routes, tls: this.certificates.tlsOf(env.id), ...(env.edge ? { edge: env.edge } : {}) });
    }
    hosts.sort((a, b) => a.host.localeCompare(b.host));
    const tcp: TcpRoute[] = [];
    for (const l of listeners) {
      const env = byId.get(l.environmentId);
      if (!env || env.phase !== 'active') continue;
      const db = dbs.find((d) => d.environmentId === env.id && databaseService(d.name) === l.service && d.phase === 'active');
      if (db) {
        tcp.push({
          port: l.port,
          tenant: env.tenant,
          environment: env.name,
          service: l.service,
          endpoints: Databases.endpointsOf(db, rows.filter((r) => r.environmentId === env.id), (z) => this.zones.routable(z)),
          primaryCheck: DATABASE_PRIMARY_CHECK,
          ...(env.edge ? { allow: env.edge.allow, deny: env.edge.deny } : {}),
        });
        continue;
      }
      if (!env.currentRelease) continue;
      const svc = (await this.manifestOf(env.id, env.currentRelease)).services.find((s) => s.name === l.service && s.tcp === true);
      if (!svc) continue;
      const primaryCheck = svc.primaryCheck ?? null;
      tcp.push({
        port: l.port,
        tenant: env.tenant,
        environment: env.name,
        service: svc.name,
        endpoints: rows
          .filter((r) => r.environmentId === env.id && r.service === svc.name && r.desired === 'running' && this.zones.routable(r.zone))
          .flatMap((r) => tcpEndpointOf(r, primaryCheck !== null)),
        primaryCheck,
        ...(env.edge ? { allow: env.edge.allow, deny: env.edge.deny } : {}),
      });
    }
    const candidate: RoutingTable = { revision: this.#revision + 1, generatedAt: new Date().toISOString(), hosts, tcp };
    const changed = this.tableHub.publish('table', candidate, (t) => encodeTable(t), (t) => JSON.stringify([t.hosts, t.tcp ?? []]));
    if (changed) {
      this.#revision += 1;
      this.#table = candidate;
    }
    this.dns.publish(envs, await this.store.listDnsRecords());
  }

  #desiredRevision = Date.now();
  #networks: readonly EnvironmentNetwork[] = [];
  encodeDesired(instances: readonly DesiredInstance[]): string {
    this.#desiredRevision += 1;
    return `${JSON.stringify({ type: 'desired', revision: this.#desiredRevision, instances, networks: this.#networks })}\n`;
  }

  planOf(netIndex: number): ReturnType<typeof planEnvironment> {
    return planEnvironment(this.config.networkCidr, netIndex, this.zones.names);
  }

  /** The environment's network as supervisors apply it: egress and one security group per service. */
  async networkOf(env: Environment, rows: readonly InstanceRow[]): Promise<EnvironmentNetwork> {
    const groups: ServiceGroup[] = [];
    const services = new Map<string, InstanceRow[]>();
    const members: InstanceRow[] = [];
    for (const r of rows) {
      if (r.desired !== 'running' || !r.address) continue;
      if (Databases.isMember(r)) members.push(r);
      else services.set(r.service, [...(services.get(r.service) ?? []), r]);
    }
    const current = env.currentRelease ? await this.manifestOf(env.id, env.currentRelease) : null;
    for (const [service, insts] of [...services].sort(([a], [b]) => a.localeCompare(b))) {
      const first = insts[0] as InstanceRow;
      const spec = current?.services.find((x) => x.name === service) ?? (await this.manifestOf(env.id, first.release)).services.find((x) => x.name === service);
      const port = spec?.port ?? this.config.instancePort;
      groups.push({
        service,
        addresses: insts.map((i) => i.address as string).sort(),
        // The gateway checks a primary_check on CHECK_PORT, which a supervisor sets next to PORT
        // in a private network (networkCheckPort in @lanes/agent: the two rules go together).
        ports: spec?.primaryCheck ? [port, port < 65_535 ? port + 1 : port - 1] : [port],
        allowFrom: spec?.allowFrom ?? null,
        // The gateway's link connects to http services and to tcp services (their platform TCP port).
        http: (spec?.http ?? false) || spec?.tcp === true,
      });
    }
    // A database's members: PostgreSQL, the keepers' HTTP (lease RPC, checks) and the arbiter.
    const byDb = new Map<string, string[]>();
    for (const r of members) byDb.set(r.service, [...(byDb.get(r.service) ?? []), r.address as string]);
    for (const [service, addresses] of [...byDb].sort(([a], [b]) => a.localeCompare(b))) {
      groups.push({ service, addresses: addresses.sort(), ports: [5432, 5433, 7400], allowFrom: null, http: true });
    }
    return {
      envIndex: env.netIndex as number,
      cidr: this.config.networkCidr,
      zones: this.zones.names,
      tenant: env.tenant,
      environment: env.name,
      egress: env.egress,
      groups,
    };
  }

  // ---- supervisors ------------------------------------------------------------------

  async report(r: AgentReport): Promise<void> {
    if (!this.zones.has(r.zone)) throw new InputError(`zone: ${JSON.stringify(r.zone)} is not a zone of this platform (${this.zones.names.join(', ')})`, 'zone');
    const becameReady = this.zones.seen(r.zone, r.address, r.agentUrl);
    const now = Date.now();
    for (const m of r.metrics ?? []) this.#cpu.set(m.id, { cpuPercent: m.cpuPercent, at: now });
    await this.store.upsertZone({ name: r.zone, agentUrl: r.agentUrl, address: r.address, pid: r.pid });
    const reported = new Map(r.instances.map((i) => [i.id, i]));
    for (const row of await this.store.listInstances({ zone: r.zone })) {
      const obs = reported.get(row.id) ?? null;
      // Heartbeats repeat the same picture every second: skip the write when nothing moved.
      if (sameObserved(row.observed, obs)) continue;
      const changed = await this.store.updateObserved(row.id, obs);
      if (changed) await this.noteTransition(row, row.observed, obs);
    }
    if (becameReady) this.kick();
  }

  async noteTransition(row: InstanceRow, prev: ObservedInstance | null, next: ObservedInstance | null): Promise<void> {
    const scope = { tenant: row.tenant, environment: row.environment, object: `instance/${row.id}` };
    if (!next) return;
    if (next.restarts > (prev?.restarts ?? 0)) {
      await this.event({ ...scope, reason: 'InstanceRestarted', message: `${row.id} restarted (restart ${next.restarts}): ${next.message}` });
    }
    if (next.state === 'crashloop' && prev?.state !== 'crashloop') {
      await this.event({ ...scope, reason: 'InstanceCrashLoop', message: `${row.id} ${next.message}` });
    }
    if (next.healthy && !prev?.healthy) {
      await this.event({ ...scope, reason: 'InstanceHealthy', message: `${row.id} is healthy in zone ${row.zone} at ${next.address}:${next.port ?? '-'} (pid ${next.pid ?? '-'})` });
    } else if (!next.healthy && prev?.healthy) {
      await this.event({ ...scope, reason: 'InstanceUnhealthy', message: `${row.id} is unhealthy: ${next.message}` });
    }
  }

  async packageFile(hash: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new InputError(`hash: ${JSON.stringify(hash)} is not a package hash`, 'hash');
    const file = path.join(this.packagesDir, `${hash}.tgz`);
    try {
      await stat(file);
    } catch {
      throw new NotFoundError(`package ${hash} not found`);
    }
    return file;
  }

  // ---- API operations -----------------------------------------------------------------

  async event(e: { tenant?: string; environment?: string; reason: string; object?: string; message: string }): Promise<void> {
    await this.store.addEvent(e);
  }

  async createTenant(name: unknown): Promise<Awaited<ReturnType<Store['createTenant']>>> {
    const t = await this.store.createTenant(checkName('name', name));
    await this.event({ tenant: t.name, reason: 'TenantCreated', object: `tenant/${t.name}`, message: `tenant ${t.name} created` });
    return t;
  }

  async deleteTenant(name: string): Promise<void> {
    await this.store.deleteTenant(checkName('tenant', name));
    await this.event({ reason: 'TenantDeleted', object: `tenant/${name}`, message: `tenant ${name} deleted` });
  }

  async createEnvironment(tenant: string, name: unknown, lane: unknown, egress?: unknown): Promise<Environment> {
    checkName('tenant', tenant);
    const n = checkName('name', name);
    const l: Lane = lane === undefined ? 'single' : checkLane(lane);
    if (l === 'double' && this.zones.names.length < 2) {
      throw new InputError(`lane: double needs at least 2 zones; this platform has ${this.zones.names.length} (${this.zones.names.join(', ')}); start it with --zones a,b`, 'lane');
    }
    const netns = this.config.isolation === 'netns';
    // Everything is checked before anything is written, and written in one transaction.
    const allow = egress === undefined ? undefined : parseEgress(egress, this.config.networkCidr, this.zones.names);
    const env = await this.store.createEnvironment({ tenant, name: n, lane: l, ...(netns ? { netIndexMax: maxEnvironments(this.config.networkCidr) } : {}), ...(allow === undefined ? {} : { egress: allow }) });
    const where = env.netIndex !== null ? ` on private network ${this.planOf(env.netIndex).subnet}` : '';
    await this.event({ tenant, environment: n, reason: 'EnvironmentCreated', object: `environment/${tenant}/${n}`, message: `environment ${tenant}/${n} created with lane ${l}${where}` });
    return env;
  }

  async setEgress(tenant: string, name: string, egress: unknown): Promise<Environment> {
    const env = await this.environment(tenant, name);
    const allow = parseEgress(egress, this.config.networkCidr, this.zones.names);
    const updated = await this.store.setEgress(env.id, allow);
    await this.event({ tenant, environment: name, reason: 'EgressChanged', object: `environment/${tenant}/${name}`, message: allow === null ? 'egress: any destination outside the platform' : `egress allowed only to ${allow.map((e) => `${e.cidr}${e.port === null ? '' : `:${e.port}`}`).join(', ') || 'nothing'}` });
    return updated;
  }

  /** The environment's edge settings, defaults filled in. */
  async edgeOf(tenant: string, name: string): Promise<EdgeSettings> {
    return (await this.environment(tenant, name)).edge ?? DEFAULT_EDGE;
  }

  /**
   * Replaces (`replace`: fields left out take their defaults) or patches (`patch`: fields
   * left out stay) the environment's edge settings; the gateway gets them with the next
   * routing table. Records an EdgeChanged event when they change.
   */
  async setEdge(tenant: string, name: string, input: unknown, mode: 'replace' | 'patch'): Promise<EdgeSettings> {
    const env = await this.environment(tenant, name);
    const current = env.edge ?? DEFAULT_EDGE;
    const next = mode === 'replace' ? parseEdgeSettings(input) : mergeEdge(current, parseEdgePatch(input));
    if (sameEdge(next, current)) return current;
    await this.store.setEdge(env.id, isDefaultEdge(next) ? null : next);
    const described = describeEdge(next);
    await this.event({
      tenant,
      environment: name,
      reason: 'EdgeChanged',
      object: `environment/${tenant}/${name}`,
      message: `edge settings of ${tenant}/${name}: ${described.length === 0 ? 'defaults (no access control)' : described.join('; ')}`,
    });
    return next;
  }

  /**
   * `lanes db create`: a database of the environment. Services already running get its
   * DATABASE_URL through a rolling restart (replacements first, then the old instances).
   */
  async createDatabase(tenant: string, name: string, body: unknown): Promise<DatabaseStatus> {
    const env = await this.environment(tenant, name);
    const spec = this.databases.parseCreate(body);
    await this.databases.create(env, spec, 'api');
    this.kick();
    await this.settle();
    if (env.currentRelease) {
      await this.store.setRunState(env.id, null, { restart: true });
      await this.event({ tenant, environment: name, reason: 'Restarted', object: `environment/${tenant}/${name}`, message: `restarting the services of ${tenant}/${name} (rolling) so they get the URL of database ${spec.name}` });
    }
    return this.databaseStatus(env, spec.name);
  }

  async databaseUrl(env: Environment, name: string): Promise<{ url: string; variable: string }> {
    const db = await this.store.getDatabase(env.id, name);
    const ports = new Map((await this.store.listTcpListeners(env.id)).map((l) => [`${l.environmentId}/${l.service}`, l.port]));
    const url = (await this.databases.variablesOf(env, [db], ports))[databaseVariable(name)];
    if (url === undefined) throw new ConflictError(`database ${name} has no platform TCP port yet; try again in a moment`);
    return { url, variable: databaseVariable(name) };
  }

  async databaseStatus(env: Environment, name: string): Promise<DatabaseStatus> {
    const ports = new Map((await this.store.listTcpListeners(env.id)).map((l) => [`${l.environmentId}/${l.service}`, l.port]));
    return this.databases.status(env, name, ports);
  }

  /** A simulated zone outage: the zone takes no traffic and no new instances until it is up. */
  async setZoneDown(zone: string, down: boolean): Promise<void> {
    if (!this.zones.has(zone)) throw new NotFoundError(`zone ${JSON.stringify(zone)} is not a zone of this platform (${this.zones.names.join(', ')})`);
    if (this.zones.setDown(zone, down)) {
      await this.event({ reason: down ? 'ZoneDown' : 'ZoneUp', object: `zone/${zone}`, message: down ? `zone ${zone} is down: its instances take no traffic` : `zone ${zone} is up again` });
    }
    await this.tick();
  }

  async environment(tenant: string, name: string): Promise<Environment> {
    return this.store.getEnvironment(checkName('tenant', tenant), checkName('environment', name));
  }

  async deleteEnvironment(tenant: string, name: string): Promise<Environment> {
    const env = await this.environment(tenant, name);
    if (env.phase !== 'deleting') {
      await this.store.setEnvironmentPhase(env.id, 'deleting');
      await this.event({ tenant, environment: name, reason: 'EnvironmentDeleting', object: `environment/${tenant}/${name}`, message: `deleting environment ${tenant}/${name}: stopping its instances` });
    }
    return { ...env, phase: 'deleting' };
  }

  async deploy(tenant: string, name: string, tgz: Buffer): Promise<{ release: Release; created: boolean; unchanged: boolean }> {
    const env = await this.environment(tenant, name);
    if (env.phase === 'deleting') throw new ConflictError(`environment ${tenant}/${name} is being deleted`);
    if (tgz.length === 0) throw new InputError('package: the body is empty; send the .tgz of an app package', 'package');
    if (tgz.length > this.config.maxPackageBytes) throw new TooLargeError(`package: ${tgz.length} bytes is larger than the limit of ${this.config.maxPackageBytes}`);
    const tmp = await mkdtemp(path.join(this.config.home, 'tmp', 'pkg-'));
    let hash: string;
    let manifest: Manifest;
    try {
      ({ hash } = await extractArchive(tgz, tmp));
      manifest = await readPackageManifest(tmp);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    await this.databases.checkRelease(env, manifest);
    const file = path.join(this.packagesDir, `${hash}.tgz`);
    try {
      await stat(file);
    } catch {
      const part = `${file}.${process.pid}.part`;
      await writeFile(part, tgz);
      await rename(part, file);
    }
    const { created, ...release } = await this.store.createRelease({ environmentId: env.id, hash, manifest, sizeBytes: tgz.length });
    if (env.currentRelease === hash) return { release, created, unchanged: true };
    if (!created) await this.store.setReleaseStatus(env.id, hash, 'deploying');
    await this.store.setCurrentRelease(env.id, hash);
    this.#rollouts.delete(env.id);
    await this.event({
      tenant,
      environment: name,
      reason: 'ReleaseDeploying',
      object: `release/${hash.slice(0, 12)}`,
      message: `deploying release ${hash.slice(0, 12)} (version ${release.version}, ${manifest.name}: ${manifest.services.map((s) => s.name).join(', ')})`,
    });
    return { release: { ...release, status: 'deploying' }, created, unchanged: false };
  }

  async scale(tenant: string, name: string, service: string, instances: number): Promise<ServiceInfo> {
    const env = await this.environment(tenant, name);
    checkName('service', service);
    if (!env.currentRelease) throw new NotFoundError(`environment ${tenant}/${name} has no release yet; deploy one first`);
    const manifest = await this.manifestOf(env.id, env.currentRelease);
    if (!manifest.services.some((s) => s.name === service)) {
      throw new NotFoundError(`service ${JSON.stringify(service)} is not in the running release of ${tenant}/${name}; it has ${manifest.services.map((s) => s.name).join(', ')}`);
    }
    const autoscale = manifest.services.find((s) => s.name === service)?.autoscale;
    if (autoscale) {
      throw new ConflictError(`service ${service} is autoscaled between ${autoscale.min} and ${autoscale.max} instances; change its scale: in lanes.yaml and deploy`);
    }
    await this.store.setScale(env.id, service, instances);
    await this.event({ tenant, environment: name, reason: 'ServiceScaled', object: `service/${service}`, message: `service ${service} scaled to ${instances} (lane ${env.lane}: ${effectiveCount(instances, env.lane)} instances)` });
    const info = (await this.services(env)).find((s) => s.name === service);
    if (!info) throw new NotFoundError(`service ${service} not found`);
    return info;
  }

  /** `lanes stop|start|restart TENANT/ENV [SERVICE]`. */
  async setRunState(tenant: string, name: string, service: string | undefined, action: 'stop' | 'start' | 'restart'): Promise<void> {
    const env = await this.environment(tenant, name);
    if (env.phase === 'deleting') throw new ConflictError(`environment ${tenant}/${name} is being deleted`);
    if (service !== undefined) {
      checkName('service', service);
      const manifest = env.currentRelease ? await this.manifestOf(env.id, env.currentRelease) : null;
      if (!manifest?.services.some((s) => s.name === service)) {
        throw new NotFoundError(`service ${JSON.stringify(service)} is not in the running release of ${tenant}/${name}${manifest ? `; it has ${manifest.services.map((s) => s.name).join(', ')}` : ''}`);
      }
    }
    const change = action === 'stop' ? { stopped: true } : action === 'start' ? { stopped: false } : { stopped: false, restart: true };
    await this.store.setRunState(env.id, service ?? null, change);
    const what = service ? `service ${service}` : `environment ${tenant}/${name}`;
    const verb = action === 'stop' ? 'stopping' : action === 'start' ? 'starting' : 'restarting (replacements first, then the old instances)';
    await this.event({ tenant, environment: name, reason: action === 'stop' ? 'Stopped' : action === 'start' ? 'Started' : 'Restarted', object: service ? `service/${service}` : `environment/${tenant}/${name}`, message: `${verb} ${what}` });
  }

  async services(env: Environment): Promise<ServiceInfo[]> {
    if (!env.currentRelease) return [];
    const manifest = await this.manifestOf(env.id, env.currentRelease);
    const scales = await this.store.getScales(env.id);
    const rows = await this.store.listInstances({ environmentId: env.id });
    const listeners = await this.store.listTcpListeners(env.id);
    return manifest.services.map((s) => {
      const listener = s.tcp === true ? listeners.find((l) => l.service === s.name) : undefined;
      const asked = askedCount(s, scales);
      return {
        name: s.name,
        instances: asked,
        effectiveInstances: effectiveCount(asked, env.lane),
        http: s.http,
        path: s.path,
        ready: rows.filter((r) => r.service === s.name && r.release === env.currentRelease && r.desired === 'running' && r.observed?.healthy === true).length,
        tcp: listener ? { address: this.tcpAddress(), port: listener.port } : null,
      };
    });
  }

  async instances(env: Environment): Promise<InstanceInfo[]> {
    const rows = await this.store.listInstances({ environmentId: env.id });
    return rows.map(instanceInfo);
  }

  async rollout(env: Environment): Promise<Plan['rollout']> {
    const view = await this.viewOf(env);
    return decideEnvironment(view, new Set(this.zones.ready())).rollout;
  }
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/**
 * Parses an egress allow-list: null, or entries "CIDR" / "CIDR:PORT" (e.g. "0.0.0.0/0:443").
 * The entries are then checked by the same function the zone supervisors apply them with,
 * so nothing is accepted here that a supervisor would refuse.
 */
export function parseEgress(value: unknown, platformCidr: string, zones: readonly string[]): EgressEntry[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) throw new InputError('egress: expected a list of "CIDR[:PORT]" entries, or null for any destination', 'egress');
  return value.map((v, i) => {
    const field = `egress.${i}`;
    if (typeof v !== 'string') throw new InputError(`${field}: expected a string like "10.0.0.0/8:443"`, field);
    const [cidr, port, extra] = v.split(':');
    const m = CIDR_RE.exec(cidr ?? '');
    if (extra !== undefined || !m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
      throw new InputError(`${field}: ${JSON.stringify(v)} is not CIDR[:PORT]; use e.g. 10.0.0.0/8 or 0.0.0.0/0:443`, field);
    }
    let p: number | null = null;
    if (port !== undefined) {
      p = Number(port);
      if (!/^\d+$/.test(port) || p < 1 || p > 65535) throw new InputError(`${field}: port ${JSON.stringify(port)} must be 1-65535`, field);
    }
    const entry = { cidr: cidr as string, port: p };
    try {
      checkEgress(planEnvironment(platformCidr, 1, zones), [p === null ? { cidr: entry.cidr } : { cidr: entry.cidr, port: p }]);
    } catch (err) {
      throw new InputError(`${field}: ${err instanceof Error ? err.message.replace(/^egress\[0\]\.\w+: /, '') : String(err)}`, field);
    }
    return entry;
  });
}

function sameObserved(a: ObservedInstance | null, b: ObservedInstance | null): boolean {
  if (a === null || b === null) return a === b;
  return (Object.keys(b) as (keyof ObservedInstance)[]).every((k) => a[k] === b[k]) && Object.keys(a).length === Object.keys(b).length;
}

function endpointOf(r: InstanceRow): Endpoint[] {
  const o = r.observed;
  if (!o || o.state !== 'running' || !o.healthy || o.port === null) return [];
  return [{ instance: r.id, zone: r.zone, address: o.address, port: o.port }];
}

/** A TCP route's endpoint; with a primary check, where the instance serves it (null: not reported yet, never primary). */
function tcpEndpointOf(r: InstanceRow, withCheck: boolean): Endpoint[] {
  const o = r.observed;
  if (!o || o.state !== 'running' || !o.healthy || o.port === null) return [];
  return [{ instance: r.id, zone: r.zone, address: o.address, port: o.port, ...(withCheck ? { checkPort: o.checkPort ?? null } : {}) }];
}

function encodeTable(t: RoutingTable): string {
  return `${JSON.stringify({ type: 'table', table: t })}\n`;
}

export function instanceInfo(r: InstanceRow): InstanceInfo {
  const o = r.observed;
  return {
    id: r.id,
    service: r.service,
    release: r.release,
    zone: r.zone,
    desired: r.desired,
    state: o?.state ?? (r.desired === 'running' ? 'pending' : 'stopped'),
    healthy: o?.healthy ?? false,
    pid: o?.pid ?? null,
    address: o?.address ?? null,
    port: o?.port ?? null,
    restarts: o?.restarts ?? 0,
    message: o?.message ?? (r.desired === 'running' ? 'waiting for the zone supervisor' : ''),
    lastExitCode: o?.lastExitCode ?? null,
  };
}
