/** The usage text of every command, for `lanes help [COMMAND]` and `lanes COMMAND --help`. */
import type { Io } from './io.js';

interface CommandHelp {
  readonly usage: string;
  readonly summary: string;
  readonly details?: readonly string[];
}

export const HELP: Readonly<Record<string, CommandHelp>> = {
  up: {
    usage: 'lanes up [--http-port 8080] [--api-port 7070] [--zones a,b,c] [--domain lanes.localhost] [--demo] [--detach]',
    summary: 'start the platform (control plane, one supervisor per zone, gateway) and supervise it',
    details: [
      'Everything lives in LANES_HOME (default ~/.lanes); logs in LANES_HOME/logs.',
      '--demo     create tenant demo, environment demo/prod (lane double) and deploy examples/hello',
      '--detach   run the launcher in the background and return once the platform is ready',
      'Without --detach the launcher stays in the foreground; Ctrl-C stops the platform.',
    ],
  },
  down: { usage: 'lanes down', summary: 'stop everything lanes up started, instances included' },
  tenant: {
    usage: 'lanes tenant create|list|delete [NAME]',
    summary: 'manage tenants',
  },
  'tenant create': { usage: 'lanes tenant create NAME', summary: 'create a tenant' },
  'tenant list': { usage: 'lanes tenant list', summary: 'list tenants' },
  'tenant delete': { usage: 'lanes tenant delete NAME', summary: 'delete a tenant (it must have no environments)' },
  env: {
    usage: 'lanes env create|list|delete ...',
    summary: 'manage environments',
    details: ['lanes env create TENANT/ENV [--lane single|double]', 'lanes env list [TENANT]', 'lanes env delete TENANT/ENV [--timeout 120s]'],
  },
  'env create': { usage: 'lanes env create TENANT/ENV [--lane single|double]', summary: 'create an environment' },
  'env list': { usage: 'lanes env list [TENANT]', summary: 'list the environments of one tenant or of all' },
  'env delete': {
    usage: 'lanes env delete TENANT/ENV [--timeout 120s]',
    summary: 'delete an environment and wait until its instances are gone',
  },
  deploy: {
    usage: 'lanes deploy TENANT/ENV PATH [--timeout 120s]',
    summary: 'deploy a package (a directory with lanes.yaml, or a .tgz) and follow the rollout',
  },
  status: { usage: 'lanes status TENANT/ENV [--json]', summary: 'show the release, services and instances of an environment' },
  scale: { usage: 'lanes scale TENANT/ENV SERVICE N', summary: 'set the number of instances of a service' },
  logs: {
    usage: 'lanes logs TENANT/ENV [SERVICE] [--follow] [--tail 100] [--instance ID]',
    summary: 'print the logs of an environment as "<instance> | <line>"',
  },
  events: { usage: 'lanes events [TENANT[/ENV]] [--follow]', summary: 'print platform events, oldest first' },
  releases: { usage: 'lanes releases TENANT/ENV', summary: 'list the releases of an environment' },
  help: { usage: 'lanes help [COMMAND]', summary: 'show help' },
};

const TOP_LEVEL = ['up', 'down', 'tenant', 'env', 'deploy', 'status', 'scale', 'logs', 'events', 'releases', 'help'];

export function usageOf(command: string): string {
  return HELP[command]?.usage ?? `lanes ${command}`;
}

export function helpText(command: string | null): string[] {
  if (command === null) {
    const width = Math.max(...TOP_LEVEL.map((c) => c.length));
    return [
      'lanes: run and manage the Lanes platform',
      '',
      'usage: lanes COMMAND [ARGS] [FLAGS]',
      '',
      ...TOP_LEVEL.map((c) => `  ${c.padEnd(width)}  ${HELP[c]?.summary ?? ''}`),
      '',
      'lanes COMMAND --help shows a command\'s flags; lanes --version its version.',
      'Environment: LANES_HOME (default ~/.lanes), LANES_API_URL, LANES_TOKEN.',
    ];
  }
  const h = HELP[command];
  if (h === undefined) return [];
  return [`usage: ${h.usage}`, '', h.summary, ...(h.details ? ['', ...h.details] : [])];
}

/** Prints the help of `command` and answers exit code 0. */
export function printUsage(io: Io, command: string | null): number {
  for (const l of helpText(command)) io.line(l);
  return 0;
}
