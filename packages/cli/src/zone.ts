/**
 * `lanes zone list|down|up`: zones and their state, and a simulated availability-zone outage
 * on one machine. `down` first tells the control plane (the gateway stops routing there), then
 * cuts the zone's network links (isolation netns), then freezes the zone's processes; `up`
 * undoes it in the reverse order. The frozen zone is recorded in context.json (`downZones`).
 */
import { checkZoneName } from '@lanes/spec';
import { connect } from './api.js';
import { expectPositionals, parseCommandArgs } from './args.js';
import { CliError, UsageError } from './errors.js';
import { freezeZone, thawZone } from './freeze.js';
import { renderZones } from './format.js';
import { printUsage, usageOf } from './help.js';
import { readContext, updateContext, type DownZone, type LanesContext } from './home.js';
import type { CommandContext } from './commands.js';
import { decodeItems, decodeZone } from './model.js';
import { setZoneLinks } from './network.js';

/** `lanes zone list|down|up` */
export async function zoneCommand(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') return printUsage(ctx.io, 'zone');
  if (sub !== 'list' && sub !== 'down' && sub !== 'up') {
    throw new UsageError(`zone: unknown subcommand ${JSON.stringify(sub)}; use list, down or up`);
  }
  const name = `zone ${sub}`;
  const args = parseCommandArgs(name, rest, {});
  if (args.help) return printUsage(ctx.io, name);
  if (sub === 'list') {
    expectPositionals(name, args.positionals, 0, 0, usageOf(name));
    const { api } = await connect(ctx.config);
    const zones = decodeItems(await api.get('/v1/zones'), 'zones', decodeZone);
    for (const l of renderZones(zones, new Date())) ctx.io.line(l);
    return 0;
  }
  expectPositionals(name, args.positionals, 1, 1, usageOf(name));
  const zone = checkZoneName('zone', args.positionals[0]);
  return sub === 'down' ? zoneDown(ctx, zone) : zoneUp(ctx, zone);
}

/**
 * The platform of this machine (context.json) when the command talks to it, else null (a
 * LANES_API_URL elsewhere: only the control plane is told). Unknown zones fail here, before
 * anything changes.
 */
async function localPlatform(ctx: CommandContext, zone: string): Promise<LanesContext | null> {
  const found = await readContext(ctx.config.home);
  const apiUrl = ctx.config.apiUrl?.replace(/\/+$/, '') ?? null;
  const local = found !== null && (apiUrl === null || apiUrl === found.apiUrl) ? found : null;
  if (local !== null && local.zones.length > 0 && !local.zones.includes(zone)) {
    throw new CliError(`zone ${JSON.stringify(zone)} is not a zone of this platform (${local.zones.join(', ')})`);
  }
  return local;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 'es'}`;
}

async function zoneDown(ctx: CommandContext, zone: string): Promise<number> {
  const local = await localPlatform(ctx, zone);
  const { api } = await connect(ctx.config);
  // (a) Routing first: the gateway must stop sending requests before the zone goes silent.
  await api.request('PUT', `/v1/zones/${encodeURIComponent(zone)}`, { json: { state: 'down' } });
  ctx.io.line(`zone ${zone} is down for the control plane: the gateway no longer routes to it`);
  if (local === null) {
    ctx.io.line(`no platform of this machine in ${ctx.config.home}: zone ${zone}'s processes and links were left as they are`);
    return 0;
  }
  // (b) The network: the zone's instances lose their links (every environment).
  if (local.isolation === 'netns') {
    await setZoneLinks(zone, false);
    ctx.io.line(`cut the network links of zone ${zone}'s instances`);
  }
  // (c) The machines: supervisor and instances stop as if their host had vanished.
  const frozen = await freezeZone(ctx.config.home, local, zone);
  const previous = local.downZones.find((d) => d.zone === zone);
  const merge = (a: DownZone['supervisors'], b: DownZone['supervisors']) => [...new Map([...a, ...b].map((p) => [p.pid, p])).values()];
  const entry: DownZone = {
    zone,
    since: previous?.since ?? new Date().toISOString(),
    supervisors: merge(previous?.supervisors ?? [], frozen.supervisors),
    instances: merge(previous?.instances ?? [], frozen.instances),
  };
  await updateContext(ctx.config.home, (raw) => ({ ...raw, downZones: [...local.downZones.filter((d) => d.zone !== zone), entry] }));
  const sup = frozen.supervisors.map((p) => p.pid).join(', ');
  ctx.io.line(
    `froze zone ${zone}: ${sup === '' ? 'no running supervisor' : `supervisor (pid ${sup})`} and ${plural(frozen.instances.length, 'instance process')}; lanes zone up ${zone} ends the outage`,
  );
  return 0;
}

async function zoneUp(ctx: CommandContext, zone: string): Promise<number> {
  const local = await localPlatform(ctx, zone);
  const { api } = await connect(ctx.config);
  if (local !== null) {
    const recorded = local.downZones.find((d) => d.zone === zone);
    const thawed = await thawZone(ctx.config.home, local, zone, recorded);
    ctx.io.line(`continued zone ${zone}: ${thawed.supervisors.length > 0 ? `supervisor (pid ${thawed.supervisors.join(', ')})` : 'no supervisor'} and ${plural(thawed.instances, 'instance process')}`);
    if (local.isolation === 'netns') {
      await setZoneLinks(zone, true);
      ctx.io.line(`restored the network links of zone ${zone}'s instances`);
    }
    await updateContext(ctx.config.home, (raw) => ({ ...raw, downZones: local.downZones.filter((d) => d.zone !== zone) }));
  }
  await api.request('PUT', `/v1/zones/${encodeURIComponent(zone)}`, { json: { state: 'up' } });
  ctx.io.line(`zone ${zone} is up: it takes traffic again once its supervisor reports`);
  return 0;
}
