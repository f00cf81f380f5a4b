/**
 * Security groups and egress as data, then as nftables scripts: pure functions that
 * decide which sources may open connections to an instance and render the tables that
 * enforce it. Every value placed in a script was validated first (names by pattern,
 * addresses and ports by parsing), so a script cannot be broken out of.
 */
import { InputError, checkName } from '@lanes/spec';
import { type EnvironmentPlan, formatIpv4, parseCidr, parseIpv4 } from './plan.js';

/** One service's security group, as the caller (the control plane) knows it. */
export interface SecurityGroupRule {
  readonly service: string;
  /** Addresses of the service's instances. */
  readonly addresses: readonly string[];
  /** Ports the allowed sources may connect to; absent: every port. */
  readonly ports?: readonly number[];
  /** Services that may connect; null: every service of the environment (the default). */
  readonly allowFrom: readonly string[] | null;
  /** True when the gateway routes to the service: the gateway's link may connect. */
  readonly http: boolean;
}

/** One egress allow-list entry: a destination network and optionally one port (TCP and UDP). */
export interface EgressRule {
  readonly cidr: string;
  readonly port?: number;
}

/** Who may open connections to one instance, decided from the rules. */
export interface IngressPolicy {
  /** Source addresses allowed, or 'environment' for every instance of the environment. */
  readonly peers: readonly string[] | 'environment';
  /** Destination ports, or null for all. */
  readonly ports: readonly number[] | null;
  /** Whether the gateway's link (the environment's host address) may connect. */
  readonly gateway: boolean;
}

/** Nothing but the supervisor's probes: a new instance before its security group is known. */
export const CLOSED_POLICY: IngressPolicy = Object.freeze({ peers: Object.freeze([]), ports: null, gateway: false });

function checkPort(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new InputError(`${field}: ${JSON.stringify(value)} is not a port; use 1-65535`, field);
  }
  return value;
}

function sortedAddresses(values: Iterable<string>): string[] {
  return [...new Set(values)].sort((a, b) => parseIpv4('address', a) - parseIpv4('address', b));
}

/** Validates the rules of one environment (names, addresses inside its subnet, references, ports). */
export function checkSecurityGroups(plan: EnvironmentPlan, rules: readonly SecurityGroupRule[]): void {
  const subnet = parseCidr('subnet', plan.subnet);
  const seen = new Map<string, string>();
  const names = new Set<string>();
  rules.forEach((r, i) => {
    checkName(`rules[${i}].service`, r.service);
    if (names.has(r.service)) throw new InputError(`rules[${i}].service: "${r.service}" appears twice`, `rules[${i}].service`);
    names.add(r.service);
    r.addresses.forEach((a, j) => {
      const field = `rules[${i}].addresses[${j}]`;
      const n = parseIpv4(field, a);
      if (n < subnet.base + 2 || n > subnet.base + 253) throw new InputError(`${field}: ${a} is not an instance address of ${plan.subnet}`, field);
      const owner = seen.get(a);
      if (owner !== undefined && owner !== r.service) throw new InputError(`${field}: ${a} belongs to both ${owner} and ${r.service}`, field);
      seen.set(a, r.service);
    });
    r.ports?.forEach((p, j) => checkPort(`rules[${i}].ports[${j}]`, p));
    if (r.ports !== undefined && r.ports.length === 0) throw new InputError(`rules[${i}].ports: empty; leave it out to allow every port`, `rules[${i}].ports`);
  });
  rules.forEach((r, i) => {
    r.allowFrom?.forEach((s, j) => {
      if (!names.has(s)) throw new InputError(`rules[${i}].allowFrom[${j}]: service "${s}" is not in the rules; list every service of the environment`, `rules[${i}].allowFrom[${j}]`);
    });
  });
}

/**
 * The ingress policy of `service`: with allowFrom null every instance of the environment
 * may connect; otherwise only the listed services' instances, plus the service's own
 * instances (replicas talk to each other: replication, clustering).
 */
