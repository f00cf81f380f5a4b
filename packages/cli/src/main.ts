/**
 * The `lanes` command: dispatches to a command, and turns every failure into one line
 * `lanes: <message>` on stderr with exit code 1 (2 for usage errors), never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { deployCommand, envCommand, eventsCommand, logsCommand, releasesCommand, rollbackCommand, runStateCommand, scaleCommand, statusCommand, tenantCommand, type CommandContext } from './commands.js';
import { renderError, UsageError } from './errors.js';
import { HELP, printUsage } from './help.js';
import { configFromEnv, type CliConfig } from './home.js';
import { processIo, type Io } from './io.js';
import { downCommand, upCommand } from './platform.js';
import { zoneCommand } from './zone.js';
import { edgeCommand } from './edge.js';
import { dnsCommand } from './dns.js';
import { caCommand, certCommand } from './cert.js';
import { dbCommand } from './db.js';

type Handler = (ctx: CommandContext, argv: readonly string[]) => Promise<number>;

const COMMANDS: Readonly<Record<string, Handler>> = {
  up: (ctx, argv) => upCommand(ctx.config, ctx.io, argv),
  down: (ctx, argv) => downCommand(ctx.config, ctx.io, argv),
  tenant: tenantCommand,
  env: envCommand,
  deploy: deployCommand,
  status: statusCommand,
  scale: scaleCommand,
  logs: logsCommand,
  events: eventsCommand,
  releases: releasesCommand,
  rollback: rollbackCommand,
  stop: runStateCommand('stop'),
  start: runStateCommand('start'),
  restart: runStateCommand('restart'),
  db: dbCommand,
  zone: zoneCommand,
  edge: edgeCommand,
  dns: dnsCommand,
  ca: caCommand,
  cert: certCommand,
};

export function version(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    /* fall through */
  }
  return 'unknown';
}

/** Runs one command line; answers the exit code. Never throws. */
export async function run(argv: readonly string[], io: Io, config: CliConfig): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      const topic = command === 'help' ? rest.filter((a) => !a.startsWith('-')).join(' ') : '';
      if (topic !== '' && HELP[topic] === undefined) throw new UsageError(`help: unknown command ${JSON.stringify(topic)}; run lanes help`);
      return printUsage(io, topic === '' ? null : topic);
    }
    if (command === '--version' || command === '-v' || command === 'version') {
      io.line(`lanes ${version()}`);
      return 0;
    }
    const handler = COMMANDS[command];
    if (handler === undefined) {
      throw new UsageError(
        command.startsWith('-') ? `unknown flag ${command}; run lanes help` : `unknown command ${JSON.stringify(command)}; run lanes help`,
      );
    }
    return await handler({ config, io }, rest);
  } catch (err) {
    const { message, exitCode } = renderError(err);
    io.err(`lanes: ${message}`);
    return exitCode;
  }
}

/** The entry of bin/lanes.js. */
export async function main(argv: string[]): Promise<void> {
  const io = processIo();
  let config: CliConfig;
  try {
    config = configFromEnv(process.env);
  } catch (err) {
    io.err(`lanes: ${renderError(err).message}`);
    process.exitCode = 1;
    return;
  }
  // `lanes status | head`: a closed stdout ends the command quietly. The launcher keeps
  // supervising even when its terminal or pipe has gone away.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' && argv[0] !== 'up') process.exit(0);
  });
  // A stray rejection must still end as one line, not a stack trace.
  process.on('unhandledRejection', (err) => {
    io.err(`lanes: ${renderError(err).message}`);
    process.exit(1);
  });
  process.on('uncaughtException', (err) => {
    io.err(`lanes: ${renderError(err).message}`);
    process.exit(1);
  });
  process.exitCode = await run(argv, io, config);
}
