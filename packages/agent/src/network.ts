/**
 * The supervisor's side of environment networks: turns what the control plane sends
 * (`DesiredInstance.network`, the `networks` of a desired message) into NetworkManager
 * calls. One queue runs every compound operation (ensure + add + security groups, remove,
 * apply, sweep) so they never interleave; each is idempotent, and a failed apply is
 * retried with backoff, because a network error must never take the supervisor down.
 * This zone writes only its own instances' tables; environments are removed once they
 * are neither listed nor used by an instance of this zone.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DesiredInstance, EnvironmentNetwork, InstanceNetwork, NetworkRef, ServiceGroup } from '@lanes/spec';
import { type EgressRule, type EnvironmentPlan, NetworkManager, type SecurityGroupRule, planEnvironment } from '@lanes/network';

export function toSecurityGroupRules(groups: readonly ServiceGroup[]): SecurityGroupRule[] {
  return groups.map((g) => ({
    service: g.service,
    addresses: g.addresses,
    allowFrom: g.allowFrom,
    http: g.http,
    ...(g.ports === null ? {} : { ports: g.ports }),
  }));
}

export function toEgressRules(egress: EnvironmentNetwork['egress']): EgressRule[] | null {
  return egress === null ? null : egress.map((e) => (e.port === null ? { cidr: e.cidr } : { cidr: e.cidr, port: e.port }));
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Where `ip` and `setpriv` live: absolute, so an instance's PATH never picks what runs as root. */
export function findTool(name: string, dirs: readonly string[] = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin']): string {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return name;
}

/**
 * Null when the user `uid`/`gid` (no supplementary groups) can enter `dir` and read it;
 * otherwise a sentence naming the first directory on the path that stops it.
 */
export function accessProblem(dir: string, uid: number, gid: number): string | null {
  const abs = path.resolve(dir);
  const parts = abs.split(path.sep).filter((p) => p !== '');
  for (let i = 0; i <= parts.length; i++) {
    const current = path.sep + parts.slice(0, i).join(path.sep);
    let st;
    try {
      st = statSync(current);
    } catch (err) {
      return `${current}: ${errText(err)}`;
    }
    const shift = st.uid === uid ? 6 : st.gid === gid ? 3 : 0;
    const bits = (st.mode >> shift) & 0o7;
    const need = current === abs ? 0o5 : 0o1;
    if ((bits & need) !== need) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      return `${current} is mode ${mode} (owner ${st.uid}:${st.gid}); uid ${uid} needs ${need === 0o5 ? 'read and search' : 'search'} permission, e.g. chmod 0755`;
    }
  }
  return null;
}

export interface InstanceNetworksOptions {
  readonly zone: string;
  /** Prefix of every kernel object. @default 'lanes-' */
  readonly prefix?: string;
  readonly logger: Logger;
  /** Environment indexes this zone's instances still use (running, stopping or backing off). */
  readonly inUse: () => ReadonlySet<number>;
  /** @default a NetworkManager with `prefix` */
  readonly manager?: NetworkManager;
  /** First retry of a failed apply; doubles up to retryMaxMs. @default 1000 */
  readonly retryMinMs?: number;
  /** @default 30000 */
  readonly retryMaxMs?: number;
}

interface AppliedEnvironment {
  readonly plan: EnvironmentPlan;
  /** JSON of the last applied entry; null when the plan was only ensured for an instance. */
  json: string | null;
}

export class InstanceNetworks {
  readonly manager: NetworkManager;
  readonly #zone: string;
  readonly #prefix: string | undefined;
  readonly #log: Logger;
  readonly #inUse: () => ReadonlySet<number>;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #plans = new Map<string, EnvironmentPlan>();
  /** The control plane's last list, by environment index. */
  #desired = new Map<number, { net: EnvironmentNetwork; plan: EnvironmentPlan; json: string }>();
  /** What this supervisor has applied or ensured, by environment index: candidates for removal. */
  readonly #applied = new Map<number, AppliedEnvironment>();
  /** Namespaces of instances gone for good, still to remove (retried until done). */
  readonly #removals = new Map<string, InstanceNetwork>();
  #queue: Promise<unknown> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | null = null;
  #retryMs: number;
  #closed = false;

  constructor(opts: InstanceNetworksOptions) {
    this.#zone = opts.zone;
    this.#prefix = opts.prefix;
    this.#log = opts.logger;
    this.#inUse = opts.inUse;
    this.manager = opts.manager ?? new NetworkManager(opts.prefix === undefined ? {} : { prefix: opts.prefix });
    this.#retryMinMs = opts.retryMinMs ?? 1000;
    this.#retryMaxMs = opts.retryMaxMs ?? 30_000;
    this.#retryMs = this.#retryMinMs;
  }

