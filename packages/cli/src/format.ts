/**
 * Pure text rendering of API answers: aligned tables, the status view, rollout progress,
 * log and event lines. No I/O, so every format is unit-tested.
 */
import type { LogLine } from '@lanes/spec';
import type { EnvironmentNetwork, EnvironmentStatus, Environment, LanesEvent, Release, Tenant, Zone } from './model.js';

/** Columns separated by two spaces, each as wide as its widest cell; no trailing spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(headers), ...rows.map(render)];
}

/** The first 12 hex digits of a content hash, as releases are shown everywhere. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}

export function renderTenants(tenants: readonly Tenant[]): string[] {
  if (tenants.length === 0) return ['no tenants'];
  return table(['TENANT', 'CREATED'], tenants.map((t) => [t.name, t.createdAt]));
}

export function renderEnvironments(envs: readonly Environment[]): string[] {
  if (envs.length === 0) return ['no environments'];
  return table(
    ['ENVIRONMENT', 'LANE', 'PHASE', 'RELEASE', 'URL'],
    envs.map((e) => [`${e.tenant}/${e.name}`, e.lane, e.phase, e.release ? shortId(e.release) : '-', e.url || '-']),
  );
}

export function renderReleases(releases: readonly Release[]): string[] {
  if (releases.length === 0) return ['no releases'];
  const sorted = [...releases].sort((a, b) => b.version - a.version);
  return table(
    ['VERSION', 'RELEASE', 'NAME', 'STATUS', 'CREATED', 'SERVICES'],
    sorted.map((r) => [
      String(r.version),
      shortId(r.id),
      r.name,
      r.status,
      r.createdAt,
      r.services.map((s) => `${s.name}×${s.instances}`).join(' ') || '-',
    ]),
  );
}

/** `lanes status`: the environment, its release and rollout, services and instances. */
export function renderStatus(status: EnvironmentStatus, release: Release | null): string[] {
  const lines: string[] = [];
  const releaseText = status.release === null ? 'none' : release ? `${shortId(release.id)} (version ${release.version}, ${release.name})` : shortId(status.release);
  const ready = status.conditions.find((c) => c.type === 'Ready');
  const head: [string, string][] = [
    ['environment', `${status.tenant}/${status.name} (lane ${status.lane}, ${status.phase})`],
    ['url', status.url || '-'],
    ['release', releaseText],
  ];
  if (status.rollout) {
    head.push(['rollout', `${status.rollout.state}${status.rollout.message ? `: ${status.rollout.message}` : ''}`]);
  }
  if (ready) head.push(['ready', `${ready.status === 'True' ? 'yes' : 'no'}${ready.message ? ` (${ready.message})` : ready.reason ? ` (${ready.reason})` : ''}`]);
  head.push(...isolationLines(status));
  // Where clients reach each tcp service: `tcp  127.0.0.1:30001 → broker`.
  for (const s of status.services) if (s.tcp) head.push(['tcp', `${s.tcp.address}:${s.tcp.port} → ${s.name}`]);
  const keyWidth = Math.max(...head.map(([k]) => k.length));
  for (const [k, v] of head) lines.push(`${k.padEnd(keyWidth)}  ${v}`);

  lines.push('');
  if (status.services.length === 0) lines.push('no services');
  else {
    lines.push(
      ...table(
        ['SERVICE', 'INSTANCES', 'READY', 'HTTP', 'PATH'],
        status.services.map((s) => [
          s.name,
          s.effectiveInstances === s.instances ? String(s.instances) : `${s.effectiveInstances} (asked ${s.instances})`,
          `${s.ready}/${s.effectiveInstances}`,
          s.http ? 'yes' : 'no',
          s.path ?? '-',
        ]),
      ),
    );
  }

  lines.push('');
  if (status.instances.length === 0) lines.push('no instances');
  else {
    const instances = [...status.instances].sort((a, b) => a.service.localeCompare(b.service) || a.zone.localeCompare(b.zone) || a.id.localeCompare(b.id));
    const withMessage = instances.some((i) => i.message !== '');
    const headers = ['INSTANCE', 'SERVICE', 'ZONE', 'PID', 'ADDRESS', 'STATE', 'HEALTHY', 'RESTARTS'];
    if (withMessage) headers.push('MESSAGE');
    lines.push(
      ...table(
        headers,
        instances.map((i) => {
          const row = [
            i.id,
            i.service,
            i.zone || '-',
            i.pid === null ? '-' : String(i.pid),
            i.address && i.port !== null ? `${i.address}:${i.port}` : i.address || '-',
            i.desired === 'stopped' && i.state !== 'stopped' ? `${i.state} (stopping)` : i.state,
            i.healthy ? 'yes' : 'no',
            String(i.restarts),
          ];
          if (withMessage) row.push(i.message);
          return row;
        }),
      ),
    );
  }
  return lines;
}

/** `isolation`, and for a private network its subnet, egress address and egress rule. */
function isolationLines(env: Environment): [string, string][] {
  if (env.network !== null) {
    return [
      ['isolation', env.isolation || 'netns'],
      ['network', env.network.subnet || '-'],
      ['egress address', env.network.egressAddress || '-'],
      ['egress', renderEgress(env.network.egress)],
    ];
  }
  // '' : a control plane from before isolation existed says nothing about it.
  return env.isolation === '' ? [] : [['isolation', env.isolation]];
}

/** `any destination outside the platform`, `nothing`, or `0.0.0.0/0:443, 10.1.0.0/16`. */
export function renderEgress(egress: EnvironmentNetwork['egress']): string {
  if (egress === null) return 'any destination outside the platform';
  if (egress.length === 0) return 'nothing';
  return egress.map((e) => (e.port === null ? e.cidr : `${e.cidr}:${e.port}`)).join(', ');
}

/** `lanes zone list`: one row per zone; LAST SEEN relative to `now`. */
export function renderZones(zones: readonly Zone[], now: Date): string[] {
  if (zones.length === 0) return ['no zones'];
  return table(
    ['ZONE', 'STATE', 'ADDRESS', 'LAST SEEN'],
    zones.map((z) => [z.name, z.state, z.address ?? '-', z.lastSeenAt === null ? 'never' : ago(z.lastSeenAt, now)]),
  );
}

function ago(iso: string, now: Date): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now.getTime() - t) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return iso;
}

/** Rollout progress of one environment, one line per service: `web: 1/2 healthy`. */
export function rolloutProgress(status: EnvironmentStatus): string[] {
  return status.services.map((s) => `${s.name}: ${s.ready}/${s.effectiveInstances} healthy`);
}

export function renderLogLine(l: LogLine): string {
  return l.stream === 'stderr' ? `${l.instance} | [stderr] ${l.line}` : `${l.instance} | ${l.line}`;
}

/** One event per line with fixed-width columns, so a followed stream stays aligned. */
export function renderEvent(e: LanesEvent): string {
  return `${e.time.padEnd(24)}  ${e.object.padEnd(32)}  ${e.reason.padEnd(20)}  ${e.message}`.trimEnd();
}

export const EVENT_HEADER = `${'TIME'.padEnd(24)}  ${'OBJECT'.padEnd(32)}  ${'REASON'.padEnd(20)}  MESSAGE`;
