/**
 * The wire contracts between the control plane and the data plane (zone supervisors and
 * the gateway). Both sides import these types; the streams are NDJSON over HTTP, each line
 * one message, so they survive proxies and are easy to read with curl.
 */
import type { BalanceAlgorithm, HealthCheckSpec, OutlierSpec, PrimaryCheckSpec, StickySpec } from './manifest.js';

/** One instance a zone supervisor must keep running, as the control plane wants it. */
export interface DesiredInstance {
  readonly id: string;
  readonly tenant: string;
  readonly environment: string;
  readonly service: string;
  /** Content hash of the release package the instance runs. */
  readonly release: string;
  readonly argv: readonly string[];
  /** Extra environment variables from the manifest (the platform adds PORT, HOST, LANES_*). */
  readonly env: Readonly<Record<string, string>>;
  /** A fixed port, or null to let the supervisor pick a free one. */
  readonly port: number | null;
  /** True when the instance listens on PORT (http services, services with a port): without an HTTP check it gets a TCP check. */
  readonly listens: boolean;
  readonly health: HealthCheckSpec | null;
  readonly stopGraceMs: number;
  /** Where the instance lives in its environment's private network; null without isolation (loopback). */
  readonly network: InstanceNetwork | null;
  /**
   * The instance serves a check endpoint (a primary_check) on a second port, given to it as
   * CHECK_PORT and reported back as `checkPort`: true lets the supervisor pick it, a number
   * fixes it (a database member's keeper, whose peers are told it). Absent in older lists: false.
   */
  readonly checkPort?: boolean | number;
  /**
   * The user and group the instance runs as in its sandbox: its environment's own (a base plus
   * the environment's sandbox number), so no two environments share one. Absent: the
   * platform's own programs (a database member), which run as the supervisor does.
   */
  readonly user?: { readonly uid: number; readonly gid: number };
  /** Memory, CPU and process limits of its sandbox (the service's `limits`). Absent: the defaults. */
  readonly limits?: { readonly memoryBytes: number; readonly cpus: number; readonly pids: number };
}

/** An environment's instances run as uid/gid SANDBOX_UID_BASE + its sandbox number. */
export const SANDBOX_UID_BASE = 200_000;

/** The inputs of the environment's network plan (`planEnvironment(cidr, envIndex, zones)` in @lanes/network). */
export interface NetworkRef {
  /** The environment's network index: its /24 inside the platform CIDR. */
  readonly envIndex: number;
  /** The platform CIDR, e.g. 10.88.0.0/16. */
  readonly cidr: string;
  /** The platform's zones in order (a zone's position picks its address range). */
  readonly zones: readonly string[];
}

export interface InstanceNetwork extends NetworkRef {
  /** The instance's own address in its zone's range; it listens there. */
  readonly address: string;
}

/** One service's security group, as the kernel enforces it inside each of its instances. */
export interface ServiceGroup {
  readonly service: string;
  /** Addresses of the service's instances. */
  readonly addresses: readonly string[];
  /** Ports the allowed sources may connect to; null: every port. */
  readonly ports: readonly number[] | null;
  /** Services that may connect; null: every service of the environment. */
  readonly allowFrom: readonly string[] | null;
  /** The gateway routes to it: the gateway's link may connect. */
  readonly http: boolean;
}

/** An environment's network as every zone supervisor must apply it. */
export interface EnvironmentNetwork extends NetworkRef {
  readonly tenant: string;
  readonly environment: string;
  /** Egress allow-list; null: any destination outside the platform. */
  readonly egress: readonly { readonly cidr: string; readonly port: number | null }[] | null;
  readonly groups: readonly ServiceGroup[];
}

/** Control plane → supervisor, one line of `GET /v1/agent/watch?zone=Z`. */
export type AgentWatchMessage =
  | {
      readonly type: 'desired';
      readonly revision: number;
      readonly instances: readonly DesiredInstance[];
      /** Private networks of the live environments (empty without isolation); any other `lanes-` environment network is removed. */
      readonly networks: readonly EnvironmentNetwork[];
    }
  | { readonly type: 'ping'; readonly time: string };

export type InstanceState = 'starting' | 'running' | 'backoff' | 'crashloop' | 'stopping' | 'stopped';

/** What a supervisor observes of one instance. */
export interface ObservedInstance {
  readonly id: string;
  readonly state: InstanceState;
  readonly pid: number | null;
  /** The address the instance is reached at (never assumed to be loopback). */
  readonly address: string;
  readonly port: number | null;
  /** The CHECK_PORT given to the instance, when it asked for one. */
  readonly checkPort?: number | null;
  readonly healthy: boolean;
  readonly restarts: number;
  readonly lastExitCode: number | null;
  readonly lastExitSignal: string | null;
  /** A sentence explaining the state, e.g. "crash-looping: exited 5 times within 60s (code 1)". */
  readonly message: string;
  readonly startedAt: string | null;
}

