/**
 * The OpenAPI 3.1 document served at /openapi.json. Written by hand from docs/api.md;
 * a test (api.test.ts) compares the router's (method, path) pairs with this document both
 * ways, so a route without documentation fails it.
 */
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const problem = { description: 'error', content: { 'application/problem+json': { schema: ref('Problem') } } };
const errors = { '400': problem, '401': problem, '403': problem, '404': problem, '409': problem };
const ok = (schema: object, description = 'ok') => ({ description, ...json(schema) });
const list = (name: string) => ({ type: 'object', properties: { items: { type: 'array', items: ref(name) } }, required: ['items'] });
const tenantP = { name: 'tenant', in: 'path', required: true, schema: { type: 'string' } };
const envP = { name: 'env', in: 'path', required: true, schema: { type: 'string' } };
const dbP = { name: 'db', in: 'path', required: true, schema: { type: 'string' } };
const str = { type: 'string' };
const int = { type: 'integer' };
const nstr = { type: ['string', 'null'] };
const nint = { type: ['integer', 'null'] };

export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'Lanes control plane', version: '0.1.0', description: 'Tenants, environments, releases, services, instances and events. See docs/api.md.' },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Problem: { type: 'object', properties: { type: str, title: str, status: int, code: str, detail: str, field: str }, required: ['status', 'code', 'detail'] },
      Tenant: { type: 'object', properties: { name: str, createdAt: str }, required: ['name', 'createdAt'] },
      Environment: {
        type: 'object',
        properties: {
          tenant: str, name: str, lane: { enum: ['single', 'double'] }, phase: { enum: ['active', 'deleting'] }, host: str, url: str, release: nstr, createdAt: str,
          isolation: { enum: ['netns', 'none'] },
          network: { type: ['object', 'null'], properties: { subnet: str, egressAddress: str, egress: { type: ['array', 'null'], items: { type: 'object', properties: { cidr: str, port: nint } } } } },
        },
      },
      Service: {
        type: 'object',
        properties: {
          name: str,
          instances: int,
          effectiveInstances: int,
          http: { type: 'boolean' },
          path: nstr,
          ready: int,
          tcp: { type: ['object', 'null'], description: 'A tcp service: its platform TCP port on the gateway', properties: { address: str, port: int } },
        },
      },
      Instance: {
        type: 'object',
        properties: {
          id: str, service: str, release: str, zone: str, desired: { enum: ['running', 'stopped'] },
          state: { enum: ['pending', 'starting', 'running', 'backoff', 'crashloop', 'stopping', 'stopped'] },
          healthy: { type: 'boolean' }, pid: nint, address: nstr, port: nint, restarts: int, message: str, lastExitCode: nint,
        },
      },
      EnvironmentStatus: {
        allOf: [
          ref('Environment'),
          {
            type: 'object',
            properties: {
              services: { type: 'array', items: ref('Service') },
              instances: { type: 'array', items: ref('Instance') },
              rollout: { type: ['object', 'null'], properties: { release: str, state: { enum: ['progressing', 'complete', 'failed'] }, message: str } },
              conditions: { type: 'array', items: { type: 'object', properties: { type: str, status: str, reason: str, message: str, time: str } } },
            },
          },
        ],
      },
      Release: {
        type: 'object',
        properties: { id: str, version: int, name: str, status: { enum: ['deploying', 'active', 'superseded', 'failed'] }, createdAt: str, services: { type: 'array' } },
      },
      Event: { type: 'object', properties: { id: int, time: str, tenant: nstr, environment: nstr, reason: str, object: nstr, message: str } },
      RateLimit: { type: 'object', description: 'A token bucket: rps tokens a second, holding at most burst', properties: { rps: { type: 'number', exclusiveMinimum: 0 }, burst: { type: 'integer', minimum: 1 } }, required: ['rps', 'burst'] },
      EdgeSettings: {
        type: 'object',
        description: 'Access control at the gateway. In a request, each field also takes the text form shown in its description.',
        properties: {
          allow: { type: 'array', items: str, description: 'client CIDRs allowed ("203.0.113.0/24", "2001:db8::/32", a bare address); empty: everyone' },
          deny: { type: 'array', items: str, description: 'client CIDRs refused, checked before allow' },
          clientRate: { oneOf: [ref('RateLimit'), { type: 'null' }], description: 'per client IP (IPv6: per /64); text: "50/s", "6000/m,200" (with a burst), "off"' },
          environmentRate: { oneOf: [ref('RateLimit'), { type: 'null' }], description: 'for the whole environment; text as clientRate' },
          maxBodyBytes: { type: ['integer', 'null'], minimum: 0, description: 'largest request body; null: the gateway default; text: "10mb", "512kb" (powers of 1024)' },
          maxConnectionsPerClient: { type: ['integer', 'null'], minimum: 1, description: 'open connections per client; null: the gateway default' },
          httpsRedirect: { type: 'boolean', description: 'answer plain-HTTP requests with a redirect to HTTPS' },
          hstsMaxAgeS: { type: ['integer', 'null'], minimum: 0, description: 'Strict-Transport-Security max-age on HTTPS answers; null: none; text: "1y", "180d", "off"' },
        },
        additionalProperties: false,
      },
      DnsCheck: {
        type: 'object',
        properties: { url: str, intervalMs: { type: 'integer', minimum: 200, default: 10000 }, timeoutMs: { type: 'integer', minimum: 10, default: 2000 }, healthyThreshold: { type: 'integer', minimum: 1, maximum: 10, default: 2 }, unhealthyThreshold: { type: 'integer', minimum: 1, maximum: 10, default: 3 } },
        required: ['url'],
      },
      DnsRecord: {
        type: 'object',
        properties: {
          name: str, ttl: int,
          primary: { type: 'object', properties: { address: str, check: ref('DnsCheck') } },
          secondary: { type: 'object', properties: { address: str, check: { oneOf: [ref('DnsCheck'), { type: 'null' }] } } },
          createdAt: str, updatedAt: str,
        },
      },
      DatabaseMember: {
        type: 'object',
        properties: {
          name: str, role: { enum: ['primary', 'standby', 'arbiter', 'candidate', 'fenced', 'stopped', 'initializing', 'unknown'] }, zone: str, instance: str,
          pid: nint, state: str, healthy: { type: 'boolean' }, lagBytes: nint, replayDelaySeconds: { type: ['number', 'null'] }, checkUrl: nstr, message: str,
        },
      },
      BackupInfo: {
        type: 'object',
        properties: {
          id: str, member: str, startedAt: str, finishedAt: str, timeline: int, startLsn: str, stopLsn: str, sizeBytes: int, files: { type: 'array', items: str },
          verified: { type: ['object', 'null'], properties: { at: str, ok: { type: 'boolean' }, message: str } },
        },
      },
      DatabaseStatus: {
        type: 'object',
        description: 'A managed database; url shows the password as ****',
        properties: {
          name: str, engine: { enum: ['postgres'] }, tenant: str, environment: str, lane: { enum: ['single', 'double'] }, source: { enum: ['manifest', 'api', 'restore'] },
          restoredFrom: { type: ['object', 'null'], properties: { database: str, toTime: str } },
          url: str, variables: { type: 'array', items: str },
          tcp: { type: ['object', 'null'], properties: { address: str, port: int } },
          primary: nstr, members: { type: 'array', items: ref('DatabaseMember') },
          backup: { type: 'object', properties: { interval: str, retention: str, last: { oneOf: [ref('BackupInfo'), { type: 'null' }] } } },
          failovers: { type: 'array', items: { type: 'object', properties: { at: str, term: int, primary: str, reason: str } } },
        },
      },
      Certificate: {
        type: 'object',
        description: "An environment's TLS certificate (never its key)",
        properties: {
          source: { enum: ['platform', 'custom'] }, host: str, subject: str, issuer: str, names: { type: 'array', items: str },
          notBefore: str, notAfter: str, fingerprint256: str, selfSigned: { type: 'boolean' }, renewAfter: nstr,
        },
      },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    '/healthz': { get: { summary: 'Liveness of the control plane', security: [], responses: { '200': ok({ type: 'object' }) } } },
    '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': ok({ type: 'object' }) } } },
    '/v1/zones': { get: { summary: 'Zones and their state (ready, unavailable, down)', responses: { '200': ok({ type: 'object' }), ...errors } } },
    '/v1/zones/{zone}': {
      parameters: [{ name: 'zone', in: 'path', required: true, schema: str }],
      put: { summary: 'Take a zone down (a simulated outage: no traffic, no placement) or up again', requestBody: json({ type: 'object', properties: { state: { enum: ['down', 'up'] } }, required: ['state'] }), responses: { '200': ok({ type: 'object' }), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/edge': {
      parameters: [tenantP, envP],
      get: { summary: "The environment's edge settings (access control at the gateway), defaults filled in", responses: { '200': ok(ref('EdgeSettings')), ...errors } },
      put: {
        summary: 'Replace the edge settings: fields left out take their defaults ({} resets all)',
        requestBody: json(ref('EdgeSettings')),
        responses: { '200': ok(ref('EdgeSettings')), ...errors },
      },
      patch: {
        summary: 'Change only the edge settings given (a list replaces the whole list; null clears a nullable field)',
        requestBody: json(ref('EdgeSettings')),
        responses: { '200': ok(ref('EdgeSettings')), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/egress': {
      parameters: [tenantP, envP],
      put: {
        summary: 'Set the egress allow-list ("CIDR[:PORT]" entries) or null for any destination outside the platform',
        requestBody: json({ type: 'object', properties: { allow: { type: ['array', 'null'], items: str } }, required: ['allow'] }),
        responses: { '200': ok(ref('Environment')), ...errors },
      },
    },
    '/v1/ca': {
      get: {
        summary: 'The platform CA certificate (PEM) that clients trust to reach environments over HTTPS; public, no token',
        security: [],
        responses: { '200': { description: 'the CA certificate', content: { 'application/x-pem-file': { schema: str } } } },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/certificate': {
      parameters: [tenantP, envP],
      get: { summary: "The environment's certificate: platform-issued (renewed automatically) or custom", responses: { '200': ok(ref('Certificate')), ...errors } },
      put: {
        summary: 'Set a custom certificate (validated: key matches, chain links, covers the host, valid now); 400 names what is wrong',
        requestBody: json({ type: 'object', properties: { certPem: str, keyPem: str, chainPem: str }, required: ['certPem', 'keyPem'], additionalProperties: false }),
        responses: { '200': ok(ref('Certificate')), ...errors },
      },
      delete: { summary: 'Remove a custom certificate: the environment is served with a platform certificate again (issued at once)', responses: { '200': ok(ref('Certificate')), ...errors } },
    },
    '/v1/platform': { get: { summary: 'Platform facts: domain, zones and their state, gateway URL', responses: { '200': ok({ type: 'object' }), ...errors } } },
    '/v1/tenants': {
      get: { summary: 'List tenants', responses: { '200': ok(list('Tenant')), ...errors } },
      post: { summary: 'Create a tenant', requestBody: json({ type: 'object', properties: { name: str }, required: ['name'], additionalProperties: false }), responses: { '201': ok(ref('Tenant'), 'created'), ...errors } },
    },
    '/v1/tenants/{tenant}': {
      parameters: [tenantP],
      get: { summary: 'Get a tenant', responses: { '200': ok(ref('Tenant')), ...errors } },
      delete: { summary: 'Delete a tenant without environments', responses: { '204': { description: 'deleted' }, ...errors } },
    },
    '/v1/tenants/{tenant}/environments': {
      parameters: [tenantP],
      get: { summary: 'List environments of a tenant', responses: { '200': ok(list('Environment')), ...errors } },
      post: {
        summary: 'Create an environment',
        requestBody: json({ type: 'object', properties: { name: str, lane: { enum: ['single', 'double'] }, egress: { type: ['array', 'null'], items: str } }, required: ['name'], additionalProperties: false }),
        responses: { '201': ok(ref('Environment'), 'created'), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}': {
      parameters: [tenantP, envP],
      get: { summary: 'Environment status: release, services, instances, rollout', responses: { '200': ok(ref('EnvironmentStatus')), ...errors } },
      delete: { summary: 'Delete an environment (its instances are stopped first)', responses: { '202': ok(ref('Environment'), 'deleting'), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases': {
      parameters: [tenantP, envP],
      get: { summary: "The environment's managed databases", responses: { '200': ok(list('DatabaseStatus')), ...errors } },
      post: {
        summary: 'Create a managed database (running services get its URL through a rolling restart)',
        requestBody: json({
          type: 'object',
          properties: { name: str, engine: { enum: ['postgres'] }, backup: { type: 'object', properties: { interval: str, retention: str } } },
          required: ['name'],
        }),
        responses: { '201': ok(ref('DatabaseStatus'), 'created'), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases/{db}': {
      parameters: [tenantP, envP, dbP],
      get: { summary: 'A database: members, primary, backups, failovers', responses: { '200': ok(ref('DatabaseStatus')), ...errors } },
      delete: {
        summary: 'Delete a database (its members stop, their data is removed, its backups are kept); 409 while the running release declares it',
        responses: { '202': ok({ type: 'object', properties: { name: str, phase: { enum: ['deleting'] } } }, 'deleting'), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases/{db}/url': {
      parameters: [tenantP, envP, dbP],
      get: { summary: "The database's full URL, password included, for the operator's own tools; 409 before its TCP port is assigned", responses: { '200': ok({ type: 'object', properties: { url: str, variable: str } }), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases/{db}/switchover': {
      parameters: [tenantP, envP, dbP],
      post: {
        summary: 'Hand the primary role over to the synchronous standby (or to) without losing writes; can take up to ~60 s',
        requestBody: json({ type: 'object', properties: { to: str } }),
        responses: { '200': ok({ type: 'object', properties: { primary: str, term: int, reason: str } }), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases/{db}/backups': {
      parameters: [tenantP, envP, dbP],
      get: {
        summary: 'Backups and the restorable window',
        responses: { '200': ok({ type: 'object', properties: { items: { type: 'array', items: ref('BackupInfo') }, retention: str, oldestRestorableTime: nstr } }), ...errors },
      },
      post: { summary: 'Take a base backup now (answered once it is written)', responses: { '201': ok(ref('BackupInfo'), 'created'), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/databases/{db}/restore': {
      parameters: [tenantP, envP, dbP],
      post: {
        summary: 'Restore the database as it was at toTime into a new database (as); the original stays as it is',
        requestBody: json({ type: 'object', properties: { toTime: str, as: str }, required: ['toTime', 'as'] }),
        responses: { '201': ok(ref('DatabaseStatus'), 'created'), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/releases': {
      parameters: [tenantP, envP],
      get: { summary: 'Release history, newest first', responses: { '200': ok(list('Release')), ...errors } },
      post: {
        summary: 'Deploy an app package (.tgz with lanes.yaml) as a new release',
        requestBody: { content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } },
        responses: { '201': ok(ref('Release'), 'deploying'), '200': ok(ref('Release'), 'already the current release'), '413': problem, ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/rollback': {
      parameters: [tenantP, envP],
      post: {
        summary: 'Roll back to an earlier release (id prefix or version), by default the one before the current',
        requestBody: json({ type: 'object', properties: { release: str } }),
        responses: { '202': ok(ref('Release'), 'rolling back'), ...errors },
      },
    },
    '/v1/tenants/{tenant}/environments/{env}/stop': {
      parameters: [tenantP, envP],
      post: { summary: 'Stop the environment or one service (its instances are drained and stopped)', requestBody: json({ type: 'object', properties: { service: str } }), responses: { '202': ok({ type: 'object' }, 'accepted'), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/start': {
      parameters: [tenantP, envP],
      post: { summary: 'Start a stopped environment or service', requestBody: json({ type: 'object', properties: { service: str } }), responses: { '202': ok({ type: 'object' }, 'accepted'), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/restart': {
      parameters: [tenantP, envP],
      post: { summary: 'Rolling restart: replacements first, then the old instances are drained', requestBody: json({ type: 'object', properties: { service: str } }), responses: { '202': ok({ type: 'object' }, 'accepted'), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/services': {
      parameters: [tenantP, envP],
      get: { summary: 'Services of the current release', responses: { '200': ok(list('Service')), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/services/{service}/scale': {
      parameters: [tenantP, envP, { name: 'service', in: 'path', required: true, schema: str }],
      put: { summary: 'Set the instance count of a service', requestBody: json({ type: 'object', properties: { instances: { type: 'integer', minimum: 0, maximum: 50 } }, required: ['instances'] }), responses: { '200': ok(ref('Service')), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/instances': {
      parameters: [tenantP, envP],
      get: { summary: 'Instances with their observed state', responses: { '200': ok(list('Instance')), ...errors } },
    },
    '/v1/tenants/{tenant}/environments/{env}/logs': {
      parameters: [
        tenantP, envP,
        { name: 'service', in: 'query', schema: str }, { name: 'instance', in: 'query', schema: str },
        { name: 'tail', in: 'query', schema: int }, { name: 'follow', in: 'query', schema: { enum: ['0', '1'] } },
      ],
      get: { summary: 'Instance output as NDJSON lines', responses: { '200': { description: 'NDJSON stream', content: { 'application/x-ndjson': {} } }, ...errors } },
    },
    '/v1/events': {
      parameters: [
        { name: 'tenant', in: 'query', schema: str }, { name: 'environment', in: 'query', schema: str },
        { name: 'after', in: 'query', schema: int }, { name: 'limit', in: 'query', schema: int },
      ],
      get: { summary: 'Events, oldest first', responses: { '200': ok(list('Event')), ...errors } },
    },
    '/v1/agent/watch': { get: { summary: 'Data plane: desired instances of a zone (NDJSON)', parameters: [{ name: 'zone', in: 'query', required: true, schema: str }], responses: { '200': { description: 'NDJSON stream' }, ...errors } } },
    '/v1/agent/report': { post: { summary: 'Data plane: a zone supervisor reports observed instances (heartbeat)', responses: { '200': ok({ type: 'object' }), ...errors } } },
    '/v1/agent/packages/{hash}': { get: { summary: 'Data plane: a release package', parameters: [{ name: 'hash', in: 'path', required: true, schema: str }], responses: { '200': { description: 'the .tgz' }, ...errors } } },
    '/v1/gateway/report': { post: { summary: 'Data plane: requests routed per service since the last report (the autoscaler input)', responses: { '200': ok({ type: 'object' }), ...errors } } },
    '/v1/gateway/watch': { get: { summary: 'Data plane: the routing table (NDJSON)', responses: { '200': { description: 'NDJSON stream' }, ...errors } } },
    '/v1/dns/records': { get: { summary: 'DNS failover records', responses: { '200': ok(list('DnsRecord')), ...errors } } },
    '/v1/dns/records/{name}': {
      parameters: [{ name: 'name', in: 'path', required: true, schema: str }],
      put: {
        summary: 'Create or replace a DNS failover record: the primary address while its health check passes, else the secondary',
        requestBody: json({
          type: 'object',
          properties: {
            ttl: { type: 'integer', minimum: 0, maximum: 86400 },
            primary: { type: 'object', properties: { address: str, check: ref('DnsCheck') }, required: ['address', 'check'] },
            secondary: { type: 'object', properties: { address: str, check: { oneOf: [ref('DnsCheck'), { type: 'null' }] } }, required: ['address'] },
          },
          required: ['primary', 'secondary'],
          additionalProperties: false,
        }),
        responses: { '201': ok(ref('DnsRecord'), 'created'), '200': ok(ref('DnsRecord'), 'replaced'), ...errors },
      },
      delete: { summary: 'Delete a DNS failover record', responses: { '204': { description: 'deleted' }, ...errors } },
    },
    '/v1/dns/watch': { get: { summary: 'Data plane: the DNS zone snapshot (NDJSON)', responses: { '200': { description: 'NDJSON stream' }, ...errors } } },
  },
} as const;
