/**
 * NetworkManager: converges the kernel (namespaces, veths, bridges, nftables) to what the
 * caller asks, one operation at a time, idempotently. The kernel is the record: each
 * instance's host-side veth carries an alias naming its environment, zone, id, address and
 * namespace, so a restarted manager (or `cleanupAll` after a crash) finds everything again.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { InputError, checkZoneName } from '@lanes/spec';
import { type Runner, argv, checkNetnsName, runCommand } from './commands.js';
import {
  DEFAULT_PREFIX,
  type EnvironmentPlan,
  checkInstanceAddress,
  checkInstanceId,
  checkPrefix,
  formatIpv4,
  instanceNames,
  parseCidr,
} from './plan.js';
import {
  type EgressRule,
  type SecurityGroupRule,
  checkEgress,
  checkSecurityGroups,
  deleteTablesScript,
  ingressPolicy,
  renderEgress,
  renderEnvironment,
  renderEnvironmentRemoval,
  renderHostBase,
  renderInstanceTable,
  renderPort,
  renderPortRemoval,
} from './rules.js';

export interface NetworkManagerOptions {
  /** Prefix of every object this manager creates and `cleanupAll` removes. @default 'lanes-' */
  readonly prefix?: string;
  /** Per-command timeout. @default 10000 */
  readonly timeoutMs?: number;
  /** Runs commands; replaceable for tests. @default runCommand */
  readonly runner?: Runner;
}

export interface InstanceSpec {
  readonly id: string;
  readonly zone: string;
  readonly address: string;
  /** The service the instance belongs to: its security group applies from the start. */
  readonly service?: string;
}

/** One instance as found in the kernel. */
export interface InstanceRecord {
  readonly environment: number;
  readonly zone: string;
  readonly id: string;
  readonly address: string;
  readonly netns: string;
  readonly veth: string;
  readonly up: boolean;
}

export interface NetworkObjects {
  readonly namespaces: readonly string[];
  readonly links: readonly string[];
  /** `family name`, e.g. `inet lanes-env3`. */
  readonly tables: readonly string[];
}

const ALIAS_RE = /^lanes instance env=(\d{1,3}) zone=([a-z][a-z0-9]{0,7}) id=([A-Za-z0-9][A-Za-z0-9_.-]{0,62}) address=([0-9.]{7,15}) netns=(\S{1,90})$/;

function aliasOf(plan: EnvironmentPlan, spec: InstanceSpec, netns: string): string {
  return `lanes instance env=${plan.index} zone=${spec.zone} id=${spec.id} address=${spec.address} netns=${netns}`;
}

