/**
 * The app package manifest (`lanes.yaml`): schema, validation with precise paths, and the
 * normalized form the rest of the platform uses.
 */
import { databaseService, parseDatabaseSpec, type DatabaseSpec } from './database.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { splitCommand } from './command.js';
import { parseDurationMs } from './duration.js';
import { InputError } from './errors.js';
import { isValidName } from './names.js';

export const MANIFEST_FILE = 'lanes.yaml';
export const MAX_MANIFEST_BYTES = 64 * 1024;
export const MAX_INSTANCES_PER_SERVICE = 50;
/** Variables the platform sets itself; a manifest may not override them. */
export const RESERVED_ENV = ['PORT', 'CHECK_PORT', 'HOST', 'LANES_TENANT', 'LANES_ENV', 'LANES_SERVICE', 'LANES_INSTANCE', 'LANES_ZONE', 'LANES_RELEASE'];

/**
 * Variables the dynamic loader and the C library read to load code or data from a path (glibc's
 * "unsecure" list): refused in a manifest as defence in depth. Instances run in their sandbox
 * with these applied only after privileges are dropped, but no reason to take them at all.
 */
export function dangerousEnvName(name: string): boolean {
  return /^LD_/i.test(name) || DANGEROUS_ENV.includes(name.toUpperCase());
}
const DANGEROUS_ENV = ['GCONV_PATH', 'GETCONF_DIR', 'HOSTALIASES', 'LOCPATH', 'MALLOC_TRACE', 'NIS_PATH', 'NLSPATH', 'RESOLV_HOST_CONF', 'RES_OPTIONS'];

