/**
 * The zone supervisor process: `node packages/agent/dist/main.js --zone a --api URL
 * --token-file F --state-dir D`. Wires the Supervisor, its HTTP server and the
 * control-plane client. SIGTERM/SIGINT leave instances running (the next start
 * re-adopts them); only `POST /v1/shutdown {"stopInstances":true}` stops them.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { ControlPlaneClient, createPackageResolver } from './client.js';
import { ConfigError, parseConfig } from './config.js';
import type { AgentConfig } from './config.js';
import { startAgentServer } from './server.js';
import { SandboxRuntime } from './sandbox.js';
import { Supervisor } from './supervisor.js';

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

async function run(config: AgentConfig): Promise<void> {
  const logger = pino({ base: { component: 'agent', zone: config.zone }, redact: ['token', '*.token', 'headers.authorization'] });
  const root = process.getuid?.() === 0;
  const useSandbox = config.sandbox === 'runc' || (config.sandbox === 'auto' && root);
  if (useSandbox && !root) throw new Error('--sandbox runc: the supervisor must run as root to start sandboxes');
  // Only the platform reads its state: sandboxed instances see their package through a mount.
  // Without a sandbox, unprivileged instances in a network namespace must search it.
  mkdirSync(config.stateDir, { recursive: true });
  chmodSync(config.stateDir, useSandbox ? 0o700 : 0o755);
  const sandbox = useSandbox ? new SandboxRuntime({ dir: path.join(config.stateDir, 'sandbox') }) : null;
  if (!useSandbox) logger.warn({ uid: process.getuid?.() ?? null }, root ? 'sandboxes are off (--sandbox none): instances run as processes of this supervisor' : 'not root: instances run as the invoking user, without a sandbox');
  const supervisor = new Supervisor({
    zone: config.zone,
    address: config.address,
    stateDir: config.stateDir,
    networkPrefix: config.networkPrefix,
    logger,
    sandbox,
    resolvePackage: createPackageResolver({ api: config.api, token: config.token, stateDir: config.stateDir, logger }),
  });
  await supervisor.start();

  let client: ControlPlaneClient | null = null;
  let exiting = false;
  const stopAll = async (stopInstances: boolean): Promise<void> => {
    exiting = true;
    await client?.stop();
    await supervisor.shutdown({ stopInstances });
  };
  const server = await startAgentServer({
    supervisor,
    address: config.address,
    port: config.port,
    token: config.token,
    logger,
    shutdown: stopAll,
    afterShutdown: () => {
      logger.info('agent exiting');
      void server.close().finally(() => process.exit(0));
    },
  });
  client = new ControlPlaneClient({ api: config.api, token: config.token, zone: config.zone, agentUrl: server.url, supervisor, logger });
  client.start();
  writeAtomically(path.join(config.stateDir, 'agent.json'), `${JSON.stringify({ pid: process.pid, url: server.url })}\n`);
  logger.info({ url: server.url, pid: process.pid }, 'agent ready');

  const onSignal = (signal: NodeJS.Signals): void => {
    if (exiting) return;
    logger.info({ signal }, 'signal received; exiting and leaving instances running');
    void stopAll(false)
      .then(() => server.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

let config: AgentConfig;
try {
  config = parseConfig(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`lanes-agent: ${err.message}\n`);
  process.exit(2);
}
run(config).catch((err: unknown) => {
  process.stderr.write(`lanes-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
