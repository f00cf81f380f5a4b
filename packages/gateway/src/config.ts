/**
 * The gateway process's configuration: flags parsed once at start, checked by hand with
 * one-line errors naming the flag, defaults in one place, frozen, then passed down.
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, MAX_EDGE_CIDRS, parseCidrBlock } from '@lanes/spec';

/** Listener and upstream limits. Every network path has a bound. */
export interface GatewayLimits {
  /** Time a client has to send the request headers. @default 10000 */
  readonly headersTimeoutMs: number;
  /** Time a client has to send the whole request (headers and body). @default 60000 */
  readonly requestTimeoutMs: number;
  /** Idle time after which a client keep-alive connection is closed. @default 15000 */
  readonly keepAliveTimeoutMs: number;
  /** Largest request header block accepted (431 beyond). @default 16384 */
  readonly maxHeaderBytes: number;
  /** Client connections held at once; more are refused. @default 10000 */
  readonly maxConnections: number;
  /** Time to open a connection to an instance. @default 2000 */
  readonly upstreamConnectTimeoutMs: number;
  /** Time an instance has to send response headers (504 beyond). @default 30000 */
  readonly upstreamHeadersTimeoutMs: number;
  /** Largest silence between two chunks of an instance's response body. @default 30000 */
  readonly upstreamBodyTimeoutMs: number;
  /** Idle time after which a keep-alive connection to an instance is closed. @default 4000 */
  readonly upstreamKeepAliveTimeoutMs: number;
  /** Connections per instance in its keep-alive pool. @default 128 */
  readonly upstreamConnections: number;
  /** How long an instance is skipped after a connection failure. @default 5000 */
  readonly ejectMs: number;
  /** On SIGTERM, how long in-flight requests may take to finish. @default 5000 */
  readonly shutdownGraceMs: number;
  /** Time a client has to finish the TLS handshake on the HTTPS listener (tls.ts). @default 10000 */
  readonly tlsHandshakeTimeoutMs: number;
  /** Idle time after which a WebSocket (upgraded) tunnel is closed. @default 600000 */
  readonly upgradeIdleTimeoutMs: number;
  /** Largest request body of environments without their own limit (413 beyond; access.ts). @default 1073741824 */
  readonly maxBodyBytes: number;
  /** Connections one client (IPv4 address, IPv6 /64) may hold; more are closed at once (access.ts). @default 1000 */
  readonly maxConnectionsPerClient: number;
}

export const DEFAULT_LIMITS: GatewayLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 15_000,
  maxHeaderBytes: 16_384,
  maxConnections: 10_000,
  upstreamConnectTimeoutMs: 2_000,
  upstreamHeadersTimeoutMs: 30_000,
  upstreamBodyTimeoutMs: 30_000,
  upstreamKeepAliveTimeoutMs: 4_000,
  upstreamConnections: 128,
  ejectMs: 5_000,
  shutdownGraceMs: 5_000,
  tlsHandshakeTimeoutMs: 10_000,
  upgradeIdleTimeoutMs: 600_000,
  maxBodyBytes: 1_073_741_824,
  maxConnectionsPerClient: 1_000,
});

