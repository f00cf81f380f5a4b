/**
 * The supervisor process's configuration: parsed once from flags, checked by hand
 * (one-line errors naming the flag), frozen, and passed down.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { checkZoneName } from '@lanes/spec';
import { DEFAULT_PREFIX, NetworkManager } from '@lanes/network';

export interface AgentConfig {
  readonly zone: string;
  readonly api: string;
  readonly token: string;
  readonly stateDir: string;
  /** @default '127.0.0.1' */
  readonly address: string;
  /** @default 0 (a free port) */
  readonly port: number;
  /** Prefix of environment networks' kernel objects; tests use `lanes-t`…. @default 'lanes-' */
  readonly networkPrefix: string;
  /**
   * How tenant instances are contained: `runc` (an OCI sandbox each; needs root), `none`
   * (processes of the supervisor's own user). `auto`: runc when root. @default 'auto'
   */
  readonly sandbox: 'auto' | 'runc' | 'none';
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const FLAGS = ['zone', 'api', 'token-file', 'state-dir', 'address', 'port', 'network-prefix', 'sandbox'] as const;
type Flag = (typeof FLAGS)[number];

function isFlag(name: string): name is Flag {
  return (FLAGS as readonly string[]).includes(name);
}

export const USAGE = 'usage: node main.js --zone Z --api URL --token-file PATH --state-dir DIR [--address 127.0.0.1] [--port 0] [--network-prefix lanes-] [--sandbox auto|runc|none]';

/** Parses argv (without node and the script); throws ConfigError with a one-line message. */
export function parseConfig(argv: readonly string[]): AgentConfig {
  const values = new Map<Flag, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new ConfigError(`${JSON.stringify(arg)}: unexpected argument; ${USAGE}`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      value = argv[i + 1];
      i += 1;
    }
    if (!isFlag(name)) throw new ConfigError(`--${name}: unknown flag; known: ${FLAGS.map((f) => `--${f}`).join(', ')}`);
    if (value === undefined) throw new ConfigError(`--${name}: a value is required`);
    if (values.has(name)) throw new ConfigError(`--${name}: given twice`);
    values.set(name, value);
  }
  const need = (flag: Flag): string => {
    const v = values.get(flag);
    if (v === undefined || v === '') throw new ConfigError(`--${flag}: required; ${USAGE}`);
    return v;
  };
  let zone: string;
  try {
    zone = checkZoneName('zone', need('zone'));
  } catch (err) {
    throw new ConfigError(`--${err instanceof Error ? err.message : String(err)}`);
  }
  const apiText = need('api');
  let api: URL;
  try {
    api = new URL(apiText);
  } catch {
    throw new ConfigError(`--api: ${JSON.stringify(apiText)} is not a URL; use e.g. http://127.0.0.1:7000`);
  }
  if (api.protocol !== 'http:' && api.protocol !== 'https:') throw new ConfigError(`--api: ${JSON.stringify(apiText)} should be an http(s) URL`);
  const tokenFile = need('token-file');
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`--token-file: cannot read ${JSON.stringify(tokenFile)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (token === '' || /\s/.test(token)) throw new ConfigError(`--token-file: ${JSON.stringify(tokenFile)} should hold one token without whitespace`);
  const address = values.get('address') ?? '127.0.0.1';
  if (net.isIP(address) === 0) throw new ConfigError(`--address: ${JSON.stringify(address)} is not an IP address`);
  const portText = values.get('port') ?? '0';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65_535) throw new ConfigError(`--port: ${JSON.stringify(portText)} should be an integer from 0 to 65535 (0 picks a free port)`);
  const networkPrefix = values.get('network-prefix') ?? DEFAULT_PREFIX;
  try {
    new NetworkManager({ prefix: networkPrefix }); // validates the prefix; runs nothing
  } catch (err) {
    throw new ConfigError(`--network-${err instanceof Error ? err.message : String(err)}`);
  }
  const sandbox = values.get('sandbox') ?? 'auto';
  if (sandbox !== 'auto' && sandbox !== 'runc' && sandbox !== 'none') throw new ConfigError(`--sandbox: ${JSON.stringify(sandbox)} should be auto, runc or none`);
  return Object.freeze({ zone, api: api.toString().replace(/\/$/, ''), token, stateDir: path.resolve(need('state-dir')), address, port, networkPrefix, sandbox });
}

/** The few variables of the supervisor's own environment that instances inherit. */
export function pickBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'LANG', 'TZ']) {
    const v = env[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