export function ingressPolicy(rules: readonly SecurityGroupRule[], service: string): IngressPolicy {
  const rule = rules.find((r) => r.service === service);
  if (!rule) return CLOSED_POLICY;
  const ports = rule.ports === undefined ? null : [...new Set(rule.ports)].sort((a, b) => a - b);
  if (rule.allowFrom === null) return { peers: 'environment', ports, gateway: rule.http };
  const from = new Set([...rule.allowFrom, service]);
  const peers = sortedAddresses(rules.filter((r) => from.has(r.service)).flatMap((r) => r.addresses));
  return { peers, ports, gateway: rule.http };
}

export function checkEgress(plan: EnvironmentPlan, allow: readonly EgressRule[] | null): void {
  parseCidr('platformCidr', plan.platformCidr);
  // An entry may overlap the platform network (0.0.0.0/0:443 is the common case): the forward
  // chain rejects the platform network before the egress chain is consulted.
  allow?.forEach((e, i) => {
    parseCidr(`egress[${i}].cidr`, e.cidr);
    if (e.port !== undefined) checkPort(`egress[${i}].port`, e.port);
  });
}

function portSet(ports: readonly number[]): string {
  return `{ ${ports.join(', ')} }`;
}

/** Atomic replace of a small table (inside an instance's namespace): create-if-missing, delete, create. */
function replaceTable(family: string, name: string, body: readonly string[]): string {
  return [`table ${family} ${name}`, `delete table ${family} ${name}`, `table ${family} ${name} {`, ...body, '}', ''].join('\n');
}

/** Removes tables if present (the create-then-delete idiom keeps it idempotent). */
export function deleteTablesScript(tables: readonly { family: string; name: string }[]): string {
  return tables.map((t) => `table ${t.family} ${t.name}\ndelete table ${t.family} ${t.name}\n`).join('');
}

const REJECT = ['meta l4proto tcp reject with tcp reset', 'reject with icmpx type admin-prohibited'];

/**
 * Destinations no instance may reach whatever its egress list says: link-local (cloud
 * metadata services answer at 169.254.169.254) and loopback. Rejected in the forward chain
 * before the egress chain, so an open list (null) or a wide entry (0.0.0.0/0) cannot reach them.
 */
export const NEVER_EGRESS: readonly string[] = Object.freeze(['169.254.0.0/16', '127.0.0.0/8']);

/**
 * The skeleton of the host's two platform tables, shared by every environment (one table
 * per family keeps nft fast: its cost grows with the number of tables, not of chains).
 * Idempotent: everything is added if missing and only the base chains are rewritten.
 *
 * inet: input refuses everything from environment bridges except replies to connections
 * the host opened (so instances reach no host service: control plane, admin DB, other
 * tenants' links); forward sends traffic from a bridge to its environment's chain (map
 * forward_envs) and lets nothing else into a bridge but replies; postrouting applies the
 * environment's SNAT (map nat_envs).
 *
 * bridge: each instance port has its own chain (map ports); a frame from it must carry
 * the instance's MAC and IPv4 address (ARP included) and be IPv4 or ARP, so source
 * addresses are a trustworthy identity for the security groups inside the instances.
 */
export function renderHostBase(prefix: string): string {
  const t = `inet ${prefix}host`;
  const b = `bridge ${prefix}host`;
  const brs = `"${prefix}br*"`;
  return [
    `add table ${t}`,
    `add map ${t} forward_envs { type ifname : verdict; }`,
    `add map ${t} nat_envs { type ifname : verdict; }`,
    `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${t} input`,
    `flush chain ${t} forward`,
    `flush chain ${t} postrouting`,
    `add rule ${t} input iifname ${brs} ct state established,related accept`,
    ...REJECT.map((r) => `add rule ${t} input iifname ${brs} ${r}`),
    `add rule ${t} forward iifname vmap @forward_envs`,
    `add rule ${t} forward oifname ${brs} ct state established,related accept`,
    `add rule ${t} forward oifname ${brs} drop`,
    `add rule ${t} postrouting iifname vmap @nat_envs`,
    `add table ${b}`,
    `add map ${b} ports { type ifname : verdict; }`,
    `add chain ${b} prerouting { type filter hook prerouting priority filter; policy accept; }`,
    `flush chain ${b} prerouting`,
    `add rule ${b} prerouting iifname vmap @ports`,
    // A platform port that is not registered (yet, or any more) passes nothing.
    `add rule ${b} prerouting iifname "${prefix}v*" drop`,
    '',
  ].join('\n');
}

