/**
 * The DNS process's configuration: flags parsed once at start, checked by hand with
 * one-line errors naming the flag, defaults in one place, frozen, then passed down.
 */
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InputError } from '@lanes/spec';
import type { LogLevel } from './logging.js';
import { DEFAULT_DNS_LIMITS, type DnsLimits } from './server.js';

export interface DnsConfig {
  /** UDP and TCP port. @default 8053 */
  readonly port: number;
  /** The address to listen on. @default '127.0.0.1' */
  readonly host: string;
  /** Control-plane base URL; null answers from the persisted zone only. */
  readonly apiUrl: string | null;
  readonly tokenFile: string | null;
  readonly stateDir: string;
  readonly logLevel: LogLevel;
  readonly limits: DnsLimits;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

function integer(flag: string, value: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InputError(`--${flag}: ${JSON.stringify(value)} is out of range; use a whole number ${min}-${max}`, flag);
  }
  return Number(value);
}

/** Parses the process flags (`process.argv.slice(2)`). Throws an InputError with one line. */
export function parseConfig(argv: readonly string[]): DnsConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        // --api as the gateway and the supervisors take it; --control-plane-url says the same.
        api: { type: 'string' },
        'control-plane-url': { type: 'string' },
        'token-file': { type: 'string' },
        'state-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'max-tcp-connections': { type: 'string' },
        'tcp-idle-timeout-ms': { type: 'string' },
      },
    }));
  } catch (err) {
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
    throw new InputError(`flags: ${message}`, 'flags');
  }
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : undefined;
  };

  const port = integer('port', str('port') ?? '8053', 0, 65_535);
  const host = str('host') ?? '127.0.0.1';
  if (!isIPv4(host) && !isIPv6(host)) throw new InputError(`--host: ${JSON.stringify(host)} is not an IP address to listen on, e.g. 127.0.0.1 or ::`, 'host');

  const apiFlag = str('api') !== undefined ? 'api' : 'control-plane-url';
  const api = str('api') ?? str('control-plane-url');
  let apiUrl: string | null = null;
  if (api !== undefined) {
    let url: URL;
    try {
      url = new URL(api);
    } catch {
      throw new InputError(`--${apiFlag}: ${JSON.stringify(api)} is not a URL; use e.g. http://127.0.0.1:7070`, apiFlag);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(`--${apiFlag}: ${JSON.stringify(api)} is not an http(s) URL`, apiFlag);
    apiUrl = url.href.replace(/\/+$/, '');
  }
  const tokenFileRaw = str('token-file');
  const tokenFile = tokenFileRaw === undefined ? null : path.resolve(tokenFileRaw);
  if (apiUrl !== null && tokenFile === null) throw new InputError(`--token-file: missing; the DNS server needs the node token to watch --${apiFlag}`, 'token-file');

  const stateDirRaw = str('state-dir');
  if (stateDirRaw === undefined || stateDirRaw.length === 0) {
    throw new InputError('--state-dir: missing; the DNS server keeps its last zone there', 'state-dir');
  }
  const level = str('log-level') ?? 'info';
  const logLevel = LOG_LEVELS.find((l) => l === level);
  if (logLevel === undefined) throw new InputError(`--log-level: ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`, 'log-level');

  const maxConn = str('max-tcp-connections');
  const idle = str('tcp-idle-timeout-ms');
  const limits: DnsLimits = Object.freeze({
    ...DEFAULT_DNS_LIMITS,
    ...(maxConn !== undefined ? { maxTcpConnections: integer('max-tcp-connections', maxConn, 1, 100_000) } : {}),
    ...(idle !== undefined ? { tcpIdleTimeoutMs: integer('tcp-idle-timeout-ms', idle, 100, 600_000) } : {}),
  });
  return Object.freeze({ port, host, apiUrl, tokenFile, stateDir: path.resolve(stateDirRaw), logLevel, limits });
}
