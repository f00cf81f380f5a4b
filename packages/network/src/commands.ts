/**
 * Every command the network layer runs, built as an argv array by a pure function, and the
 * one executor that runs them (execFile-style, no shell, a timeout, one-line errors naming
 * the command). Names are checked against strict patterns before they enter an argv.
 */
import { spawn } from 'node:child_process';
import { InputError } from '@lanes/spec';
import { parseIpv4 } from './plan.js';

const IFNAME_RE = /^lanes-[a-z0-9]{1,9}$/;
const NETNS_RE = /^lanes-[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$/;
const ALIAS_RE = /^[A-Za-z0-9=._ -]{1,200}$/;
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** An interface name the platform owns: `lanes-` + 1-9 of a-z0-9 (15 bytes at most). */
export function checkIfName(value: string): string {
  if (!IFNAME_RE.test(value)) throw new InputError(`interface: ${JSON.stringify(value)} is not a platform interface name (lanes-[a-z0-9]{1,9})`, 'interface');
  return value;
}

export function checkNetnsName(value: string): string {
  if (!NETNS_RE.test(value) || value.includes('..')) throw new InputError(`netns: ${JSON.stringify(value)} is not a platform namespace name`, 'netns');
  return value;
}

function checkAlias(value: string): string {
  if (!ALIAS_RE.test(value)) throw new InputError(`alias: ${JSON.stringify(value)} has characters outside A-Z a-z 0-9 = . _ - and space`, 'alias');
  return value;
}

function checkMac(value: string): string {
  if (!MAC_RE.test(value)) throw new InputError(`mac: ${JSON.stringify(value)} is not a lower-case MAC address`, 'mac');
  return value;
}

function checkAddressWithPrefix(value: string): string {
  const [addr, len, ...rest] = value.split('/');
  if (rest.length > 0 || len === undefined || !/^\d{1,2}$/.test(len) || Number(len) > 32) {
    throw new InputError(`address: ${JSON.stringify(value)} is not ADDRESS/PREFIX`, 'address');
  }
  parseIpv4('address', addr);
  return value;
}

export type Argv = readonly string[];

export const argv = {
  netnsAdd: (ns: string): Argv => ['ip', 'netns', 'add', checkNetnsName(ns)],
  netnsDelete: (ns: string): Argv => ['ip', 'netns', 'delete', checkNetnsName(ns)],
  netnsPids: (ns: string): Argv => ['ip', 'netns', 'pids', checkNetnsName(ns)],
  netnsList: (): Argv => ['ip', '-j', 'netns', 'list'],
  linkList: (): Argv => ['ip', '-j', 'link', 'show'],
  addrList: (dev: string): Argv => ['ip', '-j', 'addr', 'show', 'dev', checkIfName(dev)],
  bridgeAdd: (name: string, mac: string): Argv => ['ip', 'link', 'add', checkIfName(name), 'address', checkMac(mac), 'type', 'bridge'],
  /** Host side `name` in the host, peer `eth0` (with `mac`) created straight inside `ns`. */
  vethAdd: (name: string, mac: string, ns: string): Argv => [
    'ip', 'link', 'add', checkIfName(name), 'type', 'veth', 'peer', 'name', 'eth0', 'address', checkMac(mac), 'netns', checkNetnsName(ns),
  ],
  /** Attaches a port to its bridge, labels it (the kernel keeps the record) and sets its state. */
  portSet: (name: string, bridge: string, alias: string, up: boolean): Argv => [
    'ip', 'link', 'set', 'dev', checkIfName(name), 'master', checkIfName(bridge), 'alias', checkAlias(alias), 'addrgenmode', 'none', up ? 'up' : 'down',
  ],
  linkUp: (name: string, up: boolean): Argv => ['ip', 'link', 'set', 'dev', checkIfName(name), up ? 'up' : 'down'],
  bridgeUp: (name: string): Argv => ['ip', 'link', 'set', 'dev', checkIfName(name), 'addrgenmode', 'none', 'up'],
  linkDelete: (name: string): Argv => ['ip', 'link', 'delete', 'dev', checkIfName(name)],
  addrAdd: (dev: string, address: string): Argv => ['ip', 'addr', 'replace', checkAddressWithPrefix(address), 'dev', checkIfName(dev)],
  /**
   * One `ip -n NS -batch -` run configuring an instance's eth0 (address, no IPv6, up),
   * loopback and default route. The tokens are validated values only, so the batch
   * lines carry nothing ip's tokenizer could misread.
   */
  nsConfigure: (ns: string, addressWithPrefix: string, via: string): { argv: Argv; input: string } => {
    checkAddressWithPrefix(addressWithPrefix);
    parseIpv4('via', via);
    const lines = ['link set dev lo up', 'link set dev eth0 addrgenmode none up', `addr replace ${addressWithPrefix} dev eth0`, `route replace default via ${via}`];
    return { argv: ['ip', '-n', checkNetnsName(ns), '-batch', '-'], input: `${lines.join('\n')}\n` };
  },
  /** Reads an nftables script from stdin; in `ns` when given. */
  nftApply: (ns: string | null): Argv => (ns === null ? ['nft', '-f', '-'] : ['ip', 'netns', 'exec', checkNetnsName(ns), 'nft', '-f', '-']),
  nftListTables: (): Argv => ['nft', 'list', 'tables'],
  nftListChain: (family: 'inet' | 'bridge', table: string, chain: string): Argv => {
    if (!/^lanes-[a-z0-9]{1,20}$/.test(table) || !/^[a-z]+_\d{1,3}$/.test(chain)) throw new InputError(`nft chain: ${JSON.stringify(`${table} ${chain}`)} is not a platform chain`, 'chain');
    return ['nft', 'list', 'chain', family, table, chain];
  },
};

/** Options of `execArgv`. */
export interface ExecOptions {
  /** Run the program as this user (and `gid`) instead of root, via setpriv. */
  readonly uid?: number;
  /** @default the uid */
  readonly gid?: number;
  /**
   * Absolute paths of `ip` and `setpriv`. Give them when the child's environment (its PATH)
   * is not the caller's: both run as root and are looked up through that PATH otherwise.
   * @default 'ip' and 'setpriv' (looked up through PATH)
   */
  readonly ipPath?: string;
  readonly setprivPath?: string;
}

function checkToolPath(field: string, value: string): string {
  if (!/^(\/[A-Za-z0-9._-]+)+$|^[a-z]+$/.test(value) || value.includes('/../') || value.includes('/./')) {
    throw new InputError(`${field}: ${JSON.stringify(value)} is not an absolute program path or a plain program name`, field);
  }
  return value;
}

/**
 * The argv that starts `command` inside an instance's namespace. `ip netns exec` execs the
 * program in place, so the PID the caller sees is the program's. With `uid` the program
 * drops root first: a root process could leave its namespace or rewrite its own rules.
 */
export function execArgv(netns: string, command: readonly string[], opts: ExecOptions = {}): string[] {
  checkNetnsName(netns);
  if (command.length === 0) throw new InputError('argv: empty; give the program and its arguments', 'argv');
  const drop: string[] = [];
  if (opts.uid !== undefined) {
    const gid = opts.gid ?? opts.uid;
    for (const [field, v] of [['uid', opts.uid], ['gid', gid]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 2 ** 31) throw new InputError(`${field}: ${JSON.stringify(v)} is not a user/group id`, field);
    }
    drop.push(checkToolPath('setprivPath', opts.setprivPath ?? 'setpriv'), `--reuid=${opts.uid}`, `--regid=${gid}`, '--clear-groups', '--no-new-privs', '--');
  }
  return [checkToolPath('ipPath', opts.ipPath ?? 'ip'), 'netns', 'exec', netns, ...drop, ...command];
}

/** A kernel command failed; the message is one line naming the command. */
export class CommandError extends Error {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string, detail: string) {
    super(`${command} failed (${detail}): ${stderr.replace(/\s*\n\s*/g, ' / ').trim() || 'no error output'}`);
    this.name = 'CommandError';
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface RunOptions {
  /** Written to the command's stdin. */
  readonly input?: string;
  /** @default 10000 */
  readonly timeoutMs?: number;
}

/** Runs argv and resolves with its stdout; the seam tests and callers can replace. */
export type Runner = (argv: Argv, opts?: RunOptions) => Promise<string>;

const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

export const runCommand: Runner = (cmd, opts = {}) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = cmd;
    const shown = cmd.join(' ').slice(0, 160);
    if (file === undefined) {
      reject(new InputError('argv: empty command', 'argv'));
      return;
    }
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let settled = false;
    const finish = (error: Error | null, stdout = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(stdout);
    };
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new CommandError(shown, null, Buffer.concat(err).toString('utf8'), `timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes <= MAX_OUTPUT_BYTES) out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (err.reduce((n, b) => n + b.length, 0) < 64 * 1024) err.push(d);
    });
    child.on('error', (e: NodeJS.ErrnoException) => finish(new CommandError(shown, null, e.message, e.code === 'ENOENT' ? `${file} is not installed` : 'could not start')));
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) finish(null, Buffer.concat(out).toString('utf8'));
      else finish(new CommandError(shown, code, stderr, signal ? `killed by ${signal}` : `exit ${code}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