/** Supervisor → control plane, `POST /v1/agent/report` (also the heartbeat). */
export interface AgentReport {
  readonly zone: string;
  /** Where the supervisor serves logs and control requests. */
  readonly agentUrl: string;
  readonly pid: number;
  /** The address instances of this zone are reached at. */
  readonly address: string;
  readonly instances: readonly ObservedInstance[];
  /** Live figures per running instance (not state: kept in memory by the control plane). */
  readonly metrics?: readonly InstanceMetrics[];
}

export interface InstanceMetrics {
  readonly id: string;
  /** CPU used since the previous report, in percent of one core. */
  readonly cpuPercent: number;
}

/** One reachable, healthy instance in the gateway's routing table. */
export interface Endpoint {
  readonly instance: string;
  readonly zone: string;
  readonly address: string;
  readonly port: number;
  /** Where the instance serves its primary check (TCP routes with a primary_check). */
  readonly checkPort?: number | null;
}

/**
 * How the gateway balances one route. Every field is optional on the wire (tables persisted
 * by an older gateway lack them); the gateway fills in the defaults of the manifest.
 */
export interface Route {
  /** Path prefix; `/` matches everything. Longest prefix wins. */
  readonly pathPrefix: string;
  readonly service: string;
  readonly endpoints: readonly Endpoint[];
  /** @default "round_robin" */
  readonly balance?: BalanceAlgorithm;
  /** @default null */
  readonly sticky?: StickySpec | null;
  /** Response-headers timeout for this route. @default 30000 */
  readonly timeoutMs?: number;
  /** Active health checks made by the gateway itself; null: none (the supervisors' checks still gate the table). */
  readonly health?: HealthCheckSpec | null;
  readonly outlier?: OutlierSpec;
}

/** A token bucket: `rps` tokens a second, up to `burst`. */
export interface RateLimit {
  readonly rps: number;
  readonly burst: number;
}

/**
 * Access control and edge behaviour of one environment (`lanes edge set`). Limits the
 * gateway applies before the Host is known (header size, header time) are the gateway's own.
 */
export interface EdgeSettings {
  /** Client CIDRs allowed; empty: everyone (unless denied). */
  readonly allow: readonly string[];
  /** Client CIDRs refused (checked before allow). */
  readonly deny: readonly string[];
  /** Per client IP; null: none. */
  readonly clientRate: RateLimit | null;
  /** For the whole environment; null: none. */
  readonly environmentRate: RateLimit | null;
  /** Largest request body; null: the gateway's default. */
  readonly maxBodyBytes: number | null;
  /** Open connections per client IP; null: the gateway's default. */
  readonly maxConnectionsPerClient: number | null;
  /** Answer plain-HTTP requests with a redirect to HTTPS. */
  readonly httpsRedirect: boolean;
  /** Strict-Transport-Security max-age in seconds on HTTPS answers; null: no header. */
  readonly hstsMaxAgeS: number | null;
}

/** A certificate the gateway serves for an environment's host names (PEM). */
export interface TlsMaterial {
  /** The leaf first, then any intermediates. */
  readonly certPem: string;
  readonly keyPem: string;
  /** platform: issued by the platform's CA and renewed automatically; custom: `lanes cert set`. */
  readonly source: 'platform' | 'custom';
  readonly notAfter: string;
}

export interface VirtualHost {
  readonly host: string;
  readonly tenant: string;
  readonly environment: string;
  readonly routes: readonly Route[];
  /** @default no access control, no redirect, no HSTS */
  readonly edge?: EdgeSettings;
  /** null or absent: the host is not served over HTTPS. */
  readonly tls?: TlsMaterial | null;
}

/** A platform TCP port for one service of one environment. */
export interface TcpRoute {
  /** The port the gateway listens on for this service. */
  readonly port: number;
  readonly tenant: string;
  readonly environment: string;
  readonly service: string;
  readonly endpoints: readonly Endpoint[];
  /** Only the endpoint whose check answers 200 gets connections; null: all healthy ones, in turn. */
  readonly primaryCheck: PrimaryCheckSpec | null;
  /** Client CIDRs allowed/denied, from the environment's edge settings. */
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

export interface RoutingTable {
  /** Increases with every change; the gateway ignores tables older than the one it has. */
  readonly revision: number;
  readonly generatedAt: string;
  readonly hosts: readonly VirtualHost[];
  /** @default [] */
  readonly tcp?: readonly TcpRoute[];
}

/** Control plane → gateway, one line of `GET /v1/gateway/watch`. */
export type GatewayWatchMessage =
  | { readonly type: 'table'; readonly table: RoutingTable }
  | { readonly type: 'ping'; readonly time: string };

/** One line of `GET /v1/tenants/T/environments/E/logs` (NDJSON), and of an agent's log endpoint. */
export interface LogLine {
  /** When the line was read by the supervisor; null for lines read back from the log file. */
  readonly time: string | null;
  readonly instance: string;
  readonly service: string;
  readonly zone: string;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
}