/** Each limit's flag and its allowed range. */
const LIMIT_FLAGS: Readonly<Record<keyof GatewayLimits, { readonly flag: string; readonly min: number; readonly max: number }>> = {
  headersTimeoutMs: { flag: 'headers-timeout-ms', min: 100, max: 600_000 },
  requestTimeoutMs: { flag: 'request-timeout-ms', min: 100, max: 3_600_000 },
  keepAliveTimeoutMs: { flag: 'keep-alive-timeout-ms', min: 100, max: 600_000 },
  maxHeaderBytes: { flag: 'max-header-bytes', min: 1_024, max: 1_048_576 },
  maxConnections: { flag: 'max-connections', min: 1, max: 1_000_000 },
  upstreamConnectTimeoutMs: { flag: 'upstream-connect-timeout-ms', min: 10, max: 60_000 },
  upstreamHeadersTimeoutMs: { flag: 'upstream-headers-timeout-ms', min: 10, max: 3_600_000 },
  upstreamBodyTimeoutMs: { flag: 'upstream-body-timeout-ms', min: 10, max: 3_600_000 },
  upstreamKeepAliveTimeoutMs: { flag: 'upstream-keep-alive-timeout-ms', min: 100, max: 600_000 },
  upstreamConnections: { flag: 'upstream-connections', min: 1, max: 10_000 },
  ejectMs: { flag: 'eject-ms', min: 0, max: 600_000 },
  shutdownGraceMs: { flag: 'shutdown-grace-ms', min: 0, max: 600_000 },
  tlsHandshakeTimeoutMs: { flag: 'tls-handshake-timeout-ms', min: 100, max: 120_000 },
  upgradeIdleTimeoutMs: { flag: 'upgrade-idle-timeout-ms', min: 1_000, max: 86_400_000 },
  maxBodyBytes: { flag: 'max-body-bytes', min: 0, max: 8_589_934_592 },
  maxConnectionsPerClient: { flag: 'max-connections-per-client', min: 1, max: 1_000_000 },
};

const LIMIT_KEYS: ReadonlyArray<keyof GatewayLimits> = Object.keys(DEFAULT_LIMITS).filter(
  (k): k is keyof GatewayLimits => k in LIMIT_FLAGS,
);

/** Fills in defaults and checks ranges and the one cross-limit rule Node enforces. */
export function resolveLimits(partial: Partial<GatewayLimits> = {}): GatewayLimits {
  const out: Record<string, number> = {};
  for (const key of LIMIT_KEYS) {
    const { flag, min, max } = LIMIT_FLAGS[key];
    const value = partial[key] ?? DEFAULT_LIMITS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InputError(`--${flag}: ${JSON.stringify(value)} is out of range; use an integer ${min}-${max}`, key);
    }
    out[key] = value;
  }
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...out };
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new InputError(
      `--headers-timeout-ms: ${limits.headersTimeoutMs} exceeds --request-timeout-ms ${limits.requestTimeoutMs}; the headers are part of the request`,
      'headersTimeoutMs',
    );
  }
  return Object.freeze(limits);
}

export interface GatewayConfig {
  readonly httpPort: number;
  /** The HTTPS listener's port (0: a free one); null: no HTTPS. */
  readonly httpsPort: number | null;
  readonly host: string;
  /**
   * Worker processes sharing the listeners (one per core by default); 0 serves from the
   * main process itself, without a primary.
   */
  readonly workers: number;
  /** Port of the admin listener (`GET /metrics`, Prometheus text) on the gateway's host; null: none. */
  readonly adminPort: number | null;
  /** Control-plane base URL; null runs the gateway on its persisted table only. */
  readonly apiUrl: string | null;
  readonly tokenFile: string | null;
  readonly stateDir: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * CIDR blocks of proxies in front of the gateway whose X-Forwarded-For is believed
   * (forwarded.ts), normalized. @default [] (the peer is always the client)
   */
  readonly trustedProxies: readonly string[];
  readonly limits: GatewayLimits;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

function parsePort(flag: string, value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new InputError(`--${flag}: ${JSON.stringify(value)} is not a port; use 0-65535 (0 picks a free one)`, flag);
  }
  return Number(value);
}

/** `--trusted-proxies 10.0.0.0/8,192.168.1.5` (a bare address is one host; '' or none: no proxy). */
export function parseTrustedProxies(value: string): readonly string[] {
  const text = value.trim();
  if (text === '' || text === 'none') return Object.freeze([]);
  const items = text.split(',').map((s) => s.trim());
  if (items.length > MAX_EDGE_CIDRS) throw new InputError(`--trusted-proxies: ${items.length} blocks; use at most ${MAX_EDGE_CIDRS}`, 'trusted-proxies');
  const out: string[] = [];
  for (const item of items) {
    const block = parseCidrBlock('--trusted-proxies', item).text;
    if (!out.includes(block)) out.push(block);
  }
  return Object.freeze(out);
}

