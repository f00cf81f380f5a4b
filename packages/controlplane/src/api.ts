/**
 * The HTTP API: routes, authentication, and the watch streams for the data plane. Handlers
 * validate input, check the caller's role before touching state, and delegate to Platform.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { request as undiciRequest } from 'undici';
import { InputError, NotAllowedError, NotFoundError, UnauthenticatedError, checkName, checkDatabaseName, environmentHost, type AgentReport, type LogLine } from '@lanes/spec';
import { isDataPlaneRoute, isJsonObject, isPublicRoute, kindOf, nonCanonicalReason, tokenLikeQueryParam } from './api-guard.js';
import { parseInput, sendProblem } from './http-errors.js';
import { registerDnsApi } from './dns.js';
import { openApiDocument } from './openapi.js';
import type { Platform } from './platform.js';
import { instanceInfo, parseEgress } from './platform.js';
import { checkEgressDestinations } from './api-egress.js';
import type { Secret } from './secret.js';
import { hashToken } from './secret.js';

export type Role = 'admin' | 'node';

declare module 'fastify' {
  interface FastifyRequest {
    role?: Role;
  }
  interface FastifyContextConfig {
    /** The route's fields are all optional: no body at all is taken as {} (null still is not). */
    optionalBody?: boolean;
    /** The route takes a binary body (a release package), not a JSON object. */
    binaryBody?: boolean;
  }
}

const PING_MS = 5000;

const tenantBody = z.strictObject({ name: z.string() });
const envBody = z.strictObject({ name: z.string(), lane: z.string().optional(), egress: z.array(z.string()).nullable().optional() });
const egressBody = z.strictObject({ allow: z.array(z.string()).max(100).nullable() });
const certificateBody = z.strictObject({ certPem: z.string().max(65_536), keyPem: z.string().max(65_536), chainPem: z.string().max(65_536).optional() });
const zoneBody = z.strictObject({ state: z.enum(['down', 'up']) });
const rollbackBody = z.strictObject({ release: z.string().optional() });
const runBody = z.strictObject({ service: z.string().optional() });
const trafficBody = z.object({
  intervalMs: z.number().int().min(0).max(3_600_000),
  counts: z.array(z.object({ tenant: z.string().max(64), environment: z.string().max(64), service: z.string().max(64), requests: z.number().int().min(0) })).max(100_000),
});
const scaleBody = z.strictObject({ instances: z.number().int().min(0, 'must be 0 or more').max(50, 'must be at most 50') });
const eventsQuery = z.object({
  tenant: z.string().optional(),
  environment: z.string().optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});
const logsQuery = z.object({
  service: z.string().optional(),
  instance: z.string().optional(),
  tail: z.coerce.number().int().min(0).max(10000).optional(),
  follow: z.enum(['0', '1', 'true', 'false']).optional(),
});
const observedSchema = z.object({
  id: z.string().max(100),
  state: z.enum(['starting', 'running', 'backoff', 'crashloop', 'stopping', 'stopped']),
  pid: z.number().int().nullable(),
  address: z.string().max(100),
  port: z.number().int().min(0).max(65535).nullable(),
  checkPort: z.number().int().min(0).max(65535).nullable().optional(),
  healthy: z.boolean(),
  restarts: z.number().int().min(0),
  lastExitCode: z.number().int().nullable(),
  lastExitSignal: z.string().nullable(),
  message: z.string().max(1000),
  startedAt: z.string().nullable(),
});
const reportBody = z.object({
  zone: z.string(),
  agentUrl: z.string().max(200),
  pid: z.number().int(),
  address: z.string().max(100),
  instances: z.array(observedSchema).max(10000),
  metrics: z.array(z.object({ id: z.string().max(100), cpuPercent: z.number().min(0).max(100_000) })).max(10000).optional(),
});

interface Params {
  tenant: string;
  env: string;
  service: string;
  hash: string;
}

/** One registered route: its method and its pattern as the router holds it (`/v1/tenants/:tenant`). */
export interface RouteInfo {
  readonly method: string;
  readonly url: string;
}

const routeTables = new WeakMap<FastifyInstance, RouteInfo[]>();

/** Every route registerApi registered on `app` (HEAD routes Fastify adds for GETs included). */
export function registeredRoutes(app: FastifyInstance): readonly RouteInfo[] {
  return routeTables.get(app) ?? [];
}

