/**
 * `lanes edge show|set|reset TENANT/ENV`: an environment's access control at the gateway
 * (allow/deny lists, rate limits, body and connection limits, HTTPS redirect, HSTS). Flags
 * are checked here with the parsers the API uses (@lanes/spec), so a typo fails before
 * anything is sent; `set` sends only the flags given (PATCH), `reset` puts the defaults.
 */
import { formatByteSize, formatHstsMaxAge, formatRateLimit, isEdgeSettings, parseByteSize, parseCidrBlock, parseConnectionLimit, parseEnvRef, parseHstsMaxAge, parseOnOff, parseRateLimit } from '@lanes/spec';
import type { EdgeSettings } from '@lanes/spec';
import { connect } from './api.js';
import { expectPositionals, parseCommandArgs } from './args.js';
import type { CommandContext } from './commands.js';
import { CliError, UsageError } from './errors.js';
import { printUsage, usageOf } from './help.js';
import { envPath } from './rollout.js';

const SET_FLAGS = {
  allow: { type: 'string' },
  deny: { type: 'string' },
  'client-rate': { type: 'string' },
  'env-rate': { type: 'string' },
  'max-body': { type: 'string' },
  'max-conns-per-client': { type: 'string' },
  'https-redirect': { type: 'string' },
  hsts: { type: 'string' },
} as const;

/** `--allow`/`--deny`: CIDRs separated by commas, or `none` for an empty list. */
function cidrFlag(flag: string, value: string): string[] {
  const text = value.trim();
  if (text === 'none') return [];
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`${flag}: ${JSON.stringify(value)} has an empty entry; use e.g. 203.0.113.0/24,2001:db8::/32, or none`);
  const out: string[] = [];
  for (const item of items) {
    const cidr = parseCidrBlock(flag, item).text;
    if (!out.includes(cidr)) out.push(cidr);
  }
  return out;
}

/** The PATCH body for the flags given, each checked locally. */
export function edgePatchFromFlags(values: Partial<Record<keyof typeof SET_FLAGS, string>>): Partial<EdgeSettings> {
  const patch: { -readonly [K in keyof EdgeSettings]?: EdgeSettings[K] } = {};
  if (values.allow !== undefined) patch.allow = cidrFlag('--allow', values.allow);
  if (values.deny !== undefined) patch.deny = cidrFlag('--deny', values.deny);
  if (values['client-rate'] !== undefined) patch.clientRate = parseRateLimit('--client-rate', values['client-rate']);
  if (values['env-rate'] !== undefined) patch.environmentRate = parseRateLimit('--env-rate', values['env-rate']);
  if (values['max-body'] !== undefined) patch.maxBodyBytes = parseByteSize('--max-body', values['max-body']);
  if (values['max-conns-per-client'] !== undefined) patch.maxConnectionsPerClient = parseConnectionLimit('--max-conns-per-client', values['max-conns-per-client']);
  if (values['https-redirect'] !== undefined) patch.httpsRedirect = parseOnOff('--https-redirect', values['https-redirect']);
  if (values.hsts !== undefined) patch.hstsMaxAgeS = parseHstsMaxAge('--hsts', values.hsts);
  return patch;
}

/** The settings as `lanes edge show` prints them: one aligned line per setting. */
export function renderEdge(ref: string, e: EdgeSettings): string[] {
  const rows: Array<[string, string]> = [
    ['allow', e.allow.length === 0 ? 'everyone' : e.allow.join(', ')],
    ['deny', e.deny.length === 0 ? 'no one' : e.deny.join(', ')],
    ['client rate', e.clientRate === null ? 'off' : `${formatRateLimit(e.clientRate)} per client IP`],
    ['environment rate', e.environmentRate === null ? 'off' : formatRateLimit(e.environmentRate)],
    ['max body', e.maxBodyBytes === null ? 'gateway default' : formatByteSize(e.maxBodyBytes)],
    ['max conns per client', e.maxConnectionsPerClient === null ? 'gateway default' : String(e.maxConnectionsPerClient)],
    ['https redirect', e.httpsRedirect ? 'on' : 'off'],
    ['hsts', e.hstsMaxAgeS === null ? 'off' : `max-age ${formatHstsMaxAge(e.hstsMaxAgeS)} (${e.hstsMaxAgeS} s)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`edge settings of ${ref}`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)];
}

function decodeEdge(body: unknown): EdgeSettings {
  if (!isEdgeSettings(body)) throw new CliError('the control plane answered with edge settings this lanes cannot read; is it the same version?');
  return body;
}

/** `lanes edge show|set|reset TENANT/ENV` */
export async function edgeCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'edge');
  if (sub !== 'show' && sub !== 'set' && sub !== 'reset') throw new UsageError(`edge: unknown subcommand ${JSON.stringify(sub)}; use show, set or reset`);
  const name = `edge ${sub}`;
  if (sub === 'show') {
    const args = parseCommandArgs(name, rest, { json: { type: 'boolean' } });
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 1, 1, usageOf(name));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const { api } = await connect(ctx.config);
    const edge = decodeEdge(await api.get(`${envPath(ref.tenant, ref.environment)}/edge`));
    if (args.values.json === true) ctx.io.line(JSON.stringify(edge, null, 2));
    else for (const l of renderEdge(`${ref.tenant}/${ref.environment}`, edge)) ctx.io.line(l);
    return 0;
  }
  if (sub === 'reset') {
    const args = parseCommandArgs(name, rest, {});
    if (args.help) return printUsage(ctx.io, name);
    expectPositionals(name, args.positionals, 1, 1, usageOf(name));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const { api } = await connect(ctx.config);
    const edge = decodeEdge((await api.request('PUT', `${envPath(ref.tenant, ref.environment)}/edge`, { json: {} })).body);
    for (const l of renderEdge(`${ref.tenant}/${ref.environment}`, edge)) ctx.io.line(l);
    return 0;
  }
  const args = parseCommandArgs(name, rest, SET_FLAGS);
  if (args.help) return printUsage(ctx.io, name);
  expectPositionals(name, args.positionals, 1, 1, usageOf(name));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const patch = edgePatchFromFlags(args.values);
  if (Object.keys(patch).length === 0) throw new UsageError(`${name}: give at least one setting; usage: ${usageOf(name)}`);
  const { api } = await connect(ctx.config);
  const edge = decodeEdge((await api.request('PATCH', `${envPath(ref.tenant, ref.environment)}/edge`, { json: patch })).body);
  for (const l of renderEdge(`${ref.tenant}/${ref.environment}`, edge)) ctx.io.line(l);
  return 0;
}
