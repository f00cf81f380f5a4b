/**
 * Decides whether this host can give environments private networks: Linux, root, `ip` and
 * `nft` installed, and a throwaway namespace (with an nftables table inside) can be made
 * and removed. Anything less means isolation 'none': instances run on loopback.
 */
import { type Runner, argv, runCommand } from './commands.js';

export interface Isolation {
  readonly mode: 'netns' | 'none';
  /** One sentence explaining the mode, e.g. "not running as root (uid 1000)". */
  readonly reason: string;
}

/** Probes the host; never throws. `runner` is replaceable for tests. */
export async function detectIsolation(opts: { runner?: Runner; timeoutMs?: number } = {}): Promise<Isolation> {
  const run = opts.runner ?? runCommand;
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (process.platform !== 'linux') return { mode: 'none', reason: `network namespaces need Linux; this is ${process.platform}` };
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return { mode: 'none', reason: `not running as root (uid ${uid}); namespaces and nftables need root` };
  for (const [tool, cmd] of [['ip', ['ip', '-V']], ['nft', ['nft', '--version']]] as const) {
    try {
      await run(cmd, { timeoutMs });
    } catch {
      return { mode: 'none', reason: `${tool} is not usable; install ${tool === 'ip' ? 'iproute2' : 'nftables'}` };
    }
  }
  const probe = `lanes-probe-${process.pid}`;
  try {
    await run(argv.netnsAdd(probe), { timeoutMs });
    await run(argv.nftApply(probe), { timeoutMs, input: 'table inet lanes {\n  chain input {\n    type filter hook input priority filter; policy accept;\n  }\n}\n' });
    return { mode: 'netns', reason: 'root, iproute2 and nftables present; a test namespace with a firewall table was created and removed' };
  } catch (err) {
    return { mode: 'none', reason: `cannot create a network namespace with nftables: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    await run(argv.netnsDelete(probe), { timeoutMs }).catch(() => undefined);
  }
}
