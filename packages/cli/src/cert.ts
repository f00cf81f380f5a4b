/**
 * `lanes ca` and `lanes cert set|show|clear`: the platform CA certificate that clients
 * trust, and each environment's certificate (issued by the platform and renewed, or one the
 * user brings). The control plane validates what `cert set` uploads and answers a refusal
 * with one line naming what is wrong; the key is sent once and never shown again.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { parseEnvRef } from '@lanes/spec';
import { connect } from './api.js';
import { expectPositionals, parseCommandArgs } from './args.js';
import { CliError, UsageError } from './errors.js';
import { table } from './format.js';
import { printUsage, usageOf } from './help.js';
import type { CommandContext } from './commands.js';
import { envPath } from './rollout.js';

/** What the API answers about a certificate (docs/api.md, Certificate). */
export interface CertificateView {
  readonly source: string;
  readonly host: string;
  readonly subject: string;
  readonly issuer: string;
  readonly names: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly fingerprint256: string;
  readonly selfSigned: boolean;
  readonly renewAfter: string | null;
}

/** The largest PEM file sent (the API's limit per field). */
const MAX_PEM_BYTES = 65_536;

export function decodeCertificate(v: unknown): CertificateView {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError('the control plane answered with a certificate that is not an object');
  const o = v as Record<string, unknown>; // checked just above: a non-array object
  const s = (k: string): string => {
    const x = o[k];
    if (typeof x !== 'string') throw new CliError(`the control plane answered with a certificate without ${k}`);
    return x;
  };
  const names = Array.isArray(o['names']) ? o['names'].filter((n): n is string => typeof n === 'string') : [];
  return {
    source: s('source'),
    host: typeof o['host'] === 'string' ? o['host'] : '',
    subject: s('subject'),
    issuer: s('issuer'),
    names,
    notBefore: s('notBefore'),
    notAfter: s('notAfter'),
    fingerprint256: s('fingerprint256'),
    selfSigned: o['selfSigned'] === true,
    renewAfter: typeof o['renewAfter'] === 'string' ? o['renewAfter'] : null,
  };
}

export function renderCertificate(c: CertificateView): string[] {
  const source =
    c.source === 'platform'
      ? `platform (issued by the platform CA${c.renewAfter ? `, renewed automatically after ${c.renewAfter}` : ''})`
      : `custom (lanes cert set; not renewed by the platform${c.selfSigned ? '; self-signed' : ''})`;
  return table(
    ['FIELD', 'VALUE'],
    [
      ['host', c.host],
      ['source', source],
      ['subject', c.subject],
      ['issuer', c.issuer],
      ['names', c.names.join(', ')],
      ['valid', `${c.notBefore} to ${c.notAfter}`],
      ['fingerprint', `SHA256 ${c.fingerprint256}`],
    ],
  ).slice(1);
}

/** `lanes ca [--out FILE]` */
export async function caCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('ca', argv, { out: { type: 'string' } });
  if (args.help) return printUsage(ctx.io, 'ca');
  expectPositionals('ca', args.positionals, 0, 0, usageOf('ca'));
  const { api, domain } = await connect(ctx.config);
  const res = await api.stream('/v1/ca', AbortSignal.timeout(30_000));
  const pem = await res.text();
  let subject: string;
  try {
    subject = new X509Certificate(pem).subject.split('\n').join(', ');
  } catch {
    throw new CliError('the control plane answered /v1/ca with something that is not a PEM certificate');
  }
  const out = args.values.out;
  if (out === undefined) {
    ctx.io.write(pem.endsWith('\n') ? pem : `${pem}\n`);
    return 0;
  }
  try {
    await writeFile(out, pem, { mode: 0o644 });
  } catch (err) {
    throw new CliError(`--out: cannot write ${JSON.stringify(out)} (${errCode(err)})`);
  }
  ctx.io.line(`wrote the platform CA certificate (${subject}) to ${out}`);
  ctx.io.line(`clients trust it with e.g. curl --cacert ${out} https://<env>.<tenant>.${domain ?? '<domain>'}:<https-port>/`);
  return 0;
}

/** `lanes cert set|show|clear TENANT/ENV` */
export async function certCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'cert');
  if (sub !== 'set' && sub !== 'show' && sub !== 'clear') {
    throw new UsageError(`cert: unknown subcommand ${JSON.stringify(sub)}; use set, show or clear`);
  }
  const name = `cert ${sub}`;
  const args = parseCommandArgs(name, rest, { cert: { type: 'string' }, key: { type: 'string' }, chain: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) return printUsage(ctx.io, name);
  expectPositionals(name, args.positionals, 1, 1, usageOf(name));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const v = args.values;
  if (sub !== 'set' && (v.cert !== undefined || v.key !== undefined || v.chain !== undefined)) {
    throw new UsageError(`${name}: --cert, --key and --chain belong to lanes cert set; usage: ${usageOf(name)}`);
  }
  const url = `${envPath(ref.tenant, ref.environment)}/certificate`;
  const where = `${ref.tenant}/${ref.environment}`;
  if (sub === 'set') {
    if (v.cert === undefined || v.key === undefined) throw new UsageError(`${name}: --cert and --key are required; usage: ${usageOf(name)}`);
    const body = {
      certPem: await readPem('--cert', v.cert),
      keyPem: await readPem('--key', v.key),
      ...(v.chain === undefined ? {} : { chainPem: await readPem('--chain', v.chain) }),
    };
    const { api } = await connect(ctx.config);
    const c = decodeCertificate((await api.request('PUT', url, { json: body })).body);
    if (v.json === true) return printJson(ctx, c);
    ctx.io.line(`custom certificate of ${where} set: ${c.subject}, names ${c.names.join(', ')}, valid until ${c.notAfter}`);
    ctx.io.line(`the gateway serves it for ${c.host} within seconds; lanes cert clear ${where} goes back to a platform certificate`);
    return 0;
  }
  const { api } = await connect(ctx.config);
  if (sub === 'show') {
    const c = decodeCertificate(await api.get(url));
    if (v.json === true) return printJson(ctx, c);
    for (const l of renderCertificate(c)) ctx.io.line(l);
    return 0;
  }
  const c = decodeCertificate((await api.request('DELETE', url)).body);
  if (v.json === true) return printJson(ctx, c);
  ctx.io.line(`${where} is served with a platform certificate: ${c.subject}, valid until ${c.notAfter}`);
  return 0;
}

function printJson(ctx: CommandContext, c: CertificateView): number {
  ctx.io.line(JSON.stringify(c, null, 2));
  return 0;
}

async function readPem(flag: string, file: string): Promise<string> {
  try {
    const size = (await stat(file)).size;
    if (size > MAX_PEM_BYTES) throw new UsageError(`${flag}: ${file} is ${size} bytes; a PEM file here is at most ${MAX_PEM_BYTES} bytes`);
    return await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new UsageError(`${flag}: cannot read ${JSON.stringify(file)} (${errCode(err)})`);
  }
}

function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : err instanceof Error ? err.message : String(err);
}