function parseInteger(flag: string, value: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new InputError(`--${flag}: ${JSON.stringify(value)} is not a whole number`, flag);
  return Number(value);
}

/** Parses the process flags (`process.argv.slice(2)`). Throws an InputError with one line. */
export function parseConfig(argv: readonly string[]): GatewayConfig {
  const limitOptions: Record<string, { type: 'string' }> = {};
  for (const key of LIMIT_KEYS) limitOptions[LIMIT_FLAGS[key].flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'http-port': { type: 'string' },
        'https-port': { type: 'string' },
        workers: { type: 'string' },
        'admin-port': { type: 'string' },
        host: { type: 'string' },
        api: { type: 'string' },
        'token-file': { type: 'string' },
        'state-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'trusted-proxies': { type: 'string' },
        ...limitOptions,
      },
    }));
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
    throw new InputError(`flags: ${message}`, 'flags');
  }
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : undefined;
  };

  const httpPort = parsePort('http-port', str('http-port') ?? '8080');
  const httpsRaw = str('https-port');
  const httpsPort = httpsRaw === undefined ? null : parsePort('https-port', httpsRaw);
  const workersRaw = str('workers');
  const workers = workersRaw === undefined ? Math.min(availableParallelism(), 16) : parseInteger('workers', workersRaw);
  if (workers > 64) throw new InputError(`--workers: ${workers} is too many; use 0-64 (0: no worker processes)`, 'workers');
  const adminRaw = str('admin-port');
  const adminPort = adminRaw === undefined ? null : parsePort('admin-port', adminRaw);
  const host = str('host') ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:-]{1,253}$/.test(host)) throw new InputError(`--host: ${JSON.stringify(host)} is not an address to listen on`, 'host');

  let apiUrl: string | null = null;
  const api = str('api');
  if (api !== undefined) {
    let url: URL;
    try {
      url = new URL(api);
    } catch {
      throw new InputError(`--api: ${JSON.stringify(api)} is not a URL; use e.g. http://127.0.0.1:7070`, 'api');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InputError(`--api: ${JSON.stringify(api)} is not an http(s) URL`, 'api');
    }
    apiUrl = url.href.replace(/\/+$/, '');
  }
  const tokenFileRaw = str('token-file');
  const tokenFile = tokenFileRaw === undefined ? null : path.resolve(tokenFileRaw);
  if (apiUrl !== null && tokenFile === null) {
    throw new InputError('--token-file: missing; the gateway needs the node token to watch --api', 'token-file');
  }

  const stateDirRaw = str('state-dir');
  if (stateDirRaw === undefined || stateDirRaw.length === 0) {
    throw new InputError('--state-dir: missing; the gateway keeps its routing table and access log there', 'state-dir');
  }

  const level = str('log-level') ?? 'info';
  const logLevel = LOG_LEVELS.find((l) => l === level);
  if (logLevel === undefined) throw new InputError(`--log-level: ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`, 'log-level');

  const trustedProxies = parseTrustedProxies(str('trusted-proxies') ?? '');

  const partial: Partial<Record<keyof GatewayLimits, number>> = {};
  for (const key of LIMIT_KEYS) {
    const raw = str(LIMIT_FLAGS[key].flag);
    if (raw !== undefined) partial[key] = parseInteger(LIMIT_FLAGS[key].flag, raw);
  }

  return Object.freeze({
    httpPort,
    httpsPort,
    host,
    workers,
    adminPort,
    apiUrl,
    tokenFile,
    stateDir: path.resolve(stateDirRaw),
    logLevel,
    trustedProxies,
    limits: resolveLimits(partial),
  });
}
