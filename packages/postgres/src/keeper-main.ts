/**
 * The keeper process, one per member: `node packages/postgres/dist/keeper-main.js --name a
 * --state-dir DIR --token-file FILE [--peer b=URL,HOST:PORT] [--peer arbiter=URL] …`
 * (every flag also as LANES_PG_<FLAG>; PORT, CHECK_PORT and HOST from a zone supervisor
 * set the PostgreSQL port, the HTTP port and the listen address). Writes DIR/keeper.json
 * ({ pid, member, url, port, pgPort }) once it serves; SIGTERM or SIGINT stop PostgreSQL
 * cleanly (handing the term over when primary) and exit 0.
 * Exit codes: 0 clean stop, 1 could not start, 2 bad flags.
 */
import { parseKeeperConfig, type KeeperConfig } from './config.js';
import { Keeper } from './keeper.js';
import { createLogger } from './logging.js';
import { readToken } from './token.js';

function readConfig(): KeeperConfig {
  try {
    return parseKeeperConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`keeper: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger('postgres-keeper', config.logLevel);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  let keeper: Keeper;
  try {
    const token = await readToken(config.tokenFile);
    keeper = new Keeper({ config, token, logger: log });
    await keeper.start();
  } catch (err) {
    log.fatal({ err, member: config.name }, 'keeper could not start');
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    void keeper.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
