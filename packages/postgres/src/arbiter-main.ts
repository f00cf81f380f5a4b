/**
 * The arbiter process (the lease's witness, no data): `node
 * packages/postgres/dist/arbiter-main.js --state-dir DIR --token-file FILE [--name arbiter]
 * [--host 127.0.0.1] [--port 7400] [--lease 2s]` (flags also as LANES_PG_<FLAG>; PORT and
 * HOST from a zone supervisor). Writes DIR/arbiter.json ({ pid, name, url, port }) once it
 * serves; SIGTERM exits 0. Exit codes: 0 clean stop, 1 could not start, 2 bad flags.
 */
import { Arbiter } from './arbiter.js';
import { parseArbiterConfig, type ArbiterConfig } from './config.js';
import { createLogger } from './logging.js';
import { readToken } from './token.js';

function readConfig(): ArbiterConfig {
  try {
    return parseArbiterConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`arbiter: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger('postgres-arbiter', config.logLevel);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  let arbiter: Arbiter;
  try {
    arbiter = new Arbiter({ config, token: await readToken(config.tokenFile), logger: log });
    await arbiter.start();
  } catch (err) {
    log.fatal({ err }, 'arbiter could not start');
    process.exit(1);
  }
  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'stopping');
    void arbiter.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
