/**
 * `lanes dns list|set|delete`: the platform DNS's failover records. A record answers its
 * primary address while the primary's health check passes, else its secondary (see
 * docs/api.md, "DNS"). Flags are checked here and named in errors before the control
 * plane, which checks the name against the platform domain and its environments, is asked.
 */
import { isIP } from 'node:net';
import { parseDurationMs } from '@lanes/spec';
import { connect } from './api.js';
import { expectPositionals, parseCommandArgs, parseIntArg } from './args.js';
import type { CommandContext } from './commands.js';
import { CliError, UsageError } from './errors.js';
import { table } from './format.js';
import { printUsage, usageOf } from './help.js';

export interface DnsCheck {
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
}

export interface DnsRecord {
  readonly name: string;
  readonly ttl: number;
  readonly primary: { readonly address: string; readonly check: DnsCheck | null };
  readonly secondary: { readonly address: string; readonly check: DnsCheck | null };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeCheck(v: unknown): DnsCheck | null {
  if (!isObj(v) || typeof v['url'] !== 'string') return null;
  const n = (k: string): number => (typeof v[k] === 'number' ? v[k] : 0);
  return { url: v['url'], intervalMs: n('intervalMs'), timeoutMs: n('timeoutMs'), healthyThreshold: n('healthyThreshold'), unhealthyThreshold: n('unhealthyThreshold') };
}

/** A record from the API; says which field was wrong. */
export function decodeDnsRecord(v: unknown, where = 'record'): DnsRecord {
  if (!isObj(v) || typeof v['name'] !== 'string' || typeof v['ttl'] !== 'number') throw new CliError(`the control plane sent a malformed ${where}`);
  const target = (key: 'primary' | 'secondary'): DnsRecord['primary'] => {
    const t = v[key];
    if (!isObj(t) || typeof t['address'] !== 'string') throw new CliError(`the control plane sent a malformed ${where}.${key}`);
    return { address: t['address'], check: decodeCheck(t['check']) };
  };
  return { name: v['name'], ttl: v['ttl'], primary: target('primary'), secondary: target('secondary') };
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function describeCheck(c: DnsCheck | null): string {
  return c === null ? 'none (always healthy)' : `${c.url} every ${seconds(c.intervalMs)}`;
}

export function renderDnsRecords(records: readonly DnsRecord[]): string[] {
  if (records.length === 0) return ['no dns records'];
  return table(
    ['NAME', 'TTL', 'PRIMARY', 'PRIMARY CHECK', 'SECONDARY', 'SECONDARY CHECK'],
    records.map((r) => [r.name, `${r.ttl}s`, r.primary.address, describeCheck(r.primary.check), r.secondary.address, describeCheck(r.secondary.check)]),
  );
}

/** `30s`, `5m`, or a bare number of seconds; whole seconds 0-86400. */
export function parseTtlSeconds(value: string): number {
  const trimmed = value.trim();
  let ms: number;
  try {
    ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : parseDurationMs(trimmed, 'ttl');
  } catch {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms) || ms % 1000 !== 0 || ms < 0 || ms > 86_400_000) throw new UsageError(`--ttl: ${JSON.stringify(value)} is not a TTL; use whole seconds up to a day, e.g. 30s, 5m or 60`);
  return ms / 1000;
}

function durationFlag(flag: string, value: string): number {
  try {
    return parseDurationMs(value.trim(), flag);
  } catch {
    throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a duration; use e.g. 10s, 500ms`);
  }
}

function addressFlag(flag: string, value: string | undefined): string {
  if (value === undefined) throw new UsageError(`dns set: --${flag} is required; usage: ${usageOf('dns set')}`);
  if (isIP(value) === 0) throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not an IP address; use e.g. 192.0.2.10 or 2001:db8::10`);
  return value;
}

function urlFlag(flag: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a URL; use e.g. http://192.0.2.10/healthz`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not an http(s) URL`);
  return value;
}

/** `lanes dns list|set|delete` */
export async function dnsCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'dns');
  if (sub !== 'list' && sub !== 'set' && sub !== 'delete') throw new UsageError(`dns: unknown subcommand ${JSON.stringify(sub)}; use list, set or delete`);
  const name = `dns ${sub}`;
  if (sub === 'list') {
    const args = parseCommandArgs(name, rest, {});
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 0, 0, usageOf(name));
    const { api } = await connect(ctx.config);
    const body = await api.get('/v1/dns/records');
    const items = isObj(body) && Array.isArray(body['items']) ? body['items'] : null;
    if (items === null) throw new CliError('the control plane sent a malformed list of dns records');
    for (const l of renderDnsRecords(items.map((r, i) => decodeDnsRecord(r, `records.items[${i}]`)))) ctx.io.line(l);
    return 0;
  }
  if (sub === 'delete') {
    const args = parseCommandArgs(name, rest, {});
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 1, 1, usageOf(name));
    const record = String(args.positionals[0]);
    const { api } = await connect(ctx.config);
    await api.request('DELETE', `/v1/dns/records/${encodeURIComponent(record)}`);
    ctx.io.line(`deleted dns record ${record.toLowerCase().replace(/\.$/, '')}`);
    return 0;
  }
  const args = parseCommandArgs(name, rest, {
    primary: { type: 'string' },
    'primary-check': { type: 'string' },
    secondary: { type: 'string' },
    'secondary-check': { type: 'string' },
    ttl: { type: 'string' },
    'check-interval': { type: 'string' },
    'check-timeout': { type: 'string' },
    'healthy-threshold': { type: 'string' },
    'unhealthy-threshold': { type: 'string' },
  });
  if (args.help) return printUsage(ctx.io, name);
  expectPositionals(name, args.positionals, 1, 1, usageOf(name));
  const v = args.values;
  const primary = addressFlag('primary', v.primary);
  const secondary = addressFlag('secondary', v.secondary);
  if (v['primary-check'] === undefined) throw new UsageError(`dns set: --primary-check is required (the URL whose health decides between primary and secondary); usage: ${usageOf(name)}`);
  // The check settings apply to both checks; left out, the control plane's defaults apply.
  const settings: Record<string, number> = {};
  if (v['check-interval'] !== undefined) settings['intervalMs'] = durationFlag('check-interval', v['check-interval']);
  if (v['check-timeout'] !== undefined) settings['timeoutMs'] = durationFlag('check-timeout', v['check-timeout']);
  if (v['healthy-threshold'] !== undefined) settings['healthyThreshold'] = parseIntArg('--healthy-threshold', v['healthy-threshold'], 1, 10);
  if (v['unhealthy-threshold'] !== undefined) settings['unhealthyThreshold'] = parseIntArg('--unhealthy-threshold', v['unhealthy-threshold'], 1, 10);
  const body = {
    ...(v.ttl !== undefined ? { ttl: parseTtlSeconds(v.ttl) } : {}),
    primary: { address: primary, check: { url: urlFlag('primary-check', v['primary-check']), ...settings } },
    secondary: { address: secondary, check: v['secondary-check'] === undefined ? null : { url: urlFlag('secondary-check', v['secondary-check']), ...settings } },
  };
  const { api } = await connect(ctx.config);
  const res = await api.request('PUT', `/v1/dns/records/${encodeURIComponent(String(args.positionals[0]))}`, { json: body });
  const r = decodeDnsRecord(res.body);
  ctx.io.line(
    `${res.status === 201 ? 'created' : 'replaced'} dns record ${r.name}: primary ${r.primary.address} (check ${describeCheck(r.primary.check)}), secondary ${r.secondary.address} (check ${describeCheck(r.secondary.check)}), ttl ${r.ttl}s`,
  );
  return 0;
}
