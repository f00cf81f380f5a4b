/**
 * The control plane's configuration: one schema, parsed once at start from flags and the
 * environment, defaults in the schema, frozen and passed down.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { InputError, parseDurationMs, parseZones } from '@lanes/spec';
import { parsePublicAddresses } from './dns.js';

const schema = z.object({
  /** LANES_HOME: tokens, the embedded admin database, release packages. */
  home: z.string().min(1),
  /** @default 7070 */
  apiPort: z.coerce.number().int().min(0).max(65535).default(7070),
  /** @default '127.0.0.1' */
  host: z.string().default('127.0.0.1'),
  /** @default 'lanes.localhost' */
  domain: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, 'must be a DNS name').default('lanes.localhost'),
  /** @default 'a,b,c' */
  zones: z.string().default('a,b,c'),
  /** Where users reach the gateway, shown in environment URLs. @default 'http://lanes.localhost:8080' */
  gatewayUrl: z.string().default('http://lanes.localhost:8080'),
  /** A real PostgreSQL server instead of the embedded PGlite (LANES_DATABASE_URL). */
  databaseUrl: z.string().optional(),
  /** A zone whose supervisor has not reported for this long is unavailable (its instances are rescheduled). @default 2000 */
  zoneGraceMs: z.coerce.number().int().min(500).default(2000),
  /** Largest release package accepted. @default 64 MiB */
  maxPackageBytes: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  /** How environments are isolated: 'netns' (a private network each; root, iproute2, nftables) or 'none' (loopback). @default 'none' */
  isolation: z.enum(['netns', 'none']).default('none'),
  /** The platform's private network, carved into one /24 per environment. @default '10.88.0.0/16' */
  networkCidr: z.string().default('10.88.0.0/16'),
  /** The port instances listen on inside their own network (each has its own address). @default 8080 */
  instancePort: z.coerce.number().int().min(1024).max(65535).default(8080),
  /** Platform TCP ports the gateway listens on, one per tcp service of an environment (LANES_TCP_PORTS). @default '30000-30999' */
  tcpPorts: z.string().regex(/^\d{1,5}-\d{1,5}$/, 'must be a port range FIRST-LAST, e.g. 30000-30999').default('30000-30999'),
  /** Ports of database members without isolation (PostgreSQL and keeper, two each; LANES_DATABASE_PORTS). @default '15000-15999' */
  databasePorts: z.string().regex(/^\d{1,5}-\d{1,5}$/, 'must be a port range FIRST-LAST, e.g. 15000-15999').default('15000-15999'),
  /** Lifetime of the certificates the platform CA issues (LANES_CERT_LIFETIME): 90d, 12h, 30s…; renewed when a third is left. @default '90d' */
  certLifetime: z.string().default('90d'),
  /** The gateway's public addresses, answered by the platform DNS for every host (`--public-address`, repeatable or a comma list). @default '127.0.0.1,::1' */
  publicAddresses: z.string().default('127.0.0.1,::1'),
  /** TTL in seconds of the platform DNS host records and its SOA (and so of negative answers). @default 30 */
  dnsTtl: z.coerce.number().int().min(0).max(86_400).default(30),
  /** @default 'info' */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = Readonly<z.infer<typeof schema>> & {
  readonly zoneList: readonly string[];
  /** `tcpPorts` parsed. */
  readonly tcpPortRange: { readonly first: number; readonly last: number };
  /** `databasePorts` parsed. */
  readonly databasePortRange: { readonly first: number; readonly last: number };
  /** `certLifetime` parsed. */
  readonly certLifetimeMs: number;
  /** `publicAddresses` parsed, by family. */
  readonly publicAddressList: { readonly v4: readonly string[]; readonly v6: readonly string[] };
};

/** `30000-30999` → its bounds, checked: within 1-65535 and not reversed. */
export function parsePortRange(field: string, text: string): { first: number; last: number } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last > 65_535 || first > last) {
    throw new InputError(`${field}: ${JSON.stringify(text)} is not a port range; use FIRST-LAST within 1-65535, e.g. 30000-30999`, field);
  }
  return { first, last };
}

/** A certificate lifetime: `90d`, or any duration @lanes/spec reads (`12h`, `30s`); from 10 s to 10 years. */
export function parseLifetimeMs(field: string, text: string): number {
  const days = /^(\d{1,4})d$/.exec(text.trim());
  let ms: number;
  try {
    ms = days ? Number(days[1]) * 86_400_000 : parseDurationMs(text, field);
  } catch {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms) || ms < 10_000 || ms > 3650 * 86_400_000) {
    throw new InputError(`${field}: ${JSON.stringify(text)} is not a certificate lifetime; use e.g. 90d, 12h or 60s (10s to 3650d)`, field);
  }
  return ms;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      home: { type: 'string' },
      'api-port': { type: 'string' },
      host: { type: 'string' },
      domain: { type: 'string' },
      zones: { type: 'string' },
      'gateway-url': { type: 'string' },
      'log-level': { type: 'string' },
      isolation: { type: 'string' },
      'network-cidr': { type: 'string' },
      'zone-grace-ms': { type: 'string' },
      'tcp-ports': { type: 'string' },
      'cert-lifetime': { type: 'string' },
      'public-address': { type: 'string', multiple: true },
      'dns-ttl': { type: 'string' },
    },
  });
  const raw = {
    home: values.home ?? env['LANES_HOME'],
    apiPort: values['api-port'],
    host: values.host,
    domain: values.domain,
    zones: values.zones,
    gatewayUrl: values['gateway-url'],
    databaseUrl: env['LANES_DATABASE_URL'] || undefined,
    logLevel: values['log-level'] ?? env['LANES_LOG_LEVEL'],
    isolation: values.isolation,
    networkCidr: values['network-cidr'],
    zoneGraceMs: values['zone-grace-ms'] ?? env['LANES_ZONE_GRACE_MS'],
    tcpPorts: values['tcp-ports'] ?? (env['LANES_TCP_PORTS'] || undefined),
    certLifetime: values['cert-lifetime'] ?? (env['LANES_CERT_LIFETIME'] || undefined),
    databasePorts: env['LANES_DATABASE_PORTS'] || undefined,
    publicAddresses: values['public-address']?.join(','),
    dnsTtl: values['dns-ttl'],
  };
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.join('.') : 'config';
    throw new InputError(`${field}: ${issue?.message ?? 'invalid'}`, field);
  }
  return Object.freeze({
    ...parsed.data,
    zoneList: Object.freeze(parseZones(parsed.data.zones)),
    tcpPortRange: Object.freeze(parsePortRange('tcpPorts', parsed.data.tcpPorts)),
    databasePortRange: Object.freeze(parsePortRange('databasePorts', parsed.data.databasePorts)),
    certLifetimeMs: parseLifetimeMs('certLifetime', parsed.data.certLifetime),
    publicAddressList: parsePublicAddresses('publicAddresses', parsed.data.publicAddresses),
  });
}