/**
 * One environment's chains in the host's inet table: from its bridge, traffic to its own
 * bridge passes (frames bridged inside the environment show up here when br_netfilter is
 * loaded), replies pass, nothing reaches the platform network (other environments, the
 * egress pool), link-local (the metadata address) or loopback, IPv6 is dropped, and the
 * rest is egress, decided by its egress chain.
 * Outbound connections leave with the environment's egress address. The egress chain is
 * only declared here, so its rules (setEgress) survive a repeated ensureEnvironment.
 */
export function renderEnvironment(plan: EnvironmentPlan): string {
  const t = `inet ${plan.hostTable}`;
  const { forward, egress, nat } = plan.chains;
  const br = `"${plan.bridge}"`;
  return [
    `add chain ${t} ${forward}`,
    `add chain ${t} ${egress}`,
    `add chain ${t} ${nat}`,
    `flush chain ${t} ${forward}`,
    `flush chain ${t} ${nat}`,
    `add rule ${t} ${forward} oifname ${br} accept`,
    `add rule ${t} ${forward} ct state established,related accept`,
    `add rule ${t} ${forward} meta nfproto ipv6 drop`,
    ...REJECT.map((r) => `add rule ${t} ${forward} ip daddr ${plan.platformCidr} ${r}`),
    ...REJECT.map((r) => `add rule ${t} ${forward} ip daddr { ${NEVER_EGRESS.join(', ')} } ${r}`),
    `add rule ${t} ${forward} jump ${egress}`,
    `add rule ${t} ${nat} ip daddr != ${plan.platformCidr} oifname != ${br} snat ip to ${plan.egressAddress}`,
    `add element ${t} forward_envs { ${br} : jump ${forward} }`,
    `add element ${t} nat_envs { ${br} : jump ${nat} }`,
    '',
  ].join('\n');
}

/** Removes one environment's chains and map entries; idempotent (add-then-delete). */
export function renderEnvironmentRemoval(plan: EnvironmentPlan): string {
  const t = `inet ${plan.hostTable}`;
  const { forward, egress, nat } = plan.chains;
  const br = `"${plan.bridge}"`;
  const chains = [forward, egress, nat];
  return [
    ...chains.map((c) => `add chain ${t} ${c}`),
    `add element ${t} forward_envs { ${br} : jump ${forward} }`,
    `add element ${t} nat_envs { ${br} : jump ${nat} }`,
    `delete element ${t} forward_envs { ${br} }`,
    `delete element ${t} nat_envs { ${br} }`,
    ...chains.map((c) => `flush chain ${t} ${c}`),
    ...chains.map((c) => `delete chain ${t} ${c}`),
    '',
  ].join('\n');
}

/** The environment's egress chain: null allows every destination outside the platform; a list only its entries. */
export function renderEgress(plan: EnvironmentPlan, allow: readonly EgressRule[] | null): string {
  checkEgress(plan, allow);
  const c = `inet ${plan.hostTable} ${plan.chains.egress}`;
  const rules =
    allow === null
      ? [`add rule ${c} accept`]
      : [
          ...allow.map((e) => {
            const cidr = parseCidr('cidr', e.cidr).text;
            return e.port === undefined ? `add rule ${c} ip daddr ${cidr} accept` : `add rule ${c} ip daddr ${cidr} meta l4proto { tcp, udp } th dport ${e.port} accept`;
          }),
          ...REJECT.map((r) => `add rule ${c} ${r}`),
        ];
  return [`add chain ${c}`, `flush chain ${c}`, ...rules, ''].join('\n');
}

