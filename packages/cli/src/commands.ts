/**
 * The commands that talk to the running platform through the public API: tenant, env,
 * deploy, status, scale, logs, events, releases. Each parses its own flags (strict),
 * validates names locally with @lanes/spec, then calls the API.
 */
import { checkName, parseEnvRef } from '@lanes/spec';
import { connect, type ApiClient } from './api.js';
import { expectPositionals, parseCommandArgs, parseIntArg, parseTimeoutMs } from './args.js';
import { CliError, UsageError } from './errors.js';
import { EVENT_HEADER, renderEgress, renderEnvironments, renderEvent, renderLogLine, renderReleases, renderStatus, renderTenants, shortId } from './format.js';
import { printUsage, usageOf } from './help.js';
import type { CliConfig } from './home.js';
import type { Io } from './io.js';
import {
  decodeEnvironment,
  decodeEnvironmentStatus,
  decodeEvent,
  decodeItems,
  decodeLogLine,
  decodeRelease,
  decodeService,
  decodeTenant,
  type Environment,
  type Release,
} from './model.js';
import { sleep } from './procs.js';
import { deployAndFollow, envPath, followRollout, loadPackage } from './rollout.js';

export interface CommandContext {
  readonly config: CliConfig;
  readonly io: Io;
}

const tenantPath = (tenant: string): string => `/v1/tenants/${encodeURIComponent(tenant)}`;

/** `lanes tenant create|list|delete NAME` */
export async function tenantCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'tenant');
  const name = `tenant ${sub}`;
  if (sub !== 'create' && sub !== 'list' && sub !== 'delete') {
    throw new UsageError(`tenant: unknown subcommand ${JSON.stringify(sub)}; use create, list or delete`);
  }
  const args = parseCommandArgs(name, rest, {});
  if (args.help) return printUsage(ctx.io, name);
  if (sub === 'list') {
    expectPositionals(name, args.positionals, 0, 0, usageOf(name));
    const { api } = await connect(ctx.config);
    const tenants = decodeItems(await api.get('/v1/tenants'), 'tenants', decodeTenant);
    for (const l of renderTenants(tenants)) ctx.io.line(l);
    return 0;
  }
  expectPositionals(name, args.positionals, 1, 1, usageOf(name));
  const tenant = checkName('tenant', args.positionals[0]);
  const { api } = await connect(ctx.config);
  if (sub === 'create') {
    decodeTenant((await api.request('POST', '/v1/tenants', { json: { name: tenant } })).body);
    ctx.io.line(`created tenant ${tenant}`);
  } else {
    await api.request('DELETE', tenantPath(tenant));
    ctx.io.line(`deleted tenant ${tenant}`);
  }
  return 0;
}

