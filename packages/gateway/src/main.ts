/**
 * The gateway process: `node packages/gateway/dist/main.js --state-dir DIR [--http-port 8080] [--https-port 8443]
 * [--host 127.0.0.1] [--api URL --token-file PATH] [--trusted-proxies CIDR,…]`. Parses its flags once, serves the
 * persisted routing table at once, writes `DIR/gateway.json` ({ pid, url, httpsUrl }) when it
 * listens, follows the control plane's watch stream, and on SIGTERM drains and exits 0.
 * Exit codes: 0 clean stop, 1 could not start, 2 bad flags.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig } from './config.js';
import type { GatewayConfig } from './config.js';
import { createLogger } from './logging.js';
import { writeFileAtomic } from '@lanes/runtime';
import { READY_FILE } from './persist.js';
import { MetricsReporter } from './metrics.js';
import { isWorker, runPrimary, runWorker } from './cluster.js';
import { Gateway } from './proxy.js';
import { TableWatcher, tokenFromFile } from './watch.js';

function readConfig(): GatewayConfig {
  try {
    return parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger(config.logLevel);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });

  // Several processes share the listeners (cluster.ts); --workers 0 serves from this one.
  if (isWorker()) return runWorker(config, log.child({ worker: process.pid }));
  if (config.workers > 0) return runPrimary(config, log);

  const gateway = new Gateway({ stateDir: config.stateDir, host: config.host, httpPort: config.httpPort, ...(config.httpsPort === null ? {} : { httpsPort: config.httpsPort }), trustedProxies: config.trustedProxies, limits: config.limits, logger: log });
  let url: string;
  try {
    url = await gateway.start();
  } catch (err) {
    log.fatal({ err, host: config.host, port: config.httpPort }, 'gateway could not start');
    process.exit(1);
  }
  const readyFile = path.join(config.stateDir, READY_FILE);
  await writeFileAtomic(readyFile, `${JSON.stringify({ pid: process.pid, url, httpsUrl: gateway.httpsUrl })}\n`);

  let watcher: TableWatcher | null = null;
  let reporter: MetricsReporter | null = null;
  if (config.apiUrl !== null && config.tokenFile !== null) {
    watcher = new TableWatcher({ apiUrl: config.apiUrl, token: tokenFromFile(config.tokenFile), sink: gateway, logger: log });
    watcher.start();
    reporter = new MetricsReporter({ apiUrl: config.apiUrl, token: tokenFromFile(config.tokenFile), traffic: gateway.traffic, logger: log });
    reporter.start();
  } else {
    log.warn('no --api given; serving the persisted routing table only');
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlight: gateway.inFlight }, 'stopping: draining in-flight requests');
    void (async () => {
      reporter?.stop();
      await Promise.all([watcher?.stop(), gateway.close()]);
      await rm(readyFile, { force: true });
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
