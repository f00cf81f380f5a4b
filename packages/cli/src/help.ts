/** The usage text of every command, for `lanes help [COMMAND]` and `lanes COMMAND --help`. */
import type { Io } from './io.js';

interface CommandHelp {
  readonly usage: string;
  readonly summary: string;
  readonly details?: readonly string[];
}

export const HELP: Readonly<Record<string, CommandHelp>> = {
  up: {
    usage:
      'lanes up [--http-port 8080] [--api-port 7070] [--zones a,b,c] [--domain lanes.localhost] [--isolation auto|netns|none] [--network-cidr 10.88.0.0/16] [--demo] [--detach]',
    summary: 'start the platform (control plane, one supervisor per zone, gateway) and supervise it',
    details: [
      'Everything lives in LANES_HOME (default ~/.lanes); logs in LANES_HOME/logs.',
      '--isolation     netns: each environment gets a private network (namespaces, a bridge, nftables;',
      '                needs Linux, root, iproute2 and nftables); none: instances share the host\'s',
      '                loopback (a warning says so); auto (default): netns when the host can',
      '--network-cidr  the network environments\' subnets (/24 each) come from, /8 to /23 (netns only)',
      '--demo          create tenant demo, environment demo/prod (lane double) and deploy examples/hello',
      '--detach        run the launcher in the background and return once the platform is ready',
      'Without --detach the launcher stays in the foreground; Ctrl-C stops the platform.',
      'With netns, namespaces, links and tables a crashed run left behind (lanes-*) are removed first.',
    ],
  },
  down: {
    usage: 'lanes down',
    summary: 'stop everything lanes up started, instances included',
    details: ['Frozen zones (lanes zone down) are continued first; with netns, every lanes-* namespace, link and nftables table is removed last.'],
  },
  tenant: {
    usage: 'lanes tenant create|list|delete [NAME]',
    summary: 'manage tenants',
  },
  'tenant create': { usage: 'lanes tenant create NAME', summary: 'create a tenant' },
  'tenant list': { usage: 'lanes tenant list', summary: 'list tenants' },
  'tenant delete': { usage: 'lanes tenant delete NAME', summary: 'delete a tenant (it must have no environments)' },
  env: {
    usage: 'lanes env create|list|delete|egress ...',
    summary: 'manage environments',
    details: [
      'lanes env create TENANT/ENV [--lane single|double] [--egress CIDR[:PORT],...]',
      'lanes env list [TENANT]',
      'lanes env delete TENANT/ENV [--timeout 120s]',
      'lanes env egress TENANT/ENV --allow CIDR[:PORT],... | --any',
    ],
  },
  'env create': {
    usage: 'lanes env create TENANT/ENV [--lane single|double] [--egress CIDR[:PORT],...]',
    summary: 'create an environment',
    details: [
      '--egress  the only destinations its instances may connect to outside the platform,',
      '          e.g. 198.51.100.0/24:443,172.16.0.0/12 (default: any); enforced with --isolation netns',
    ],
  },
  'env egress': {
    usage: 'lanes env egress TENANT/ENV --allow CIDR[:PORT],... | --any',
    summary: 'set where the instances of an environment may connect outside the platform',
    details: [
      '--allow  only these destinations, e.g. 198.51.100.0/24:443,172.16.0.0/12 (a port applies to TCP and UDP)',
      '--any    any destination outside the platform (the default of a new environment)',
      'Connections leave from the environment\'s egress address (lanes status shows it); enforced with --isolation netns.',
    ],
  },
  'env list': { usage: 'lanes env list [TENANT]', summary: 'list the environments of one tenant or of all' },
  'env delete': {
    usage: 'lanes env delete TENANT/ENV [--timeout 120s]',
    summary: 'delete an environment and wait until its instances are gone',
  },
  deploy: {
    usage: 'lanes deploy TENANT/ENV PATH [--timeout 120s]',
    summary: 'deploy a package (a directory with lanes.yaml, or a .tgz) and follow the rollout',
  },
  status: {
    usage: 'lanes status TENANT/ENV [--json]',
    summary: 'show the release, services and instances of an environment',
    details: ['Also its isolation and, with a private network, its subnet, egress address and egress rule.', '--json  the API\'s answer as is'],
  },
  scale: { usage: 'lanes scale TENANT/ENV SERVICE N', summary: 'set the number of instances of a service' },
  logs: {
    usage: 'lanes logs TENANT/ENV [SERVICE] [--follow] [--tail 100] [--instance ID]',
    summary: 'print the logs of an environment as "<instance> | <line>"',
  },
  events: { usage: 'lanes events [TENANT[/ENV]] [--follow]', summary: 'print platform events, oldest first' },
  releases: { usage: 'lanes releases TENANT/ENV', summary: 'list the releases of an environment' },
  stop: { usage: 'lanes stop TENANT/ENV [SERVICE] [--timeout 120s]', summary: 'stop an environment or one service: its instances are drained and stopped' },
  start: { usage: 'lanes start TENANT/ENV [SERVICE] [--timeout 120s]', summary: 'start a stopped environment or service and wait until it is healthy' },
  restart: { usage: 'lanes restart TENANT/ENV [SERVICE] [--timeout 120s]', summary: 'rolling restart: replacements first, then the old instances are drained' },
  rollback: {
    usage: 'lanes rollback TENANT/ENV [RELEASE] [--timeout 120s]',
    summary: 'go back to an earlier release (id prefix or version; by default the one before the current) and follow its rollout',
  },
  zone: {
    usage: 'lanes zone list|down|up [ZONE]',
    summary: 'show zones, or simulate an availability-zone outage',
    details: ['lanes zone list', 'lanes zone down ZONE', 'lanes zone up ZONE'],
  },
  'zone list': { usage: 'lanes zone list', summary: 'list the zones with their state (ready, unavailable, down), address and last report' },
  'zone down': {
    usage: 'lanes zone down ZONE',
    summary: 'simulate an outage of one zone on this machine',
    details: [
      '1. the control plane marks the zone down: the gateway stops routing to it, no new instances go there',
      '2. with --isolation netns, the links of the zone\'s instances are cut',
      '3. the zone supervisor and its instances are frozen (SIGSTOP), as if their machine had vanished',
      'lanes zone up ZONE ends the outage; lanes down continues frozen zones before stopping them.',
    ],
  },
  'zone up': {
    usage: 'lanes zone up ZONE',
    summary: 'end a simulated zone outage: continue its processes, restore its links, mark it up',
  },
  help: { usage: 'lanes help [COMMAND]', summary: 'show help' },
};

const TOP_LEVEL = ['up', 'down', 'tenant', 'env', 'deploy', 'status', 'scale', 'logs', 'events', 'releases', 'rollback', 'stop', 'start', 'restart', 'zone', 'help'];

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