/** `lanes env create|list|delete|egress` */
export async function envCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'env');
  const name = `env ${sub}`;
  switch (sub) {
    case 'create': {
      const args = parseCommandArgs(name, rest, { lane: { type: 'string' }, egress: { type: 'string' } });
      if (args.help) return printUsage(ctx.io, name);
      expectPositionals(name, args.positionals, 1, 1, usageOf(name));
      const ref = parseEnvRef(args.positionals[0] ?? '');
      const lane = args.values.lane;
      if (lane !== undefined && lane !== 'single' && lane !== 'double') {
        throw new UsageError(`--lane: ${JSON.stringify(lane)} is not a lane; use single or double`);
      }
      const egress = args.values.egress === undefined ? undefined : parseEgressList('--egress', args.values.egress);
      const { api } = await connect(ctx.config);
      const body = { name: ref.environment, ...(lane === undefined ? {} : { lane }), ...(egress === undefined ? {} : { egress }) };
      const env = decodeEnvironment((await api.request('POST', `${tenantPath(ref.tenant)}/environments`, { json: body })).body);
      const network = env.network === null ? '' : `, network ${env.network.subnet}`;
      ctx.io.line(`created environment ${env.tenant}/${env.name} (lane ${env.lane}${network})${env.url ? ` at ${env.url}` : ''}`);
      if (env.network !== null && egress !== undefined) ctx.io.line(`egress allowed only to ${renderEgress(env.network.egress)}`);
      if (env.network === null && egress !== undefined) ctx.io.line('note: the platform runs without isolation (none), so the egress list is recorded but not enforced');
      return 0;
    }
    case 'egress': {
      const args = parseCommandArgs(name, rest, { allow: { type: 'string' }, any: { type: 'boolean' } });
      if (args.help) return printUsage(ctx.io, name);
      expectPositionals(name, args.positionals, 1, 1, usageOf(name));
      const ref = parseEnvRef(args.positionals[0] ?? '');
      if ((args.values.allow === undefined) === (args.values.any !== true)) {
        throw new UsageError(`${name}: give either --allow CIDR[:PORT],... or --any; usage: ${usageOf(name)}`);
      }
      const allow = args.values.allow === undefined ? null : parseEgressList('--allow', args.values.allow);
      const { api } = await connect(ctx.config);
      const env = decodeEnvironment((await api.request('PUT', `${envPath(ref.tenant, ref.environment)}/egress`, { json: { allow } })).body);
      const rule = allow === null ? 'any destination outside the platform' : `only ${renderEgress(env.network?.egress ?? allow.map(parseEgressEntry))}`;
      ctx.io.line(`egress of ${ref.tenant}/${ref.environment}: ${rule}`);
      if (env.network === null) ctx.io.line('note: the platform runs without isolation (none), so the egress list is recorded but not enforced');
      return 0;
    }
    case 'list': {
      const args = parseCommandArgs(name, rest, {});
      if (args.help) return printUsage(ctx.io, name);
      expectPositionals(name, args.positionals, 0, 1, usageOf(name));
      const only = args.positionals[0] === undefined ? null : checkName('tenant', args.positionals[0]);
      const { api } = await connect(ctx.config);
      const tenants = only !== null ? [only] : decodeItems(await api.get('/v1/tenants'), 'tenants', decodeTenant).map((t) => t.name);
      const envs: Environment[] = [];
      for (const t of tenants) {
        envs.push(...decodeItems(await api.get(`${tenantPath(t)}/environments`), 'environments', decodeEnvironment));
      }
      for (const l of renderEnvironments(envs)) ctx.io.line(l);
      return 0;
    }
    case 'delete': {
      const args = parseCommandArgs(name, rest, { timeout: { type: 'string' } });
      if (args.help) return printUsage(ctx.io, name);
      expectPositionals(name, args.positionals, 1, 1, usageOf(name));
      const ref = parseEnvRef(args.positionals[0] ?? '');
      const timeoutMs = args.values.timeout === undefined ? 120_000 : parseTimeoutMs('timeout', args.values.timeout);
      const { api } = await connect(ctx.config);
      await api.request('DELETE', envPath(ref.tenant, ref.environment));
      ctx.io.line(`deleting environment ${ref.tenant}/${ref.environment}…`);
      await waitUntilGone(api, ctx.io, ref.tenant, ref.environment, timeoutMs);
      ctx.io.line(`deleted environment ${ref.tenant}/${ref.environment}`);
      return 0;
    }
    default:
      throw new UsageError(`env: unknown subcommand ${JSON.stringify(sub)}; use create, list, delete or egress`);
  }
}

const EGRESS_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})(?::(\d{1,5}))?$/;

/** One `CIDR[:PORT]` entry, e.g. `0.0.0.0/0:443`; a usage error when it is not one. */
function parseEgressEntry(entry: string): { cidr: string; port: number | null } {
  const m = EGRESS_RE.exec(entry);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32 || (m[6] !== undefined && (Number(m[6]) < 1 || Number(m[6]) > 65535))) {
    throw new UsageError(`egress: ${JSON.stringify(entry)} is not CIDR[:PORT]; use e.g. 192.0.2.0/24 or 198.51.100.7/32:443`);
  }
  const cidr = entry.split(':')[0] ?? entry;
  return { cidr, port: m[6] === undefined ? null : Number(m[6]) };
}