const duration = z.union([z.number(), z.string()]).superRefine((v, ctx) => {
  try {
    parseDurationMs(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration; use e.g. 500ms, 1s, 2m` });
  }
});

const healthSchema = z.strictObject({
  path: z.string().regex(/^\/[\x21-\x7e]*$/, 'must be a URL path starting with /'),
  interval: duration.optional(),
  timeout: duration.optional(),
  healthy_threshold: z.number().int().min(1).max(10).optional(),
  unhealthy_threshold: z.number().int().min(1).max(10).optional(),
  /** The status a healthy answer has: one code (200) or a range ("200-399"). */
  expect_status: z
    .union([z.number().int().min(100).max(599), z.string().regex(/^[1-5]\d\d(-[1-5]\d\d)?$/, 'must be a status code or a range like 200-399')])
    .optional(),
});

const stickySchema = z.union([
  z.boolean(),
  z.strictObject({
    cookie: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a cookie name of letters, digits, _ and -').optional(),
    ttl: duration.optional(),
  }),
]);

const outlierSchema = z.strictObject({
  consecutive_failures: z.number().int().min(1).max(1000).optional(),
  base_ejection: duration.optional(),
  max_ejection: duration.optional(),
  max_ejected_percent: z.number().int().min(0).max(100).optional(),
});

const primaryCheckSchema = z.strictObject({
  path: z.string().regex(/^\/[\x21-\x7e]*$/, 'must be a URL path starting with /'),
  interval: duration.optional(),
  timeout: duration.optional(),
});

const serviceSchema = z.strictObject({
  command: z.string().min(1, 'is required'),
  instances: z.number().int().min(0).max(MAX_INSTANCES_PER_SERVICE).optional(),
  http: z.boolean().optional(),
  path: z.string().regex(/^\/[\x21-\x7e]*$/, 'must be a URL path prefix starting with /').optional(),
  port: z.number().int().min(1024).max(65535).optional(),
  health: healthSchema.optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), z.string()).optional(),
  stop_grace: duration.optional(),
  allow_from: z.array(z.string()).max(50).optional(),
  max_surge: z.number().int().min(0).max(MAX_INSTANCES_PER_SERVICE).optional(),
  max_unavailable: z.number().int().min(0).max(MAX_INSTANCES_PER_SERVICE).optional(),
  balance: z.enum(['round_robin', 'least_outstanding']).optional(),
  sticky: stickySchema.optional(),
  timeout: duration.optional(),
  outlier: outlierSchema.optional(),
  tcp: z.boolean().optional(),
  primary_check: primaryCheckSchema.optional(),
  limits: z
    .strictObject({
      memory: z.union([z.string(), z.number()]).optional(),
      cpu: z.number().min(0.05, 'must be at least 0.05 (of a core)').max(64, 'must be at most 64 cores').optional(),
      pids: z.number().int().min(16, 'must be at least 16').max(32_768, 'must be at most 32768').optional(),
    })
    .optional(),
  scale: z
    .strictObject({
      min: z.number().int().min(0).max(MAX_INSTANCES_PER_SERVICE),
      max: z.number().int().min(1).max(MAX_INSTANCES_PER_SERVICE),
      target: z.union([
        z.strictObject({ rps_per_instance: z.number().positive().max(1_000_000) }),
        z.strictObject({ cpu_percent: z.number().positive().max(10_000) }),
      ]),
      stabilization: duration.optional(),
    })
    .optional(),
});

const manifestSchema = z.strictObject({
  name: z.string(),
  services: z.record(z.string(), serviceSchema),
  /** How long a release may take to become healthy before it is rolled back. */
  deadline: duration.optional(),
  /** Managed databases (checked by parseDatabaseSpec). */
  databases: z.record(z.string(), z.unknown()).optional(),
});

export interface HealthCheckSpec {
  readonly path: string;
  /** @default 1000 */
  readonly intervalMs: number;
  /** @default 500 */
  readonly timeoutMs: number;
  /** @default 2 */
  readonly healthyThreshold: number;
  /** @default 2 */
  readonly unhealthyThreshold: number;
  /** Status codes counted healthy, inclusive. @default [200, 399] */
  readonly expectStatus: readonly [number, number];
}

export type BalanceAlgorithm = 'round_robin' | 'least_outstanding';

/** Sticky sessions by cookie: the gateway pins a client to the instance named in the cookie. */
export interface StickySpec {
  /** @default "lanes_sticky" */
  readonly cookie: string;
  /** Cookie lifetime; null: a session cookie. @default null */
  readonly ttlMs: number | null;
}

/** Passive outlier detection: consecutive connect errors or 5xx eject an instance for a while. */
export interface OutlierSpec {
  /** @default 5 */
  readonly consecutiveFailures: number;
  /** First ejection; each repeat doubles it. @default 10000 */
  readonly baseEjectionMs: number;
  /** @default 300000 */
  readonly maxEjectionMs: number;
  /** Never more than this share of a service's instances ejected at once (at least one stays). @default 50 */
  readonly maxEjectedPercent: number;
}

/**
 * Only the instance whose check answers 200 takes connections (a primary-only status page,
 * like InterSystems' mirror status); 503 (or anything else) means "not the primary". The
 * check is served on the instance's second port, given to it as CHECK_PORT.
 */
export interface PrimaryCheckSpec {
  readonly path: string;
  /** @default 1000 */
  readonly intervalMs: number;
  /** @default 500 */
  readonly timeoutMs: number;
}

export const OUTLIER_DEFAULTS: OutlierSpec = { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 };
export const DEFAULT_STICKY_COOKIE = 'lanes_sticky';
/** How long the gateway waits for an instance's response headers unless a service says otherwise. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 30_000;

export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  readonly argv: readonly string[];
  readonly instances: number;
  readonly http: boolean;
  /** Path prefix routed to this service when an environment has several HTTP services. */
  readonly path: string | null;
  /** A fixed port the service listens on; null lets the zone supervisor assign one. */
  readonly port: number | null;
  readonly health: HealthCheckSpec | null;
  readonly env: Readonly<Record<string, string>>;
  /** @default 10000 */
  readonly stopGraceMs: number;
  /** Security group: the services that may connect to this one; null: every service of the environment. */
  readonly allowFrom: readonly string[] | null;
  /** Autoscaling between min and max from the live request rate; null: a fixed count. */
  readonly autoscale: AutoscaleSpec | null;
  /** Rollouts: extra instances allowed beyond the count; null: all new instances at once. */
  readonly maxSurge: number | null;
  /** Rollouts: how many below the count may be unavailable while old ones are retired. @default 0 */
  readonly maxUnavailable: number | null;
  /** How the gateway spreads requests over the instances. @default "round_robin" */
  readonly balance: BalanceAlgorithm;
  /** Sticky sessions by cookie; null: none. */
  readonly sticky: StickySpec | null;
  /** How long the gateway waits for response headers from an instance. @default 30000 */
  readonly timeoutMs: number;
  readonly outlier: OutlierSpec;
  /** A raw TCP service (listening on PORT) exposed on a platform TCP port of its own. */
  readonly tcp: boolean;
  readonly primaryCheck: PrimaryCheckSpec | null;
  /** What one instance may use (cgroups, enforced by its sandbox). Absent in manifests stored before limits existed: the defaults. */
  readonly limits?: ResourceLimits;
}

export interface AutoscaleSpec {
  readonly min: number;
  readonly max: number;
  /** Requests per second one instance should take; null when the target is CPU. */
  readonly targetRps: number | null;
  /** Average CPU per instance to aim for, in percent of one core; null when the target is requests. */
  readonly targetCpuPercent: number | null;
  /** Scale-in waits until every recommendation of this window agrees, against flapping. @default 30000 */
  readonly stabilizationMs: number;
}

export const DEFAULT_STABILIZATION_MS = 30_000;

/**
 * The instance count the live load asks for, within min..max: the request rate over the
 * per-instance target, or (for a CPU target) today's count scaled by average CPU over target.
 */
export function recommendInstances(spec: AutoscaleSpec, load: { rps: number; cpuPercent: number | null; current: number }): number {
  let n: number;
  if (spec.targetRps !== null) n = Math.ceil(Math.max(0, load.rps) / spec.targetRps);
  else if (spec.targetCpuPercent !== null && load.cpuPercent !== null) n = Math.ceil((Math.max(1, load.current) * load.cpuPercent) / spec.targetCpuPercent);
  else n = load.current;
  return Math.min(spec.max, Math.max(spec.min, n));
}

export interface Manifest {
  readonly name: string;
  readonly services: readonly ServiceSpec[];
  /** A rollout not healthy within this is rolled back to the previous release. @default 60000 */
  readonly deadlineMs: number;
  /** Managed databases, by name (absent in releases stored before databases existed: none). */
  readonly databases?: readonly DatabaseSpec[];
}

export const HEALTH_DEFAULTS = { intervalMs: 1000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] } as const;
export const DEFAULT_STOP_GRACE_MS = 10_000;
export const DEFAULT_ROLLOUT_DEADLINE_MS = 60_000;

/** What one instance may use: memory (bytes), CPU (cores, a CFS quota) and processes/threads. */
export interface ResourceLimits {
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly pids: number;
}

/** An instance's limits when its service names none: 512 MiB, one core, 512 processes. */
export const DEFAULT_LIMITS: ResourceLimits = { memoryBytes: 512 * 1024 ** 2, cpus: 1, pids: 512 };
const MEMORY_MIN = 32 * 1024 ** 2;
const MEMORY_MAX = 64 * 1024 ** 3;
const MEMORY_RE = /^(\d+(?:\.\d+)?)(k|kb|kib|m|mb|mib|g|gb|gib)?$/;
const MEMORY_UNITS: Readonly<Record<string, number>> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function parseMemory(at: string, value: string | number): number {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else {
    const m = MEMORY_RE.exec(value.replace(/\s+/g, '').toLowerCase());
    if (m === null) throw new InputError(`lanes.yaml: ${at}: ${JSON.stringify(value)} is not a size; use e.g. 256mb or 1gb`, at);
    bytes = Math.floor(Number(m[1]) * (m[2] === undefined ? 1 : (MEMORY_UNITS[m[2].charAt(0)] ?? 1)));
  }
  if (!Number.isSafeInteger(bytes) || bytes < MEMORY_MIN || bytes > MEMORY_MAX) throw new InputError(`lanes.yaml: ${at}: ${JSON.stringify(value)} is out of range; use 32mb to 64gb`, at);
  return bytes;
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.') || '(root)';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const at = pathOf(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const hint = issue.keys.length === 1 ? suggestKey(issue.keys[0] as string, issue.path) : null;
      return `${at}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`;
    }
    case 'invalid_type':
      return issue.input === undefined ? `${at}: is required` : `${at}: expected ${issue.expected}, got ${typeOf(issue.input)}`;
    case 'too_small':
      return `${at}: ${issue.origin === 'string' ? 'must not be empty' : `must be at least ${String(issue.minimum)}`}`;
    case 'too_big':
      return `${at}: must be at most ${String(issue.maximum)}`;
    case 'invalid_key':
      // The key's own rule (e.g. env names) says what is allowed; zod's default only says "Invalid key".
      return `${at}: ${issue.issues[0]?.message ?? issue.message}`;
    default:
      return `${at}: ${issue.message}`;
  }
}

const KNOWN_KEYS: Record<string, readonly string[]> = {
  root: ['name', 'services', 'deadline', 'databases'],
  service: [
    'command',
    'instances',
    'http',
    'path',
    'port',
    'health',
    'env',
    'stop_grace',
    'allow_from',
    'scale',
    'max_surge',
    'max_unavailable',
    'balance',
    'sticky',
    'timeout',
    'outlier',
    'tcp',
    'primary_check',
  ],
  health: ['path', 'interval', 'timeout', 'healthy_threshold', 'unhealthy_threshold', 'expect_status'],
};

/** The known key closest to a misspelt one (edit distance at most 2), if any. */
function suggestKey(key: string, path: readonly PropertyKey[]): string | null {
  const known = path.length === 0 ? KNOWN_KEYS['root'] : path.length === 2 ? KNOWN_KEYS['service'] : path.at(-1) === 'health' ? KNOWN_KEYS['health'] : undefined;
  let best: string | null = null;
  let bestD = 3;
  for (const k of known ?? []) {
    const d = editDistance(key, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** "200-399" → [200, 399]; 204 → [204, 204]; default [200, 399]. Validated by the schema. */
function parseStatusRange(v: number | string | undefined): readonly [number, number] {
  if (v === undefined) return [200, 399];
  if (typeof v === 'number') return [v, v];
  const [lo, hi] = v.split('-').map(Number);
  return [lo as number, hi ?? (lo as number)];
}

/** Validates a parsed manifest object; throws an InputError naming the first bad field. */
export function validateManifest(input: unknown): Manifest {
  // reportInput: without it zod 4 leaves issue.input unset and every wrong type reads as "is required".
  const parsed = manifestSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    // A misspelt key usually also leaves a required one missing: name the typo, the cause.
    const issues = parsed.error.issues;
    const first = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
    const msg = first ? describeIssue(first) : 'invalid manifest';
    throw new InputError(`lanes.yaml: ${msg}`, first ? pathOf(first.path) : undefined);
  }
  const m = parsed.data;
  if (!isValidName(m.name)) {
    throw new InputError(`lanes.yaml: name: ${JSON.stringify(m.name)} is not a valid name; use 1-30 characters a-z, 0-9 and '-'`, 'name');
  }
  const entries = Object.entries(m.services);
  if (entries.length === 0) throw new InputError('lanes.yaml: services: at least one service is needed', 'services');
  const services: ServiceSpec[] = [];
  for (const [name, s] of entries) {
    const at = `services.${name}`;
    if (!isValidName(name)) {
      throw new InputError(`lanes.yaml: ${at}: ${JSON.stringify(name)} is not a valid service name; use 1-30 characters a-z, 0-9 and '-'`, at);
    }
    for (const key of Object.keys(s.env ?? {})) {
      if (RESERVED_ENV.includes(key)) throw new InputError(`lanes.yaml: ${at}.env.${key}: is set by the platform and cannot be overridden`, `${at}.env.${key}`);
      if (dangerousEnvName(key)) throw new InputError(`lanes.yaml: ${at}.env.${key}: is read by the dynamic loader or the C library to load code from a path and is not allowed`, `${at}.env.${key}`);
    }
    if (s.path !== undefined && s.http !== true) throw new InputError(`lanes.yaml: ${at}.path: only an http service can have a path`, `${at}.path`);
    let argv: string[];
    try {
      argv = splitCommand(s.command, `${at}.command`);
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`lanes.yaml: ${err.message}`, err.field);
      throw err;
    }
    const h = s.health;
    services.push({
      name,
      command: s.command,
      argv,
      instances: s.instances ?? s.scale?.min ?? 1,
      http: s.http ?? false,
      path: s.path ?? null,
      port: s.port ?? null,
      health: h
        ? {
            path: h.path,
            intervalMs: h.interval !== undefined ? parseDurationMs(h.interval) : HEALTH_DEFAULTS.intervalMs,
            timeoutMs: h.timeout !== undefined ? parseDurationMs(h.timeout) : HEALTH_DEFAULTS.timeoutMs,
            healthyThreshold: h.healthy_threshold ?? HEALTH_DEFAULTS.healthyThreshold,
            unhealthyThreshold: h.unhealthy_threshold ?? HEALTH_DEFAULTS.unhealthyThreshold,
            expectStatus: parseStatusRange(h.expect_status),
          }
        : null,
      env: { ...(s.env ?? {}) },
      stopGraceMs: s.stop_grace !== undefined ? parseDurationMs(s.stop_grace) : DEFAULT_STOP_GRACE_MS,
      allowFrom: s.allow_from ? [...new Set(s.allow_from)] : null,
      maxSurge: s.max_surge ?? null,
      maxUnavailable: s.max_unavailable ?? null,
      autoscale: s.scale
        ? {
            min: s.scale.min,
            max: s.scale.max,
            targetRps: 'rps_per_instance' in s.scale.target ? s.scale.target.rps_per_instance : null,
            targetCpuPercent: 'cpu_percent' in s.scale.target ? s.scale.target.cpu_percent : null,
            stabilizationMs: s.scale.stabilization !== undefined ? parseDurationMs(s.scale.stabilization) : DEFAULT_STABILIZATION_MS,
          }
        : null,
      balance: s.balance ?? 'round_robin',
      sticky:
        s.sticky === undefined || s.sticky === false
          ? null
          : s.sticky === true
            ? { cookie: DEFAULT_STICKY_COOKIE, ttlMs: null }
            : { cookie: s.sticky.cookie ?? DEFAULT_STICKY_COOKIE, ttlMs: s.sticky.ttl !== undefined ? parseDurationMs(s.sticky.ttl) : null },
      timeoutMs: s.timeout !== undefined ? parseDurationMs(s.timeout) : DEFAULT_ROUTE_TIMEOUT_MS,
      outlier: {
        consecutiveFailures: s.outlier?.consecutive_failures ?? OUTLIER_DEFAULTS.consecutiveFailures,
        baseEjectionMs: s.outlier?.base_ejection !== undefined ? parseDurationMs(s.outlier.base_ejection) : OUTLIER_DEFAULTS.baseEjectionMs,
        maxEjectionMs: s.outlier?.max_ejection !== undefined ? parseDurationMs(s.outlier.max_ejection) : OUTLIER_DEFAULTS.maxEjectionMs,
        maxEjectedPercent: s.outlier?.max_ejected_percent ?? OUTLIER_DEFAULTS.maxEjectedPercent,
      },
      tcp: s.tcp ?? false,
      primaryCheck: s.primary_check
        ? {
            path: s.primary_check.path,
            intervalMs: s.primary_check.interval !== undefined ? parseDurationMs(s.primary_check.interval) : HEALTH_DEFAULTS.intervalMs,
            timeoutMs: s.primary_check.timeout !== undefined ? parseDurationMs(s.primary_check.timeout) : HEALTH_DEFAULTS.timeoutMs,
          }
        : null,
      limits: {
        memoryBytes: s.limits?.memory !== undefined ? parseMemory(`${at}.limits.memory`, s.limits.memory) : DEFAULT_LIMITS.memoryBytes,
        cpus: s.limits?.cpu ?? DEFAULT_LIMITS.cpus,
        pids: s.limits?.pids ?? DEFAULT_LIMITS.pids,
      },
    });
    for (const key of ['balance', 'sticky', 'timeout', 'outlier'] as const) {
      if (s[key] !== undefined && s.http !== true) throw new InputError(`lanes.yaml: ${at}.${key}: only an http service is load balanced by the gateway`, `${at}.${key}`);
    }
    if (s.tcp === true && s.http === true) throw new InputError(`lanes.yaml: ${at}.tcp: a service is either http or tcp, not both`, `${at}.tcp`);
    if (s.primary_check !== undefined && s.tcp !== true) throw new InputError(`lanes.yaml: ${at}.primary_check: only a tcp service can have a primary_check`, `${at}.primary_check`);
    const pc = services.at(-1)!.primaryCheck;
    if (pc && pc.timeoutMs >= pc.intervalMs) throw new InputError(`lanes.yaml: ${at}.primary_check.timeout: must be shorter than the interval`, `${at}.primary_check.timeout`);
    const ob = services.at(-1)!.outlier;
    if (ob.baseEjectionMs > ob.maxEjectionMs) throw new InputError(`lanes.yaml: ${at}.outlier.base_ejection: is longer than max_ejection`, `${at}.outlier.base_ejection`);
    if (s.max_surge === 0 && (s.max_unavailable ?? 0) === 0) {
      throw new InputError(`lanes.yaml: ${at}.max_surge: with max_surge 0, max_unavailable must be at least 1, or a rollout could never make progress`, `${at}.max_surge`);
    }
    const sc = s.scale;
    if (sc && sc.min > sc.max) throw new InputError(`lanes.yaml: ${at}.scale.min: ${sc.min} is larger than max ${sc.max}`, `${at}.scale.min`);
    if (sc && s.instances !== undefined) throw new InputError(`lanes.yaml: ${at}.instances: a service with scale: starts at scale.min; remove instances`, `${at}.instances`);
    if (h && services.at(-1)!.health!.timeoutMs >= services.at(-1)!.health!.intervalMs) {
      throw new InputError(`lanes.yaml: ${at}.health.timeout: must be shorter than the interval`, `${at}.health.timeout`);
    }
  }
  const names = new Set(services.map((s) => s.name));
  for (const s of services) {
    for (const [i, from] of (s.allowFrom ?? []).entries()) {
      if (!names.has(from)) {
        throw new InputError(`lanes.yaml: services.${s.name}.allow_from.${i}: ${JSON.stringify(from)} is not a service of this app; it has ${[...names].join(', ')}`, `services.${s.name}.allow_from.${i}`);
      }
    }
  }
  const http = services.filter((s) => s.http);
  const unrouted = http.filter((s) => s.path === null);
  if (http.length > 1 && unrouted.length > 1) {
    throw new InputError(
      `lanes.yaml: services: ${unrouted.map((s) => s.name).join(' and ')} are both http services without a routing rule; give all but one a path (e.g. path: /api/)`,
      'services',
    );
  }
  const paths = new Map<string, string>();
  for (const s of http) {
    if (s.path === null) continue;
    const other = paths.get(s.path);
    if (other) throw new InputError(`lanes.yaml: services.${s.name}.path: ${s.path} is already routed to ${other}`, `services.${s.name}.path`);
    paths.set(s.path, s.name);
  }
  const ports = new Map<number, string>();
  for (const s of services) {
    if (s.port === null) continue;
    const other = ports.get(s.port);
    if (other) throw new InputError(`lanes.yaml: services.${s.name}.port: ${s.port} is already used by ${other}`, `services.${s.name}.port`);
    ports.set(s.port, s.name);
  }
  const databases = Object.entries(m.databases ?? {}).map(([name, d]) => parseDatabaseSpec({ base: `databases.${name}.`, nameField: `databases.${name}`, prefix: 'lanes.yaml: ' }, name, d));
  for (const d of databases) {
    const clash = services.find((s) => s.name === databaseService(d.name));
    if (clash) throw new InputError(`lanes.yaml: services.${clash.name}: the name is taken by database ${d.name}'s members; rename the service or the database`, `services.${clash.name}`);
  }
  return {
    name: m.name,
    services,
    deadlineMs: m.deadline !== undefined ? parseDurationMs(m.deadline) : DEFAULT_ROLLOUT_DEADLINE_MS,
    ...(databases.length > 0 ? { databases } : {}),
  };
}

/** Parses and validates the text of a `lanes.yaml`. */
export function parseManifest(text: string): Manifest {
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) {
    throw new InputError(`lanes.yaml: is larger than ${MAX_MANIFEST_BYTES} bytes`, 'lanes.yaml');
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new InputError(`lanes.yaml: not valid YAML: ${msg}`, 'lanes.yaml');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InputError('lanes.yaml: must be a mapping with name and services', 'lanes.yaml');
  }
  return validateManifest(doc);
}