  /** The plan of an environment (computed once per envIndex/cidr/zones). */
  plan(ref: NetworkRef): EnvironmentPlan {
    const key = `${ref.cidr}#${ref.envIndex}#${ref.zones.join(',')}`;
    let plan = this.#plans.get(key);
    if (plan === undefined) {
      plan = planEnvironment(ref.cidr, ref.envIndex, ref.zones, this.#prefix === undefined ? {} : { prefix: this.#prefix });
      this.#plans.set(key, plan);
    }
    return plan;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Resolves once every queued operation has finished. */
  async idle(): Promise<void> {
    for (;;) {
      const q = this.#queue;
      await q;
      if (q === this.#queue) return;
    }
  }

  /** The control plane's full list; applies what changed, removes what is gone and unused. */
  setNetworks(nets: readonly EnvironmentNetwork[]): Promise<void> {
    const next = new Map<number, { net: EnvironmentNetwork; plan: EnvironmentPlan; json: string }>();
    for (const net of nets) {
      try {
        next.set(net.envIndex, { net, plan: this.plan(net), json: JSON.stringify(net) });
      } catch (err) {
        // Validated on arrival; a plan that still fails is logged and skipped, not fatal.
        this.#log.error({ envIndex: net.envIndex, err: errText(err) }, 'environment network has no valid plan');
      }
    }
    this.#desired = next;
    return this.#reconcile();
  }

  /** Known security groups of an environment, for a namespace that was just created. */
  #groupsOf(index: number): SecurityGroupRule[] | null {
    const d = this.#desired.get(index);
    return d === undefined ? null : toSecurityGroupRules(d.net.groups);
  }

  #reconcile(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      let failed = !(await this.#drainRemovals());
      for (const [index, { net, plan, json }] of this.#desired) {
        const applied = this.#applied.get(index);
        if (applied?.json === json) continue;
        try {
          await this.manager.ensureEnvironment(plan);
          await this.manager.setEgress(plan, toEgressRules(net.egress));
          await this.manager.setSecurityGroups(plan, toSecurityGroupRules(net.groups), { zone: this.#zone });
          this.#applied.set(index, { plan, json });
          this.#log.info({ envIndex: index, tenant: net.tenant, env: net.environment, groups: net.groups.length }, 'environment network applied');
        } catch (err) {
          failed = true;
          this.#log.warn({ envIndex: index, tenant: net.tenant, env: net.environment, err: errText(err) }, 'environment network apply failed; will retry');
        }
      }
      if (!(await this.#sweep())) failed = true;
      this.#scheduleRetry(failed);
    });
  }

  /** Removes the namespaces of instances gone for good; false when one failed (kept for a retry). */
  async #drainRemovals(): Promise<boolean> {
    let ok = true;
    for (const [id, network] of [...this.#removals]) {
      const plan = this.plan(network);
      try {
        await this.manager.removeInstance(plan, id);
        if (this.#removals.get(id) === network) this.#removals.delete(id);
        if (!this.#applied.has(plan.index)) this.#applied.set(plan.index, { plan, json: null });
        this.#log.info({ instance: id, envIndex: plan.index }, 'instance network removed');
      } catch (err) {
        ok = false;
        this.#log.warn({ instance: id, envIndex: plan.index, err: errText(err) }, 'instance network removal failed; will retry');
      }
    }
    return ok;
  }

  /** Removes environments neither listed nor used by this zone's instances; false when one failed. */
  async #sweep(): Promise<boolean> {
    let ok = true;
    const used = this.#inUse();
    for (const [index, { plan }] of [...this.#applied]) {
      if (this.#desired.has(index) || used.has(index)) continue;
      try {
        await this.#removeEnvironment(plan);
        this.#applied.delete(index);
        this.#log.info({ envIndex: index }, 'environment network removed');
      } catch (err) {
        ok = false;
        this.#log.warn({ envIndex: index, err: errText(err) }, 'environment network removal failed; will retry');
      }
    }
    return ok;
  }

  async #removeEnvironment(plan: EnvironmentPlan): Promise<void> {
    try {
      await this.manager.removeEnvironment(plan);
    } catch (err) {
      // Another zone's supervisor may remove the same environment at the same moment: the
      // objects it deleted between our listing and our command make that one fail. Once more
      // finds them gone (removal is idempotent).
      this.#log.debug({ envIndex: plan.index, err: errText(err) }, 'environment removal raced; retrying once');
      await this.manager.removeEnvironment(plan);
    }
  }

  #scheduleRetry(failed: boolean): void {
    if (!failed) {
      this.#retryMs = this.#retryMinMs;
      return;
    }
    if (this.#retryTimer !== null || this.#closed) return;
    const delayMs = this.#retryMs * (0.8 + 0.4 * Math.random());
    this.#retryMs = Math.min(this.#retryMs * 2, this.#retryMaxMs);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#reconcile();
    }, delayMs);
    this.#retryTimer.unref();
  }

  /**
   * Gives a (new or restarting) instance its namespace; rejects with the network's error.
   * Its table is rewritten at once with the environment's known security groups.
   */
  addInstance(d: DesiredInstance & { readonly network: InstanceNetwork }): Promise<{ netns: string; plan: EnvironmentPlan }> {
    // A removal still pending for this id (the instance was desired again) is void now.
    this.#removals.delete(d.id);
    return this.#serial(async () => {
      const plan = this.plan(d.network);
      await this.manager.ensureEnvironment(plan);
      if (!this.#applied.has(plan.index)) this.#applied.set(plan.index, { plan, json: null });
      const { netns } = await this.manager.addInstance(plan, { id: d.id, zone: this.#zone, address: d.network.address, service: d.service });
      const groups = this.#groupsOf(plan.index);
      if (groups !== null) await this.manager.setSecurityGroups(plan, groups, { zone: this.#zone });
      return { netns, plan };
    });
  }

  /**
   * Removes an instance's namespace once its process is gone for good, then environments
   * left unused. Never rejects: a failure is logged and retried with backoff.
   */
  removeInstance(id: string, network: InstanceNetwork): Promise<void> {
    this.#removals.set(id, network);
    // Runs even after close(): an instance stopped during shutdown must not leave its namespace.
    return this.#serial(async () => {
      const removed = await this.#drainRemovals();
      const swept = await this.#sweep();
      this.#scheduleRetry(!removed || !swept);
    });
  }

  /** Stops retrying; queued operations still finish (see idle). */
  close(): void {
    this.#closed = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }
}