function isSafeNetns(name: string): boolean {
  try {
    checkNetnsName(name);
    return true;
  } catch {
    return false;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bridgeMac(plan: EnvironmentPlan): string {
  const gw = formatIpv4(parseCidr('subnet', plan.subnet).base + 1).split('.').map((b) => Number(b).toString(16).padStart(2, '0'));
  return ['02', '6c', ...gw].join(':');
}

export class NetworkManager {
  readonly prefix: string;
  readonly #run: Runner;
  readonly #timeoutMs: number;
  /** Last security groups per environment index (memory only; the caller re-sends them). */
  readonly #groups = new Map<number, readonly SecurityGroupRule[]>();
  /** Zones cut by zoneDown; seeded from the kernel (down veths) on first use. */
  #downZones: Set<string> | null = null;
  /** Rendered instance tables by namespace, to skip no-op nft runs. */
  readonly #applied = new Map<string, string>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NetworkManagerOptions = {}) {
    this.prefix = checkPrefix(opts.prefix ?? DEFAULT_PREFIX);
    this.#run = opts.runner ?? runCommand;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** One operation at a time: each reads the kernel, then changes it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #exec(cmd: readonly string[], input?: string): Promise<string> {
    return this.#run(cmd, input === undefined ? { timeoutMs: this.#timeoutMs } : { input, timeoutMs: this.#timeoutMs });
  }

  #checkPlan(plan: EnvironmentPlan): void {
    if (plan.prefix !== this.prefix) throw new InputError(`plan.prefix: "${plan.prefix}" differs from the manager's "${this.prefix}"`, 'plan.prefix');
  }

  async #links(): Promise<{ name: string; up: boolean; alias: string | null }[]> {
    const parsed: unknown = JSON.parse((await this.#exec(argv.linkList())) || '[]');
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((l: unknown) => {
      if (!isRecord(l) || typeof l.ifname !== 'string') return [];
      const flags = Array.isArray(l.flags) ? l.flags : [];
      return [{ name: l.ifname, up: flags.includes('UP'), alias: typeof l.ifalias === 'string' ? l.ifalias : null }];
    });
  }

  async #namespaces(): Promise<string[]> {
    const text = await this.#exec(argv.netnsList());
    const parsed: unknown = text.trim() === '' ? [] : JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((n: unknown) => (isRecord(n) && typeof n.name === 'string' ? [n.name] : []));
  }

  async #tables(): Promise<{ family: string; name: string }[]> {
    const text = await this.#exec(argv.nftListTables());
    return text.split('\n').flatMap((line) => {
      const m = /^table (\w+) (\S+)$/.exec(line.trim());
      return m && m[1] !== undefined && m[2] !== undefined ? [{ family: m[1], name: m[2] }] : [];
    });
  }

  /** Every instance this manager's prefix owns, read from the veth aliases. */
  async #instances(): Promise<InstanceRecord[]> {
    const links = await this.#links();
    return links.flatMap((l) => {
      if (!l.name.startsWith(`${this.prefix}v`) || l.alias === null) return [];
      const m = ALIAS_RE.exec(l.alias);
      if (!m || m[1] === undefined || m[2] === undefined || m[3] === undefined || m[4] === undefined || m[5] === undefined) return [];
      return [{ environment: Number(m[1]), zone: m[2], id: m[3], address: m[4], netns: m[5], veth: l.name, up: l.up }];
    });
  }

  async #downZoneSet(): Promise<Set<string>> {
    if (this.#downZones === null) {
      this.#downZones = new Set((await this.#instances()).filter((i) => !i.up).map((i) => i.zone));
    }
    return this.#downZones;
  }

  #portScript(plan: EnvironmentPlan, inst: { id: string; address: string; veth: string }): string {
    return renderPort(plan, { veth: inst.veth, mac: instanceNames(plan, inst.id, inst.address).mac, address: inst.address });
  }

  async #applyInstanceTable(plan: EnvironmentPlan, netns: string, script: string): Promise<void> {
    if (this.#applied.get(netns) === script) return;
    await this.#exec(argv.nftApply(netns), script);
    this.#applied.set(netns, script);
  }

  async #enableForwarding(): Promise<void> {
    // Egress (SNAT) needs the host to route; the isolation tables decide what may pass.
    const file = '/proc/sys/net/ipv4/ip_forward';
    if ((await readFile(file, 'utf8')).trim() !== '1') await writeFile(file, '1\n');
  }

  /** Creates (or repairs) the environment's bridge, host addresses and host tables. Idempotent. */
  ensureEnvironment(plan: EnvironmentPlan): Promise<void> {
    this.#checkPlan(plan);
    return this.#serial(async () => {
      const links = await this.#links();
      if (!links.some((l) => l.name === plan.bridge)) await this.#exec(argv.bridgeAdd(plan.bridge, bridgeMac(plan)));
      // The gateway's address first: it is the primary, so the host's connections come from it.
      await this.#exec(argv.addrAdd(plan.bridge, `${plan.gatewayAddress}/24`));
      await this.#exec(argv.addrAdd(plan.bridge, `${plan.supervisorAddress}/24`));
      await this.#exec(argv.bridgeUp(plan.bridge));
      // The egress chain keeps whatever setEgress put there; it is created open when missing.
      const egressExists = await this.#exec(argv.nftListChain('inet', plan.hostTable, plan.chains.egress)).then(() => true, () => false);
      let script = renderHostBase(this.prefix) + renderEnvironment(plan);
      if (!egressExists) script += renderEgress(plan, null);
      // Re-registers the environment's ports too: repairs a flushed ruleset, no-op otherwise.
      for (const inst of await this.#instances()) if (inst.environment === plan.index) script += this.#portScript(plan, inst);
      await this.#exec(argv.nftApply(null), script);
      await this.#enableForwarding();
    });
  }

  /**
   * Gives an instance its namespace, attached to the environment's bridge at `address`.
   * Its ingress follows the last security groups of the environment when they name
   * `service`; otherwise only the supervisor's probes reach it until setSecurityGroups.
   */
  addInstance(plan: EnvironmentPlan, spec: InstanceSpec): Promise<{ netns: string; address: string }> {
    this.#checkPlan(plan);
    checkInstanceId(spec.id);
    checkZoneName('zone', spec.zone);
    checkInstanceAddress(plan, spec.zone, spec.address);
    const names = instanceNames(plan, spec.id, spec.address);
    const alias = aliasOf(plan, spec, names.netns);
    return this.#serial(async () => {
      const instances = await this.#instances();
      const clash = instances.find((i) => i.environment === plan.index && i.address === spec.address && i.id !== spec.id);
      if (clash) throw new InputError(`address: ${spec.address} is already used by instance ${clash.id} of environment ${plan.index}`, 'address');
      const existing = instances.find((i) => i.veth === names.veth);
      const down = (await this.#downZoneSet()).has(spec.zone);
      const rules = this.#groups.get(plan.index);
      const policy = rules && spec.service !== undefined ? ingressPolicy(rules, spec.service) : ingressPolicy([], '');
      const removed = existing !== undefined && (existing.address !== spec.address || existing.zone !== spec.zone || existing.netns !== names.netns);
      if (existing && removed) await this.#removeRecord(existing);
      const nsExists = (await this.#namespaces()).includes(names.netns);
      // After a removal the listing changed; otherwise the one taken above still holds.
      const vethExists = existing !== undefined && !removed ? true : (await this.#links()).some((l) => l.name === names.veth);
      // A veth without its namespace (a crash half-way) has its peer elsewhere: start over.
      if (!nsExists && vethExists) await this.#exec(argv.linkDelete(names.veth));
      if (!nsExists) await this.#exec(argv.netnsAdd(names.netns));
      if (!nsExists || !vethExists) await this.#exec(argv.vethAdd(names.veth, names.mac, names.netns));
      // A new port is attached down: anti-spoofing and the instance's own table go in before
      // it comes up. A port that exists keeps its state (a repeated call does not bounce it).
      const keep = existing !== undefined && !removed;
      await this.#exec(argv.portSet(names.veth, plan.bridge, alias, keep && !down));
      const configure = argv.nsConfigure(names.netns, `${spec.address}/24`, plan.gatewayAddress);
      await this.#exec(configure.argv, configure.input);
      await this.#exec(argv.nftApply(null), this.#portScript(plan, { id: spec.id, address: spec.address, veth: names.veth }));
      this.#applied.delete(names.netns);
      await this.#applyInstanceTable(plan, names.netns, renderInstanceTable(plan, policy));
      if (!down && !keep) await this.#exec(argv.linkUp(names.veth, true));
      return { netns: names.netns, address: spec.address };
    });
  }

  async #removeRecord(rec: { veth: string; netns: string }): Promise<void> {
    const links = await this.#links();
    // Deleting the host side destroys the pair even if a process still holds the namespace.
    if (links.some((l) => l.name === rec.veth)) await this.#exec(argv.linkDelete(rec.veth));
    if ((await this.#namespaces()).includes(rec.netns)) await this.#exec(argv.netnsDelete(rec.netns));
    this.#applied.delete(rec.netns);
  }

  /** Removes an instance's namespace and veth. Stop its processes first. Idempotent. */
  removeInstance(plan: EnvironmentPlan, id: string): Promise<void> {
    this.#checkPlan(plan);
    checkInstanceId(id);
    return this.#serial(async () => {
      const instances = await this.#instances();
      const rec = instances.find((i) => i.environment === plan.index && i.id === id);
      const fallback = { veth: instanceNames(plan, id, plan.gatewayAddress).veth, netns: `${plan.prefix}${plan.index}-${id}` };
      await this.#removeRecord(rec ?? fallback);
      await this.#exec(argv.nftApply(null), renderHostBase(this.prefix) + renderPortRemoval(plan, (rec ?? fallback).veth));
    });
  }

  /** Every instance of this manager's prefix the kernel holds (all environments). */
  listInstances(): Promise<InstanceRecord[]> {
    return this.#serial(() => this.#instances());
  }

  /**
   * Sets the security groups of one environment (every service, with its instances'
   * addresses) and rewrites each instance's table where it changed. Call it whenever the
   * environment's instances change: a new address must enter its peers' allowed sets.
   * With `zone`, only that zone's instances are rewritten (each zone supervisor owns its
   * own instances' tables); the rules are remembered for the whole environment either way.
   */
  setSecurityGroups(plan: EnvironmentPlan, rules: readonly SecurityGroupRule[], opts: { zone?: string } = {}): Promise<void> {
    this.#checkPlan(plan);
    checkSecurityGroups(plan, rules);
    if (opts.zone !== undefined) checkZoneName('zone', opts.zone);
    const frozen = Object.freeze(rules.map((r) => Object.freeze({ ...r })));
    return this.#serial(async () => {
      this.#groups.set(plan.index, frozen);
      const owner = new Map<string, string>();
      for (const r of frozen) for (const a of r.addresses) owner.set(a, r.service);
      const instances = (await this.#instances()).filter((i) => i.environment === plan.index && (opts.zone === undefined || i.zone === opts.zone));
      for (const inst of instances) {
        const service = owner.get(inst.address);
        const policy = ingressPolicy(service === undefined ? [] : frozen, service ?? '');
        await this.#applyInstanceTable(plan, inst.netns, renderInstanceTable(plan, policy));
      }
    });
  }

  /** null: outbound to anything outside the platform; a list: only those destinations. */
  setEgress(plan: EnvironmentPlan, allow: readonly EgressRule[] | null): Promise<void> {
    this.#checkPlan(plan);
    checkEgress(plan, allow);
    return this.#serial(async () => {
      await this.#exec(argv.nftApply(null), renderHostBase(this.prefix) + renderEnvironment(plan) + renderEgress(plan, allow));
    });
  }

  async #setZone(zone: string, up: boolean): Promise<void> {
    checkZoneName('zone', zone);
    await this.#serial(async () => {
      const down = await this.#downZoneSet();
      if (up) down.delete(zone);
      else down.add(zone);
      for (const inst of await this.#instances()) {
        if (inst.zone === zone && inst.up !== up) await this.#exec(argv.linkUp(inst.veth, up));
      }
    });
  }

  /** Cuts the links of every instance in `zone` (all environments); instances added later stay cut. */
  zoneDown(zone: string): Promise<void> {
    return this.#setZone(zone, false);
  }

  zoneUp(zone: string): Promise<void> {
    return this.#setZone(zone, true);
  }

  /** Zones currently cut. */
  async downZones(): Promise<string[]> {
    return this.#serial(async () => [...(await this.#downZoneSet())].sort());
  }

  /** Removes the environment's instances, bridge and tables. Idempotent. */
  removeEnvironment(plan: EnvironmentPlan): Promise<void> {
    this.#checkPlan(plan);
    return this.#serial(async () => {
      let script = renderHostBase(this.prefix);
      for (const inst of await this.#instances()) {
        if (inst.environment !== plan.index) continue;
        await this.#removeRecord(inst);
        script += renderPortRemoval(plan, inst.veth);
      }
      if ((await this.#links()).some((l) => l.name === plan.bridge)) await this.#exec(argv.linkDelete(plan.bridge));
      await this.#exec(argv.nftApply(null), script + renderEnvironmentRemoval(plan));
      this.#groups.delete(plan.index);
    });
  }

  /**
   * Removes every namespace, link and nftables table with the prefix, including a crashed
   * run's. Processes still inside those namespaces are killed (SIGKILL) unless told not to.
   */
  cleanupAll(opts: { killProcesses?: boolean } = {}): Promise<NetworkObjects> {
    return this.#serial(async () => {
      const found = await this.#objects();
      for (const ns of found.namespaces) {
        if (opts.killProcesses !== false) {
          const pids = (await this.#exec(argv.netnsPids(ns))).split('\n').map((p) => p.trim()).filter((p) => /^\d+$/.test(p));
          for (const pid of pids) {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              /* already gone */
            }
          }
        }
      }
      // Veths first (each takes its peer along), then bridges and whatever else remains.
      const links = [...found.links].sort((a, b) => Number(b.startsWith(`${this.prefix}v`)) - Number(a.startsWith(`${this.prefix}v`)));
      for (const link of links) {
        if ((await this.#links()).some((l) => l.name === link)) await this.#exec(argv.linkDelete(link));
      }
      for (const ns of found.namespaces) await this.#exec(argv.netnsDelete(ns));
      if (found.tables.length > 0) {
        await this.#exec(argv.nftApply(null), deleteTablesScript(found.tables.map((t) => {
          const [family = '', name = ''] = t.split(' ');
          return { family, name };
        })));
      }
      this.#groups.clear();
      this.#applied.clear();
      this.#downZones = new Set();
      return found;
    });
  }

  async #objects(): Promise<NetworkObjects> {
    const p = this.prefix;
    // Names outside the safe patterns are left alone (and reported by nothing) rather than passed to argv.
    const namespaces = (await this.#namespaces()).filter((n) => n.startsWith(p) && isSafeNetns(n)).sort();
    const links = (await this.#links()).map((l) => l.name.split('@')[0] ?? l.name).filter((n) => n.startsWith(p) && /^[a-z0-9-]{1,15}$/.test(n)).sort();
    const tables = (await this.#tables()).filter((t) => t.name.startsWith(p) && /^[a-z0-9-]{1,40}$/.test(t.name) && /^(inet|ip|ip6|bridge|arp|netdev)$/.test(t.family)).map((t) => `${t.family} ${t.name}`).sort();
    return { namespaces, links, tables };
  }

  /** What exists in the kernel with the prefix. */
  listObjects(): Promise<NetworkObjects> {
    return this.#serial(() => this.#objects());
  }
}
