/**
 * The wire contract between the control plane and the authoritative DNS server: one zone
 * snapshot, streamed as NDJSON by `GET /v1/dns/watch` (a full snapshot on connect and on
 * every change). The DNS server answers from the last snapshot it accepted, persisted on
 * disk, so names keep resolving while the control plane is down.
 */

/** An HTTP(S) health check the DNS server runs itself against one failover target. */
export interface DnsHealthCheck {
  /** GET this URL; a 2xx or 3xx answer within `timeoutMs` is a success (redirects are not followed). */
  readonly url: string;
  /** Time between two checks (from the start of one to the start of the next). */
  readonly intervalMs: number;
  /** Time a check may take in total (connect, headers); at most `intervalMs`. */
  readonly timeoutMs: number;
  /** Consecutive successes that make an unhealthy target healthy. */
  readonly healthyThreshold: number;
  /** Consecutive failures that make a healthy target unhealthy. */
  readonly unhealthyThreshold: number;
}

/** One target of a failover record: an address, checked or not. */
export interface DnsTarget {
  /** An IPv4 address (answered as A) or an IPv6 address (answered as AAAA). */
  readonly address: string;
  /** null: never checked, always counted as healthy (allowed for the secondary only). */
  readonly check: DnsHealthCheck | null;
}

/**
 * A name answered with its primary target while that is healthy, else with its secondary
 * while that is healthy, else (both down) with the primary again: failing open, as a
 * resolver that gets no answer helps nobody.
 */
export interface DnsFailoverRecord {
  /** Fully qualified, lower case, without the trailing dot, inside the zone's domain. */
  readonly name: string;
  /** Seconds. */
  readonly ttl: number;
  readonly primary: DnsTarget;
  readonly secondary: DnsTarget;
}

/** Everything the DNS server answers for one platform domain. */
export interface DnsZoneSnapshot {
  /** The platform domain (the zone apex), lower case, without the trailing dot. */
  readonly domain: string;
  /** SOA serial (32-bit); increases with every change of the zone. */
  readonly serial: number;
  /** TTL in seconds of the host records and the SOA (its minimum is the negative-caching TTL). */
  readonly ttl: number;
  /** The gateway's public addresses: every host, the apex and the name server answer with these. */
  readonly addresses: { readonly v4: readonly string[]; readonly v6: readonly string[] };
  /** Environment hosts (`<env>.<tenant>.<domain>`), lower case, sorted. */
  readonly hosts: readonly string[];
  readonly failover: readonly DnsFailoverRecord[];
}

/** Control plane → DNS server, one line of `GET /v1/dns/watch`. */
export type DnsWatchMessage =
  | { readonly type: 'zone'; readonly zone: DnsZoneSnapshot }
  | { readonly type: 'ping'; readonly time: string };