/** `--egress`/`--allow`: a comma-separated list of `CIDR[:PORT]` entries, checked locally. */
export function parseEgressList(flag: string, value: string): string[] {
  const entries = value.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 0) throw new UsageError(`${flag}: give at least one CIDR[:PORT], e.g. 198.51.100.7/32:443`);
  for (const e of entries) {
    try {
      parseEgressEntry(e);
    } catch (err) {
      throw new UsageError(`${flag}: ${err instanceof Error ? err.message.replace(/^egress: /, '') : String(err)}`);
    }
  }
  return entries;
}

async function waitUntilGone(api: ApiClient, io: Io, tenant: string, environment: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    let remaining: number;
    try {
      const status = decodeEnvironmentStatus(await api.get(envPath(tenant, environment)));
      remaining = status.instances.filter((i) => i.state !== 'stopped').length;
    } catch (err) {
      // The environment is gone once the API says 404 (problem detail names it).
      if (err instanceof CliError && (await isGone(api, tenant, environment))) return;
      throw err;
    }
    const line = `${remaining} instance${remaining === 1 ? '' : 's'} still running`;
    if (line !== last) {
      io.line(line);
      last = line;
    }
    if (Date.now() >= deadline) {
      throw new CliError(`environment ${tenant}/${environment} was not gone within ${Math.round(timeoutMs / 1000)}s (${line})`);
    }
    await sleep(500);
  }
}

async function isGone(api: ApiClient, tenant: string, environment: string): Promise<boolean> {
  const res = await api.request('GET', `${tenantPath(tenant)}/environments`).catch(() => null);
  if (res === null) return false;
  const envs = decodeItems(res.body, 'environments', decodeEnvironment);
  return !envs.some((e) => e.name === environment);
}

