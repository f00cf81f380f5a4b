/** Process entry of the control plane: `node dist/main.js --home DIR [--api-port P] ...`. */
import pino from 'pino';
import { isLanesError } from '@lanes/spec';
import { parseConfig } from './config.js';
import { startControlPlane } from './server.js';

async function run(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`lanes-controlplane: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const log = pino({ level: config.logLevel, base: { component: 'controlplane', pid: process.pid } });
  let cp;
  try {
    cp = await startControlPlane(config, log);
  } catch (err) {
    log.fatal({ err: isLanesError(err) ? err.message : err }, 'control plane failed to start');
    process.exit(1);
  }
  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'control plane stopping');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void cp.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

await run();
