/**
 * Pure text rendering of API answers: aligned tables, the status view, rollout progress,
 * log and event lines. No I/O, so every format is unit-tested.
 */
import type { LogLine } from '@lanes/spec';
import type { EnvironmentStatus, Environment, LanesEvent, Release, Tenant } from './model.js';

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
