/**
 * Live figures per environment service, counted on the hot path and read by the metrics
 * endpoint (Prometheus text format) and by the traffic report the autoscaler uses.
 *
 * Counting costs a few integer increments per request on an object the matched route
 * already holds — no lookup, no string built per request. Counters only grow; readers take
 * differences. In a gateway with several workers each worker counts its own and the
 * primary adds the workers' latest snapshots together (`mergeSnapshots`).
 */

/** Latency histogram bucket bounds, in seconds (Prometheus `le`). */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
const BOUNDS_MS = LATENCY_BUCKETS_S.map((s) => s * 1000);

export class ServiceStats {
  requests = 0;
  /** Answers by class: index 1 for 1xx … 5 for 5xx; index 0 for the client leaving first. */
  readonly statuses = [0, 0, 0, 0, 0, 0];
  /** Per bucket (not cumulative); the last slot is +Inf. */
  readonly latency = new Array<number>(BOUNDS_MS.length + 1).fill(0);
  latencySumMs = 0;
  inFlight = 0;
  ejections = 0;
  /** `requests` at the last traffic report. */
  reported = 0;

  constructor(
    readonly tenant: string,
    readonly environment: string,
    readonly service: string,
  ) {}

  /** One finished request: its status (0 when the client left) and duration. */
  record(status: number, ms: number): void {
    const cls = status >= 100 && status < 600 ? (status / 100) | 0 : 0;
    this.statuses[cls] = (this.statuses[cls] as number) + 1;
    let i = 0;
    while (i < BOUNDS_MS.length && ms > (BOUNDS_MS[i] as number)) i++;
    this.latency[i] = (this.latency[i] as number) + 1;
    this.latencySumMs += ms;
  }
}

/** The figures of one service as plain data (sent between processes). */
export interface StatsSnapshot {
  readonly tenant: string;
  readonly environment: string;
  readonly service: string;
  readonly requests: number;
  readonly statuses: readonly number[];
  readonly latency: readonly number[];
  readonly latencySumMs: number;
  readonly inFlight: number;
  readonly ejections: number;
}

/** Stats objects by `tenant/environment/service`, kept for the life of the process. */
export class StatsRegistry {
  readonly #byKey = new Map<string, ServiceStats>();

  of(tenant: string, environment: string, service: string): ServiceStats {
    const key = `${tenant}/${environment}/${service}`;
    let s = this.#byKey.get(key);
    if (s === undefined) {
      s = new ServiceStats(tenant, environment, service);
      this.#byKey.set(key, s);
    }
    return s;
  }

  snapshot(): StatsSnapshot[] {
    return [...this.#byKey.values()].map((s) => ({
      tenant: s.tenant,
      environment: s.environment,
      service: s.service,
      requests: s.requests,
      statuses: [...s.statuses],
      latency: [...s.latency],
      latencySumMs: s.latencySumMs,
      inFlight: s.inFlight,
      ejections: s.ejections,
    }));
  }

  /** Requests per service since the previous call (the autoscaler's traffic report). */
  takeRequests(): { tenant: string; environment: string; service: string; requests: number }[] {
    const out: { tenant: string; environment: string; service: string; requests: number }[] = [];
    for (const s of this.#byKey.values()) {
      const n = s.requests - s.reported;
      s.reported = s.requests;
      if (n > 0) out.push({ tenant: s.tenant, environment: s.environment, service: s.service, requests: n });
    }
    return out;
  }
}

/** Adds up snapshots from several workers, service by service. */
export function mergeSnapshots(parts: readonly (readonly StatsSnapshot[])[]): StatsSnapshot[] {
  const byKey = new Map<string, { -readonly [K in keyof StatsSnapshot]: StatsSnapshot[K] } & { statuses: number[]; latency: number[] }>();
  for (const part of parts) {
    for (const s of part) {
      const key = `${s.tenant}/${s.environment}/${s.service}`;
      const m = byKey.get(key);
      if (m === undefined) {
        byKey.set(key, { ...s, statuses: [...s.statuses], latency: [...s.latency] });
        continue;
      }
      m.requests += s.requests;
      m.latencySumMs += s.latencySumMs;
      m.inFlight += s.inFlight;
      m.ejections += s.ejections;
      s.statuses.forEach((v, i) => (m.statuses[i] = (m.statuses[i] ?? 0) + v));
      s.latency.forEach((v, i) => (m.latency[i] = (m.latency[i] ?? 0) + v));
    }
  }
  return [...byKey.values()];
}

/** Gateway-wide figures beside the per-service ones. */
export interface GatewayGauges {
  readonly connections: number;
  readonly workers: number;
  readonly tableRevision: number | null;
}

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const STATUS_CLASS = ['client_closed', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** The Prometheus text exposition (version 0.0.4) of the gateway's figures. */
export function renderPrometheus(stats: readonly StatsSnapshot[], gauges: GatewayGauges): string {
  const lines: string[] = [];
  const head = (name: string, type: string, help: string): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const sorted = [...stats].sort((a, b) => `${a.tenant}/${a.environment}/${a.service}`.localeCompare(`${b.tenant}/${b.environment}/${b.service}`));
  const base = (s: StatsSnapshot): string => `tenant="${label(s.tenant)}",environment="${label(s.environment)}",service="${label(s.service)}"`;

  head('lanes_gateway_requests_total', 'counter', 'Requests routed to a service, by status class (client_closed: the client left before the answer).');
  for (const s of sorted) {
    s.statuses.forEach((n, i) => {
      if (n > 0 || i === 2) lines.push(`lanes_gateway_requests_total{${base(s)},code="${STATUS_CLASS[i]}"} ${n}`);
    });
  }
  head('lanes_gateway_request_duration_seconds', 'histogram', 'Time from the request to the end of the answer, as the gateway saw it.');
  for (const s of sorted) {
    let cumulative = 0;
    LATENCY_BUCKETS_S.forEach((le, i) => {
      cumulative += s.latency[i] ?? 0;
      lines.push(`lanes_gateway_request_duration_seconds_bucket{${base(s)},le="${le}"} ${cumulative}`);
    });
    cumulative += s.latency[LATENCY_BUCKETS_S.length] ?? 0;
    lines.push(`lanes_gateway_request_duration_seconds_bucket{${base(s)},le="+Inf"} ${cumulative}`);
    lines.push(`lanes_gateway_request_duration_seconds_sum{${base(s)}} ${(s.latencySumMs / 1000).toFixed(6)}`);
    lines.push(`lanes_gateway_request_duration_seconds_count{${base(s)}} ${cumulative}`);
  }
  head('lanes_gateway_requests_in_flight', 'gauge', 'Requests being served right now.');
  for (const s of sorted) lines.push(`lanes_gateway_requests_in_flight{${base(s)}} ${s.inFlight}`);
  head('lanes_gateway_ejections_total', 'counter', 'Instances ejected by outlier detection.');
  for (const s of sorted) lines.push(`lanes_gateway_ejections_total{${base(s)}} ${s.ejections}`);
  head('lanes_gateway_connections', 'gauge', 'Client connections open.');
  lines.push(`lanes_gateway_connections ${gauges.connections}`);
  head('lanes_gateway_workers', 'gauge', 'Worker processes serving the listeners.');
  lines.push(`lanes_gateway_workers ${gauges.workers}`);
  if (gauges.tableRevision !== null) {
    head('lanes_gateway_table_revision', 'gauge', 'Revision of the routing table in force.');
    lines.push(`lanes_gateway_table_revision ${gauges.tableRevision}`);
  }
  return `${lines.join('\n')}\n`;
}