export function registerApi(app: FastifyInstance, platform: Platform, tokens: { admin: Secret; node: Secret }): void {
  const table: RouteInfo[] = [];
  routeTables.set(app, table);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) table.push({ method, url: route.url });
  });
  const adminHash = hashToken(tokens.admin.reveal());
  const nodeHash = hashToken(tokens.node.reveal());

  app.setErrorHandler((err, req, reply) => sendProblem(err, req, reply));
  app.setNotFoundHandler((req, reply) => sendProblem(new NotFoundError(`no such endpoint: ${req.method} ${req.url.split('?')[0]}`), req, reply));

  // Paths are checked once, before auth: a request has one spelling or none. Then
  // authentication, decided by the route the router matched (never by the raw path, which
  // the router decodes): everything but a short public list needs a token, unknown paths
  // included. All of it happens before any body is parsed or any handler touches state.
  app.addHook('onRequest', async (req) => {
    const reason = nonCanonicalReason(req.url);
    if (reason !== null) {
      const q = req.url.indexOf('?');
      throw new InputError(`path: ${JSON.stringify(q < 0 ? req.url : req.url.slice(0, q))} ${reason}`, 'path');
    }
    const param = tokenLikeQueryParam(req.url);
    if (param !== null) throw new InputError(`query: ${JSON.stringify(param)} looks like a credential; tokens are accepted only in the Authorization header (Bearer)`, param);
    const pattern = req.routeOptions.url;
    if (isPublicRoute(req.method, pattern)) return;
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!token) throw new UnauthenticatedError('authorization: a bearer token is required (see $LANES_HOME/admin.token)');
    const h = hashToken(token);
    let role: Role | null = h === adminHash ? 'admin' : h === nodeHash ? 'node' : null;
    if (!role) {
      const found = await platform.store.findTokenByHash(h);
      role = found?.role ?? null;
    }
    if (!role) throw new UnauthenticatedError('authorization: the token is not valid');
    if (role === 'node' && pattern !== undefined && !isDataPlaneRoute(pattern)) throw new NotAllowedError('authorization: a node token may only use the data-plane endpoints');
    req.role = role;
  });

  // Every JSON body of this API is an object: null, a list, a string or a missing body on a
  // route that needs one is a 400 before the handler runs (a null edge body once reset all
  // settings). Routes whose fields are all optional say so with `optionalBody`.
  app.addHook('preValidation', async (req) => {
    if (req.method !== 'POST' && req.method !== 'PUT' && req.method !== 'PATCH') return;
    const config = req.routeOptions.config;
    if (config.binaryBody === true) return;
    if (req.body === undefined && config.optionalBody === true) return;
    if (!isJsonObject(req.body)) throw new InputError(`body: expected a JSON object, got ${kindOf(req.body)}`, 'body');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/openapi.json', async () => openApiDocument);

  const zonesOut = () => platform.zones.list().map(({ agentUrl: _hidden, ...z }) => z);
  app.get('/v1/platform', async () => ({
    version: '0.1.0',
    domain: platform.config.domain,
    gatewayUrl: platform.config.gatewayUrl,
    isolation: platform.config.isolation,
    networkCidr: platform.config.isolation === 'netns' ? platform.config.networkCidr : null,
    zones: zonesOut(),
  }));
  app.get('/v1/zones', async () => ({ items: zonesOut() }));
  app.put<{ Params: { zone: string } }>('/v1/zones/:zone', async (req) => {
    const body = parseInput(zoneBody, req.body);
    await platform.setZoneDown(req.params.zone, body.state === 'down');
    return zonesOut().find((z) => z.name === req.params.zone);
  });

  // ---- tenants
  app.post('/v1/tenants', async (req, reply) => {
    const body = parseInput(tenantBody, req.body);
    return reply.code(201).send(await platform.createTenant(body.name));
  });
  app.get('/v1/tenants', async () => ({ items: await platform.store.listTenants() }));
  app.get<{ Params: Params }>('/v1/tenants/:tenant', async (req) => platform.store.getTenant(checkName('tenant', req.params.tenant)));
  app.delete<{ Params: Params }>('/v1/tenants/:tenant', async (req, reply) => {
    await platform.deleteTenant(req.params.tenant);
    return reply.code(204).send();
  });

  // ---- environments
  const envOut = (e: Awaited<ReturnType<Platform['environment']>>) => {
    const host = environmentHost(e.name, e.tenant, platform.config.domain);
    const gw = new URL(platform.config.gatewayUrl);
    const plan = e.netIndex !== null ? platform.planOf(e.netIndex) : null;
    return {
      tenant: e.tenant,
      name: e.name,
      lane: e.lane,
      phase: e.phase,
      host,
      url: `${gw.protocol}//${host}${gw.port ? `:${gw.port}` : ''}/`,
      release: e.currentRelease,
      createdAt: e.createdAt,
      isolation: plan ? 'netns' : 'none',
      network: plan ? { subnet: plan.subnet, egressAddress: plan.egressAddress, egress: e.egress } : null,
    };
  };
  app.post<{ Params: Params }>('/v1/tenants/:tenant/environments', async (req, reply) => {
    const body = parseInput(envBody, req.body);
    // Everything is checked before anything is written: a refused egress list leaves no environment behind.
    if (body.egress !== undefined) checkEgressDestinations(parseEgress(body.egress, platform.config.networkCidr, platform.zones.names), platform.config.networkCidr);
    const env = await platform.createEnvironment(checkName('tenant', req.params.tenant), body.name, body.lane, body.egress);
    return reply.code(201).send(envOut(env));
  });
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments', async (req) => {
    await platform.store.getTenant(checkName('tenant', req.params.tenant));
    return { items: (await platform.store.listEnvironments(req.params.tenant)).map(envOut) };
  });
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env', async (req) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    const [services, instances, rollout] = await Promise.all([platform.services(env), platform.instances(env), platform.rollout(env)]);
    const ready = rollout?.state === 'complete';
    return {
      ...envOut(env),
      services,
      instances,
      rollout: rollout && env.currentRelease ? { release: env.currentRelease, ...rollout } : null,
      lastRollback: platform.rollbacks.get(env.id) ?? null,
      conditions: [
        {
          type: 'Ready',
          status: ready ? 'True' : 'False',
          reason: env.phase === 'deleting' ? 'Deleting' : !env.currentRelease ? 'NoRelease' : ready ? 'RolloutComplete' : rollout?.state === 'failed' ? 'RolloutFailed' : 'RolloutProgressing',
          message: env.currentRelease ? (rollout?.message ?? '') : 'no release deployed yet',
          time: new Date().toISOString(),
        },
      ],
    };
  });
  app.delete<{ Params: Params }>('/v1/tenants/:tenant/environments/:env', async (req, reply) => {
    const env = await platform.deleteEnvironment(req.params.tenant, req.params.env);
    return reply.code(202).send(envOut(env));
  });

  // ---- managed databases (status, switchover and backups go through the members' keepers)
  type DbParams = Params & { db: string };
  const dbBase = '/v1/tenants/:tenant/environments/:env/databases';
  app.get<{ Params: Params }>(dbBase, async (req) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    const dbs = await platform.store.listDatabases(env.id);
    return { items: await Promise.all(dbs.map((d) => platform.databaseStatus(env, d.name))) };
  });
  app.post<{ Params: Params }>(dbBase, async (req, reply) => reply.code(201).send(await platform.createDatabase(req.params.tenant, req.params.env, req.body)));
  app.get<{ Params: DbParams }>(`${dbBase}/:db`, async (req) => platform.databaseStatus(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db)));
  // The full URL with its password, for the operator's own tools (services get it as DATABASE_URL).
  app.get<{ Params: DbParams }>(`${dbBase}/:db/url`, async (req) => platform.databaseUrl(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db)));
  app.delete<{ Params: DbParams }>(`${dbBase}/:db`, async (req, reply) => {
    const db = await platform.databases.delete(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db));
    return reply.code(202).send({ name: db.name, phase: db.phase });
  });
  app.post<{ Params: DbParams }>(`${dbBase}/:db/switchover`, { config: { optionalBody: true } }, async (req) => {
    const to = (req.body as Record<string, unknown> | undefined)?.['to'];
    return platform.databases.switchover(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db), to);
  });
  app.post<{ Params: DbParams }>(`${dbBase}/:db/backups`, { config: { optionalBody: true } }, async (req, reply) => reply.code(201).send(await platform.databases.backup(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db))));
  app.get<{ Params: DbParams }>(`${dbBase}/:db/backups`, async (req) => platform.databases.backups(await platform.environment(req.params.tenant, req.params.env), checkDatabaseName('database', req.params.db)));
  app.post<{ Params: DbParams }>(`${dbBase}/:db/restore`, async (req, reply) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    const db = await platform.databases.restore(env, checkDatabaseName('database', req.params.db), req.body);
    platform.kick();
    await platform.settle();
    return reply.code(201).send(await platform.databaseStatus(env, db.name));
  });

  // ---- TLS: the platform CA and each environment's certificate (never its key)
  app.get('/v1/ca', async (_req, reply) => reply.type('application/x-pem-file').header('cache-control', 'no-cache').send(platform.certificates.caPem));
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/certificate', async (req) => platform.certificates.view(await platform.environment(req.params.tenant, req.params.env)));
  app.put<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/certificate', async (req) => {
    const body = parseInput(certificateBody, req.body);
    return platform.certificates.setCustom(await platform.environment(req.params.tenant, req.params.env), body);
  });
  app.delete<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/certificate', async (req) => platform.certificates.clear(await platform.environment(req.params.tenant, req.params.env)));

  app.put<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/egress', async (req) => {
    const body = parseInput(egressBody, req.body);
    checkEgressDestinations(parseEgress(body.allow, platform.config.networkCidr, platform.zones.names), platform.config.networkCidr);
    return envOut(await platform.setEgress(req.params.tenant, req.params.env, body.allow));
  });

  // ---- edge settings (access control at the gateway): PUT replaces, PATCH changes the fields given
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/edge', async (req) => platform.edgeOf(req.params.tenant, req.params.env));
  app.put<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/edge', async (req) => platform.setEdge(req.params.tenant, req.params.env, req.body, 'replace'));
  app.patch<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/edge', async (req) => platform.setEdge(req.params.tenant, req.params.env, req.body, 'patch'));

  // ---- releases
  app.post<{ Params: Params; Body: Buffer }>(
    '/v1/tenants/:tenant/environments/:env/releases',
    { bodyLimit: platform.config.maxPackageBytes, config: { binaryBody: true } },
    async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const r = await platform.deploy(req.params.tenant, req.params.env, body);
      return reply.code(r.unchanged ? 200 : 201).send({ ...releaseOut(r.release), unchanged: r.unchanged });
    },
  );
  app.post<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/rollback', { config: { optionalBody: true } }, async (req, reply) => {
    const body = parseInput(rollbackBody, req.body ?? {});
    return reply.code(202).send(releaseOut(await platform.rollbackTo(req.params.tenant, req.params.env, body.release)));
  });
  for (const action of ['stop', 'start', 'restart'] as const) {
    app.post<{ Params: Params }>(`/v1/tenants/:tenant/environments/:env/${action}`, { config: { optionalBody: true } }, async (req, reply) => {
      const body = parseInput(runBody, req.body ?? {});
      await platform.setRunState(req.params.tenant, req.params.env, body.service, action);
      return reply.code(202).send({ accepted: true, action, service: body.service ?? null });
    });
  }
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/releases', async (req) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    return { items: (await platform.store.listReleases(env.id)).map(releaseOut) };
  });

  // ---- services and instances
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/services', async (req) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    return { items: await platform.services(env) };
  });
  app.put<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/services/:service/scale', async (req) => {
    const body = parseInput(scaleBody, req.body);
    return platform.scale(req.params.tenant, req.params.env, req.params.service, body.instances);
  });
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/instances', async (req) => {
    const env = await platform.environment(req.params.tenant, req.params.env);
    return { items: await platform.instances(env) };
  });

  // ---- events
  app.get('/v1/events', async (req) => {
    const q = parseInput(eventsQuery, req.query, 'query');
    const filter: { tenant?: string; environment?: string; afterId?: number; limit?: number } = {};
    if (q.tenant !== undefined) filter.tenant = checkName('tenant', q.tenant);
    if (q.environment !== undefined) filter.environment = checkName('environment', q.environment);
    if (q.after !== undefined) filter.afterId = q.after;
    if (q.limit !== undefined) filter.limit = q.limit;
    return { items: await platform.store.listEvents(filter) };
  });

  // ---- logs: fetched from the zone supervisors that run the instances
  app.get<{ Params: Params }>('/v1/tenants/:tenant/environments/:env/logs', async (req, reply) => {
    const q = parseInput(logsQuery, req.query, 'query');
    const env = await platform.environment(req.params.tenant, req.params.env);
    const rows = (await platform.store.listInstances({ environmentId: env.id })).filter(
      (r) => (q.service === undefined || r.service === q.service) && (q.instance === undefined || r.id === q.instance),
    );
    if (q.instance !== undefined && rows.length === 0) throw new NotFoundError(`instance ${JSON.stringify(q.instance)} not found in ${env.tenant}/${env.name}`);
    const follow = q.follow === '1' || q.follow === 'true';
    await streamLogs(req, reply, platform, tokens.node, rows.map(instanceInfo), { tail: q.tail ?? 100, follow });
  });

  // ---- data plane
  app.get<{ Querystring: { zone?: string } }>('/v1/agent/watch', async (req, reply) => {
    const zone = req.query.zone ?? '';
    if (!platform.zones.has(zone)) throw new NotFoundError(`zone ${JSON.stringify(zone)} is not a zone of this platform (${platform.zones.names.join(', ')})`);
    openStream(req, reply, (send) => platform.desiredHub.subscribe(zone, send, (v) => platform.encodeDesired(v)));
  });
  app.post('/v1/agent/report', async (req) => {
    const body = parseInput(reportBody, req.body);
    await platform.report(body as AgentReport);
    return { ok: true };
  });
  app.get<{ Params: Params }>('/v1/agent/packages/:hash', async (req, reply) => {
    const file = await platform.packageFile(req.params.hash);
    return reply.type('application/gzip').send(createReadStream(file));
  });
  app.post('/v1/gateway/report', async (req) => {
    const body = parseInput(trafficBody, req.body);
    platform.recordTraffic(body.counts);
    return { ok: true };
  });
  app.get('/v1/gateway/watch', async (req, reply) => {
    openStream(req, reply, (send) => platform.tableHub.subscribe('table', send, (t) => `${JSON.stringify({ type: 'table', table: t })}\n`));
  });
  registerDnsApi(app, platform, openStream);
}

