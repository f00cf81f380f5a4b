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
      'lanes up [--http-port 8080] [--https-port 8443] [--api-port 7070] [--dns-port 8053] [--tcp-ports 30000-30999] [--zones a,b,c] [--domain lanes.localhost] [--isolation auto|netns|none] [--network-cidr 10.88.0.0/16] [--sandbox auto|runc|none] [--trusted-proxies CIDR,...] [--demo] [--detach]',
    summary: 'start the platform (control plane, one supervisor per zone, gateway) and supervise it',
    details: [
      'Everything lives in LANES_HOME (default ~/.lanes); logs in LANES_HOME/logs.',
      '--isolation     netns: each environment gets a private network (namespaces, a bridge, nftables;',
      '                needs Linux, root, iproute2 and nftables); none: instances share the host\'s',
      '                loopback (a warning says so); auto (default): netns when the host can',
      '--network-cidr  the network environments\' subnets (/24 each) come from, /8 to /23 (netns only)',
      '--sandbox       runc: every tenant instance in its own runc sandbox (root; needs runc, tini and',
      '                the containers\' seccomp profile); none: plain processes; auto (default): runc as root',
      '--trusted-proxies  proxies in front of the gateway (CIDRs or addresses, comma-separated; default none)',
      '                whose X-Forwarded-For chain it keeps; the client is the right-most untrusted address',
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
  db: {
    usage: 'lanes db list|create|status|url|switchover|backup|backups|restore|delete TENANT/ENV ...',
    summary: "manage an environment's databases: replicated PostgreSQL with backups and point-in-time restore",
    details: [
      'lanes db list TENANT/ENV [--json]',
      'lanes db create TENANT/ENV NAME [--engine postgres] [--backup-interval 24h] [--backup-retention 10d] [--json]',
      'lanes db status TENANT/ENV NAME [--json]',
      'lanes db url TENANT/ENV NAME',
      'lanes db switchover TENANT/ENV NAME [--to MEMBER]',
      'lanes db backup TENANT/ENV NAME [--json]',
      'lanes db backups TENANT/ENV NAME [--json]',
      'lanes db restore TENANT/ENV NAME --to-time TIME --as NEWNAME [--json]',
      'lanes db delete TENANT/ENV NAME',
      'The environment\'s services get each URL in variables (lanes db status lists them, e.g. DATABASE_URL_MAIN).',
    ],
  },
  'db list': {
    usage: 'lanes db list TENANT/ENV [--json]',
    summary: 'list the databases of an environment with their primary and URL (password shown as ****)',
    details: ['--json  the API\'s answer as is'],
  },
  'db create': {
    usage: 'lanes db create TENANT/ENV NAME [--engine postgres] [--backup-interval 24h] [--backup-retention 10d] [--json]',
    summary: 'create a database: with lane double a primary and a standby in two zones and an arbiter in a third',
    details: [
      '--engine            the database engine (default postgres; the control plane says which it knows)',
      '--backup-interval   how often a base backup is taken (default 24h); WAL is archived continuously',
      '--backup-retention  how long backups and WAL are kept: the point-in-time window (default 10d)',
      'NAME is 1-27 characters a-z, 0-9 and \'-\'. Databases declared in lanes.yaml (databases:) are created by deploy.',
    ],
  },
  'db status': {
    usage: 'lanes db status TENANT/ENV NAME [--json]',
    summary: 'show a database: URL, primary, backups, its members (role, zone, pid, replication lag) and failovers',
    details: ['--json  the API\'s answer as is'],
  },
  'db url': {
    usage: 'lanes db url TENANT/ENV NAME [--json]',
    summary: 'print the full connection URL, password included, for your own tools (services get it as DATABASE_URL)',
    details: ['The URL reaches the primary through the gateway\'s platform TCP port and follows failovers.'],
  },
  'db switchover': {
    usage: 'lanes db switchover TENANT/ENV NAME [--to MEMBER]',
    summary: 'hand the primary role to the synchronous standby (or --to MEMBER) without losing writes',
    details: ['The primary stops, the standby replays everything it wrote, then takes over with a new term; this takes up to a minute.'],
  },
  'db backup': {
    usage: 'lanes db backup TENANT/ENV NAME [--json]',
    summary: 'take a base backup now (besides the scheduled ones) and wait for it',
  },
  'db backups': {
    usage: 'lanes db backups TENANT/ENV NAME [--json]',
    summary: 'list the base backups of a database and the window it can be restored in',
  },
  'db restore': {
    usage: 'lanes db restore TENANT/ENV NAME --to-time TIME --as NEWNAME [--json]',
    summary: 'restore a database as it was at TIME into a new database NEWNAME (the original stays as it is)',
    details: [
      '--to-time  the moment to restore to, e.g. 2026-01-02T15:04:05Z; within the retention window (lanes db backups)',
      '--as       the new database\'s name',
    ],
  },
  'db delete': {
    usage: 'lanes db delete TENANT/ENV NAME',
    summary: 'delete a database: its members stop; its backups are kept',
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
  dns: {
    usage: 'lanes dns list|set|delete ...',
    summary: 'manage the platform DNS\'s failover records',
    details: [
      'lanes dns list',
      'lanes dns set NAME --primary IP --primary-check URL --secondary IP [--secondary-check URL] [--ttl 30s]',
      'lanes dns delete NAME',
      'The platform DNS (lanes up --dns-port, default 8053) answers every environment host and these records.',
    ],
  },
  'dns list': { usage: 'lanes dns list', summary: 'list the failover records with their targets and checks' },
  'dns set': {
    usage:
      'lanes dns set NAME --primary IP --primary-check URL --secondary IP [--secondary-check URL] [--ttl 30s] [--check-interval 10s] [--check-timeout 2s] [--healthy-threshold 2] [--unhealthy-threshold 3]',
    summary: 'create or replace a failover record: the primary while its check passes, else the secondary',
    details: [
      'NAME               a name inside the platform domain, e.g. www.dr.lanes.localhost (not an environment host)',
      '--primary-check    GET this URL; 2xx or 3xx within the timeout is healthy',
      '--secondary-check  the same for the secondary; without it the secondary is always healthy',
      '--ttl              how long resolvers may cache the answer (default: the platform TTL, 30s)',
      'The check flags apply to both checks: unhealthy after --unhealthy-threshold failures in a row,',
      'healthy again after --healthy-threshold successes. Both down: the primary is answered (fail open).',
    ],
  },
  'dns delete': { usage: 'lanes dns delete NAME', summary: 'delete a failover record' },
  edge: {
    usage: 'lanes edge show|set|reset TENANT/ENV ...',
    summary: 'access control at the gateway: allow/deny lists, rate limits, body and connection limits',
    details: [
      'lanes edge show TENANT/ENV [--json]',
      'lanes edge set TENANT/ENV [--allow CIDR,...|none] [--deny CIDR,...|none] [--client-rate 50/s[,BURST]|off] ...',
      'lanes edge reset TENANT/ENV',
    ],
  },
  'edge show': { usage: 'lanes edge show TENANT/ENV [--json]', summary: "show an environment's edge settings" },
  'edge set': {
    usage:
      'lanes edge set TENANT/ENV [--allow CIDR,...|none] [--deny CIDR,...|none] [--client-rate 50/s[,BURST]|off] [--env-rate 1000/s[,BURST]|off] [--max-body 10mb|default] [--max-conns-per-client N|default] [--https-redirect on|off] [--hsts 1y|off]',
    summary: 'change the settings given; the others stay as they are',
    details: [
      '--allow                 only these clients (IPv4/IPv6 CIDRs or addresses); none: everyone',
      '--deny                  refuse these clients (checked before --allow); none: no one (403 either way)',
      '--client-rate           requests per client IP (IPv6: per /64), per second, minute or hour: 50/s, 600/m, 50/s,100',
      '                        (with a burst of 100; default one second\'s worth); off: none (429 with Retry-After)',
      '--env-rate              the same for the whole environment',
      '--max-body              largest request body: 10mb, 512kb, 1gb (powers of 1024); default: the gateway\'s (413)',
      '--max-conns-per-client  open connections per client to this environment; default: the gateway\'s (1000)',
      '--https-redirect        answer plain HTTP with a redirect to HTTPS',
      '--hsts                  Strict-Transport-Security max-age on HTTPS answers: 1y, 180d; off: no header',
    ],
  },
  'edge reset': { usage: 'lanes edge reset TENANT/ENV', summary: 'back to the defaults: no access control, the gateway\'s limits' },
  ca: {
    usage: 'lanes ca [--out FILE]',
    summary: 'print (or write) the platform CA certificate that clients trust for HTTPS',
    details: ['e.g. lanes ca --out ca.pem && curl --cacert ca.pem https://prod.acme.lanes.localhost:8443/'],
  },
  cert: {
    usage: 'lanes cert set|show|clear TENANT/ENV ...',
    summary: "manage an environment's TLS certificate (platform-issued by default)",
    details: ['lanes cert show TENANT/ENV [--json]', 'lanes cert set TENANT/ENV --cert FILE --key FILE [--chain FILE]', 'lanes cert clear TENANT/ENV'],
  },
  'cert show': { usage: 'lanes cert show TENANT/ENV [--json]', summary: "show an environment's certificate: source, names, issuer, validity, fingerprint (never the key)" },
  'cert set': {
    usage: 'lanes cert set TENANT/ENV --cert FILE --key FILE [--chain FILE]',
    summary: 'serve a custom certificate for the environment (PEM files; validated first)',
    details: [
      '--cert   the certificate, leaf first (its intermediates may follow)',
      '--key    its private key, unencrypted: RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521)',
      '--chain  intermediates, in order, when not in --cert',
      'Refused, with the reason, when the key does not fit, the chain does not link, the certificate',
      'is expired or not yet valid, or its names do not cover the environment host (*. covers one label);',
      'the previous certificate stays. A custom certificate is not renewed by the platform.',
    ],
  },
  'cert clear': { usage: 'lanes cert clear TENANT/ENV', summary: 'remove a custom certificate: the platform issues and renews one again' },
  help: { usage: 'lanes help [COMMAND]', summary: 'show help' },
};

const TOP_LEVEL = ['up', 'down', 'tenant', 'env', 'deploy', 'status', 'scale', 'logs', 'events', 'releases', 'rollback', 'stop', 'start', 'restart', 'db', 'zone', 'dns', 'edge', 'ca', 'cert', 'help'];

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
