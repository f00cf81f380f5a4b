/**
 * The control plane's configuration: one schema, parsed once at start from flags and the
 * environment, defaults in the schema, frozen and passed down.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { InputError, parseZones } from '@lanes/spec';

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
  /** @default 'info' */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = Readonly<z.infer<typeof schema>> & { readonly zoneList: readonly string[] };

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
  };
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.join('.') : 'config';
    throw new InputError(`${field}: ${issue?.message ?? 'invalid'}`, field);
  }
  return Object.freeze({ ...parsed.data, zoneList: Object.freeze(parseZones(parsed.data.zones)) });
}