/** `lanes deploy TENANT/ENV PATH [--timeout 120s]` */
export async function deployCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('deploy', argv, { timeout: { type: 'string' } });
  if (args.help) return printUsage(ctx.io, 'deploy');
  expectPositionals('deploy', args.positionals, 2, 2, usageOf('deploy'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const timeoutMs = args.values.timeout === undefined ? 120_000 : parseTimeoutMs('timeout', args.values.timeout);
  const pkg = await loadPackage(args.positionals[1] ?? '');
  const { api } = await connect(ctx.config);
  const { release, status } = await deployAndFollow(api, ctx.io, ref.tenant, ref.environment, pkg, timeoutMs);
  ctx.io.line(`deployed release ${shortId(release.id)} (version ${release.version}) to ${ref.tenant}/${ref.environment}${status.url ? `: ${status.url}` : ''}`);
  return 0;
}

/** `lanes status TENANT/ENV [--json]` */
export async function statusCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('status', argv, { json: { type: 'boolean' } });
  if (args.help) return printUsage(ctx.io, 'status');
  expectPositionals('status', args.positionals, 1, 1, usageOf('status'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const { api } = await connect(ctx.config);
  const raw = await api.get(envPath(ref.tenant, ref.environment));
  if (args.values.json === true) {
    ctx.io.line(JSON.stringify(raw, null, 2));
    return 0;
  }
  const status = decodeEnvironmentStatus(raw);
  let release: Release | null = null;
  if (status.release !== null) {
    const releases = decodeItems(await api.get(`${envPath(ref.tenant, ref.environment)}/releases`), 'releases', decodeRelease);
    release = releases.find((r) => r.id === status.release) ?? null;
  }
  for (const l of renderStatus(status, release)) ctx.io.line(l);
  return 0;
}

/** `lanes scale TENANT/ENV SERVICE N` */
export async function scaleCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('scale', argv, {});
  if (args.help) return printUsage(ctx.io, 'scale');
  expectPositionals('scale', args.positionals, 3, 3, usageOf('scale'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const service = checkName('service', args.positionals[1]);
  const instances = parseIntArg('instances', args.positionals[2] ?? '', 0, 50);
  const { api } = await connect(ctx.config);
  const res = await api.request('PUT', `${envPath(ref.tenant, ref.environment)}/services/${encodeURIComponent(service)}/scale`, {
    json: { instances },
  });
  const s = decodeService(res.body);
  const effective = s.effectiveInstances !== s.instances ? ` (${s.effectiveInstances} after the lane rule)` : '';
  ctx.io.line(`scaled ${s.name} of ${ref.tenant}/${ref.environment} to ${s.instances} instance${s.instances === 1 ? '' : 's'}${effective}`);
  return 0;
}

/** `lanes rollback TENANT/ENV [RELEASE] [--timeout 120s]`: back to RELEASE (id prefix or version), by default the one before. */
export async function rollbackCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('rollback', argv, { timeout: { type: 'string' } });
  if (args.help) return printUsage(ctx.io, 'rollback');
  expectPositionals('rollback', args.positionals, 1, 2, usageOf('rollback'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const target = args.positionals[1];
  const timeoutMs = args.values.timeout === undefined ? 120_000 : parseTimeoutMs('timeout', args.values.timeout);
  const { api } = await connect(ctx.config);
  const started = Date.now();
  const res = await api.request('POST', `${envPath(ref.tenant, ref.environment)}/rollback`, { json: target === undefined ? {} : { release: target } });
  const release = decodeRelease(res.body);
  ctx.io.line(`rolling back ${ref.tenant}/${ref.environment} to release ${shortId(release.id)} (version ${release.version})`);
  await followRollout(api, ctx.io, ref.tenant, ref.environment, release, started + timeoutMs, timeoutMs);
  ctx.io.line(`release ${shortId(release.id)} (version ${release.version}) is live on ${ref.tenant}/${ref.environment}`);
  return 0;
}

/** `lanes stop|start|restart TENANT/ENV [SERVICE] [--timeout 120s]`, following the result. */
export function runStateCommand(action: 'stop' | 'start' | 'restart') {
  return async (ctx: CommandContext, argv: readonly string[]): Promise<number> => {
    const args = parseCommandArgs(action, argv, { timeout: { type: 'string' } });
    if (args.help) return printUsage(ctx.io, action);
    expectPositionals(action, args.positionals, 1, 2, usageOf(action));
    const ref = parseEnvRef(args.positionals[0] ?? '');
    const service = args.positionals[1] === undefined ? undefined : checkName('service', args.positionals[1]);
    const timeoutMs = args.values.timeout === undefined ? 120_000 : parseTimeoutMs('timeout', args.values.timeout);
    const { api } = await connect(ctx.config);
    const started = Date.now();
    await api.request('POST', `${envPath(ref.tenant, ref.environment)}/${action}`, { json: service === undefined ? {} : { service } });
    const what = service ? `${service} of ${ref.tenant}/${ref.environment}` : `${ref.tenant}/${ref.environment}`;
    if (action === 'stop') {
      ctx.io.line(`stopping ${what}…`);
      for (;;) {
        const status = decodeEnvironmentStatus(await api.get(envPath(ref.tenant, ref.environment)));
        const left = status.instances.filter((i) => service === undefined || i.service === service).length;
        if (left === 0) break;
        if (Date.now() - started > timeoutMs) throw new CliError(`${what} did not stop within ${Math.round(timeoutMs / 1000)}s (${left} instance${left === 1 ? '' : 's'} left); see lanes status ${ref.tenant}/${ref.environment}`);
        await sleep(500);
      }
      ctx.io.line(`stopped ${what}`);
      return 0;
    }
    ctx.io.line(`${action === 'start' ? 'starting' : 'restarting'} ${what}…`);
    const status = decodeEnvironmentStatus(await api.get(envPath(ref.tenant, ref.environment)));
    if (status.release === null) throw new CliError(`${ref.tenant}/${ref.environment} has no release yet; deploy one first`);
    const releases = decodeItems(await api.get(`${envPath(ref.tenant, ref.environment)}/releases`), 'releases', decodeRelease);
    const release = releases.find((r) => r.id === status.release);
    if (!release) throw new CliError(`release ${shortId(status.release)} of ${ref.tenant}/${ref.environment} not found`);
    await followRollout(api, ctx.io, ref.tenant, ref.environment, release, started + timeoutMs, timeoutMs);
    ctx.io.line(`${action === 'start' ? 'started' : 'restarted'} ${what}`);
    return 0;
  };
}

/** `lanes releases TENANT/ENV` */
export async function releasesCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('releases', argv, {});
  if (args.help) return printUsage(ctx.io, 'releases');
  expectPositionals('releases', args.positionals, 1, 1, usageOf('releases'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const { api } = await connect(ctx.config);
  const releases = decodeItems(await api.get(`${envPath(ref.tenant, ref.environment)}/releases`), 'releases', decodeRelease);
  for (const l of renderReleases(releases)) ctx.io.line(l);
  return 0;
}

/** Aborts on Ctrl-C so a followed stream ends quietly with exit 0. */
function abortOnInterrupt(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** `lanes logs TENANT/ENV [SERVICE] [--follow] [--tail N]` */
export async function logsCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('logs', argv, { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, instance: { type: 'string' } });
  if (args.help) return printUsage(ctx.io, 'logs');
  expectPositionals('logs', args.positionals, 1, 2, usageOf('logs'));
  const ref = parseEnvRef(args.positionals[0] ?? '');
  const query = new URLSearchParams();
  if (args.positionals[1] !== undefined) query.set('service', checkName('service', args.positionals[1]));
  if (args.values.instance !== undefined) query.set('instance', args.values.instance);
  query.set('tail', String(args.values.tail === undefined ? 100 : parseIntArg('--tail', args.values.tail, 0, 100_000)));
  const follow = args.values.follow === true;
  if (follow) query.set('follow', '1');
  const { api } = await connect(ctx.config);
  const interrupt = abortOnInterrupt();
  try {
    const res = await api.stream(`${envPath(ref.tenant, ref.environment)}/logs?${query.toString()}`, interrupt.signal);
    if (res.body === null) return 0;
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          const l = line === '' ? null : decodeLogLine(line);
          if (l) ctx.io.line(renderLogLine(l));
        }
      }
    } catch (err) {
      if (interrupt.signal.aborted) return 0;
      const reason = err instanceof Error ? (err.message === 'terminated' ? 'the connection was closed' : err.message) : String(err);
      throw new CliError(`the log stream from ${api.baseUrl} broke off: ${reason}`);
    }
    const last = buffered.trim() === '' ? null : decodeLogLine(buffered.trim());
    if (last) ctx.io.line(renderLogLine(last));
    if (follow && !interrupt.signal.aborted) throw new CliError(`the log stream from ${api.baseUrl} ended (the control plane may have restarted)`);
    return 0;
  } catch (err) {
    if (interrupt.signal.aborted) return 0;
    throw err;
  } finally {
    interrupt.dispose();
  }
}

/** `lanes events [TENANT[/ENV]] [--follow]` */
export async function eventsCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs('events', argv, { follow: { type: 'boolean', short: 'f' } });
  if (args.help) return printUsage(ctx.io, 'events');
  expectPositionals('events', args.positionals, 0, 1, usageOf('events'));
  const scope = args.positionals[0];
  const filter = new URLSearchParams();
  if (scope !== undefined) {
    if (scope.includes('/')) {
      const ref = parseEnvRef(scope);
      filter.set('tenant', ref.tenant);
      filter.set('environment', ref.environment);
    } else filter.set('tenant', checkName('tenant', scope));
  }
  const { api } = await connect(ctx.config);
  const limit = 100;
  let after: string | null = null;
  let printedHeader = false;
  const interrupt = args.values.follow === true ? abortOnInterrupt() : null;
  try {
    for (;;) {
      const query = new URLSearchParams(filter);
      query.set('limit', String(limit));
      if (after !== null) query.set('after', after);
      const events = decodeItems(await api.get(`/v1/events?${query.toString()}`), 'events', decodeEvent);
      if (events.length > 0 && !printedHeader) {
        ctx.io.line(EVENT_HEADER);
        printedHeader = true;
      }
      for (const e of events) ctx.io.line(renderEvent(e));
      const lastEvent = events[events.length - 1];
      if (lastEvent !== undefined) after = lastEvent.id;
      if (events.length >= limit) continue; // more pages waiting
      if (interrupt === null) break;
      await sleep(1000);
      if (interrupt.signal.aborted) break;
    }
  } catch (err) {
    if (interrupt?.signal.aborted) return 0;
    throw err;
  } finally {
    interrupt?.dispose();
  }
  if (!printedHeader && args.values.follow !== true) ctx.io.line('no events');
  return 0;
}
