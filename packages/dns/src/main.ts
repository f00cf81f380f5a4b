/**
 * The DNS process: `node packages/dns/dist/main.js --state-dir DIR [--port 8053]
 * [--host 127.0.0.1] [--api URL --token-file PATH]` (`--control-plane-url` is the same as
 * `--api`). Parses its flags once, answers from the persisted zone at once, writes
 * `DIR/dns.json` ({ pid, url, host, port }) when it listens, follows the control plane's
 * watch stream, and on SIGTERM closes and exits 0.
 * Exit codes: 0 clean stop, 1 could not start, 2 bad flags.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Authority } from './authority.js';
import { parseConfig, type DnsConfig } from './config.js';
import { createLogger } from './logging.js';
import { writeFileAtomic } from '@lanes/runtime';
import { READY_FILE } from './persist.js';
import { DnsServer } from './server.js';
import { tokenFromFile, ZoneWatcher } from './watch.js';

function readConfig(): DnsConfig {
  try {
    return parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`dns: ${err instanceof Error ? err.message : String(err)}\n`);
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

  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const authority = new Authority({ stateDir: config.stateDir, logger: log });
  if (!(await authority.loadPersisted())) log.info({}, 'no persisted zone; answering SERVFAIL until the control plane sends one');
  const server = new DnsServer({ host: config.host, port: config.port, answer: (q) => authority.answer(q), limits: config.limits, logger: log });
  let address: { host: string; port: number };
  try {
    address = await server.start();
  } catch (err) {
    log.fatal({ err, host: config.host, port: config.port }, 'dns could not start');
    process.exit(1);
  }
  const readyFile = path.join(config.stateDir, READY_FILE);
  const hostPart = address.host.includes(':') ? `[${address.host}]` : address.host;
  await writeFileAtomic(readyFile, `${JSON.stringify({ pid: process.pid, url: `dns://${hostPart}:${address.port}`, host: address.host, port: address.port })}\n`);

  let watcher: ZoneWatcher | null = null;
  if (config.apiUrl !== null && config.tokenFile !== null) {
    watcher = new ZoneWatcher({ apiUrl: config.apiUrl, token: tokenFromFile(config.tokenFile), sink: authority, logger: log });
    watcher.start();
  } else {
    log.warn({}, 'no --api given; answering from the persisted zone only');
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    void (async () => {
      await Promise.all([watcher?.stop(), server.close(), authority.close()]);
      await rm(readyFile, { force: true });
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