/** One bridge port the anti-spoofing sets pin: its veth, the instance's MAC and address. */
export interface BridgePort {
  readonly veth: string;
  readonly mac: string;
  readonly address: string;
}

function portChain(prefix: string, veth: string): string {
  if (!veth.startsWith(`${prefix}v`) || !/^lanes-[a-z0-9]{1,9}$/.test(veth)) {
    throw new InputError(`veth: ${JSON.stringify(veth)} is not a platform port name (${prefix}v...)`, 'veth');
  }
  return `port_${veth.slice(prefix.length + 1)}`;
}

/** Registers a port: its own chain (rewritten whole, so nothing stale survives) and its map entry. */
export function renderPort(plan: EnvironmentPlan, port: BridgePort): string {
  parseIpv4('address', port.address);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(port.mac)) throw new InputError(`mac: ${JSON.stringify(port.mac)} is not a MAC address`, 'mac');
  const b = `bridge ${plan.hostTable}`;
  const chain = portChain(plan.prefix, port.veth);
  return [
    `add chain ${b} ${chain}`,
    `flush chain ${b} ${chain}`,
    `add rule ${b} ${chain} ether saddr != ${port.mac} drop`,
    `add rule ${b} ${chain} ether type != { ip, arp } drop`,
    `add rule ${b} ${chain} ether type ip ip saddr != ${port.address} drop`,
    `add rule ${b} ${chain} ether type arp arp saddr ether != ${port.mac} drop`,
    `add rule ${b} ${chain} ether type arp arp saddr ip != ${port.address} drop`,
    `add rule ${b} ${chain} accept`,
    `add element ${b} ports { "${port.veth}" : jump ${chain} }`,
    '',
  ].join('\n');
}

/** Unregisters a port; idempotent (add-then-delete). */
export function renderPortRemoval(plan: EnvironmentPlan, veth: string): string {
  const b = `bridge ${plan.hostTable}`;
  const chain = portChain(plan.prefix, veth);
  return [
    `add chain ${b} ${chain}`,
    `add element ${b} ports { "${veth}" : jump ${chain} }`,
    `delete element ${b} ports { "${veth}" }`,
    `flush chain ${b} ${chain}`,
    `delete chain ${b} ${chain}`,
    '',
  ].join('\n');
}

/**
 * The table inside an instance's own namespace (family inet, policy drop): loopback,
 * replies, the supervisor's probes, the gateway when the service is http, and the peers
 * the security group allows; everything else is refused (TCP reset, ICMP otherwise).
 */
export function renderInstanceTable(plan: EnvironmentPlan, policy: IngressPolicy): string {
  const dport = policy.ports === null ? '' : ` meta l4proto { tcp, udp } th dport ${portSet(policy.ports)}`;
  const peers =
    policy.peers === 'environment'
      ? [`    ip saddr ${plan.subnet}${dport} accept`]
      : policy.peers.length === 0
        ? []
        : [`    ip saddr { ${sortedAddresses(policy.peers).map((a) => formatIpv4(parseIpv4('peer', a))).join(', ')} }${dport} accept`];
  return replaceTable('inet', 'lanes', [
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iif "lo" accept',
    '    ct state established,related accept',
    `    ip saddr ${plan.supervisorAddress} accept`,
    ...(policy.gateway ? [`    ip saddr ${plan.gatewayAddress}${dport} accept`] : []),
    `    ip saddr ${plan.gatewayAddress} meta l4proto tcp reject with tcp reset`,
    `    ip saddr ${plan.gatewayAddress} drop`,
    ...peers,
    ...REJECT.map((r) => `    ${r}`),
    '  }',
  ]);
}