function releaseOut(r: Awaited<ReturnType<Platform['store']['getRelease']>>) {
  return {
    id: r.hash,
    version: r.version,
    name: r.manifest.name,
    status: r.status,
    createdAt: r.createdAt,
    services: r.manifest.services.map((s) => ({ name: s.name, instances: s.instances, http: s.http, path: s.path })),
  };
}

/** An NDJSON stream kept open with pings; `subscribe` returns its unsubscribe. */
function openStream(req: FastifyRequest, reply: FastifyReply, subscribe: (send: (line: string) => void) => () => void): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  const send = (line: string): void => {
    if (!res.writableEnded) res.write(line);
  };
  const unsubscribe = subscribe(send);
  const ping = setInterval(() => send(`${JSON.stringify({ type: 'ping', time: new Date().toISOString() })}\n`), PING_MS);
  const close = (): void => {
    clearInterval(ping);
    unsubscribe();
  };
  req.raw.socket.setTimeout(0);
  res.on('close', close);
}

async function streamLogs(
  req: FastifyRequest,
  reply: FastifyReply,
  platform: Platform,
  nodeToken: Secret,
  instances: ReturnType<typeof instanceInfo>[],
  opts: { tail: number; follow: boolean },
): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  req.raw.socket.setTimeout(0);
  await Promise.all(
    instances.map(async (inst) => {
      const agentUrl = platform.zones.agentUrl(inst.zone) ?? (await platform.store.listZones()).find((z) => z.name === inst.zone)?.agentUrl;
      if (!agentUrl) return;
      const url = `${agentUrl}/v1/logs?instance=${encodeURIComponent(inst.id)}&tail=${opts.tail}${opts.follow ? '&follow=1' : ''}`;
      try {
        const r = await undiciRequest(url, {
          headers: { authorization: `Bearer ${nodeToken.reveal()}` },
          signal: abort.signal,
          headersTimeout: 5000,
          bodyTimeout: opts.follow ? 0 : 30_000,
        });
        if (r.statusCode !== 200) {
          await r.body.dump();
          return;
        }
        let buf = '';
        for await (const chunk of r.body) {
          buf += String(chunk);
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const raw = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!raw.trim()) continue;
            try {
              const line = JSON.parse(raw) as Partial<LogLine>;
              const out: LogLine = {
                time: line.time ?? null,
                instance: inst.id,
                service: inst.service,
                zone: inst.zone,
                stream: line.stream === 'stderr' ? 'stderr' : 'stdout',
                line: String(line.line ?? ''),
              };
              if (!res.writableEnded) res.write(`${JSON.stringify(out)}\n`);
            } catch {
              /* a malformed line from a supervisor is skipped */
            }
          }
        }
      } catch (err) {
        if (!abort.signal.aborted) req.log.warn({ instance: inst.id, zone: inst.zone, err: (err as Error).message }, 'log fetch failed');
      }
    }),
  );
  if (!res.writableEnded) res.end();
}
