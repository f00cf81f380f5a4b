/**
 * Deploying a package and following its rollout: packs a directory (or takes a .tgz as
 * is), posts it, then polls the environment until the rollout of that release completes,
 * fails, crash-loops or runs out of time. Used by `lanes deploy` and `lanes up --demo`.
 */
import { readFile, stat } from 'node:fs/promises';
import { packDirectory } from '@lanes/archive';
import type { ApiClient } from './api.js';
import { CliError } from './errors.js';
import { rolloutProgress, shortId } from './format.js';
import type { Io } from './io.js';
import { decodeEnvironmentStatus, decodeRelease, type EnvironmentStatus, type Release } from './model.js';
import { sleep } from './procs.js';

/** @default 500 */
const POLL_INTERVAL_MS = 500;

export function envPath(tenant: string, environment: string): string {
  return `/v1/tenants/${encodeURIComponent(tenant)}/environments/${encodeURIComponent(environment)}`;
}

/** The package bytes for PATH: a directory is packed, a .tgz/.tar.gz file is sent as is. */
export async function loadPackage(packagePath: string): Promise<Buffer> {
  let info;
  try {
    info = await stat(packagePath);
  } catch {
    throw new CliError(`deploy: ${JSON.stringify(packagePath)} does not exist; give a directory with a lanes.yaml or a .tgz package`);
  }
  if (info.isDirectory()) return packDirectory(packagePath);
  if (info.isFile() && /\.(tgz|tar\.gz)$/i.test(packagePath)) return readFile(packagePath);
  throw new CliError(`deploy: ${JSON.stringify(packagePath)} is neither a directory nor a .tgz/.tar.gz file`);
}

export interface DeployResult {
  readonly release: Release;
  readonly status: EnvironmentStatus;
}

/** Posts the package and follows the rollout; throws a CliError when it does not complete. */
export async function deployAndFollow(
  api: ApiClient,
  io: Io,
  tenant: string,
  environment: string,
  pkg: Uint8Array,
  timeoutMs: number,
): Promise<DeployResult> {
  const started = Date.now();
  const res = await api.request('POST', `${envPath(tenant, environment)}/releases`, {
    body: pkg,
    contentType: 'application/gzip',
    timeoutMs: Math.max(timeoutMs, 30_000),
  });
  const release = decodeRelease(res.body);
  io.line(
    res.status === 200
      ? `release ${shortId(release.id)} (version ${release.version}) is already the current release of ${tenant}/${environment}`
      : `created release ${shortId(release.id)} (version ${release.version}) of ${tenant}/${environment}`,
  );
  const status = await followRollout(api, io, tenant, environment, release, started + timeoutMs, timeoutMs);
  return { release, status };
}

/** Polls the environment every 500 ms, printing progress lines when they change. */
export async function followRollout(
  api: ApiClient,
  io: Io,
  tenant: string,
  environment: string,
  release: Release,
  deadline: number,
  timeoutMs: number,
): Promise<EnvironmentStatus> {
  const printed = new Map<string, string>();
  let lastSummary = 'no status yet';
  for (;;) {
    const raw = await api.get(envPath(tenant, environment));
    const status = decodeEnvironmentStatus(raw);
    if (status.release !== null && status.release !== release.id) {
      // The platform's circuit breaker (or someone else) moved the environment to another release.
      const rb = lastRollback(raw);
      if (rb && rb.from === release.id) {
        throw new CliError(`rollout of release ${shortId(release.id)} failed and was rolled back to ${shortId(rb.to)}: ${rb.reason}`);
      }
      throw new CliError(`release ${shortId(release.id)} is no longer the current release of ${tenant}/${environment} (now ${shortId(status.release)}); see lanes events ${tenant}/${environment}`);
    }
    const progress = rolloutProgress(status);
    for (const line of progress) {
      const key = line.slice(0, line.indexOf(':'));
      if (printed.get(key) !== line) {
        printed.set(key, line);
        io.line(line);
      }
    }
    lastSummary = progress.join(', ') || lastSummary;
    const rollout = status.rollout;
    const ours = rollout !== null && (rollout.release === release.id || rollout.release === '');
    if (ours && rollout.state === 'complete') return status;
    if (ours && rollout.state === 'failed') {
      throw new CliError(`rollout of release ${shortId(release.id)} failed: ${rollout.message || 'no reason given'}`);
    }
    const looping = status.instances.find(
      (i) => (i.release === release.id || i.release === '') && (i.state === 'crashloop' || /crash.?loop/i.test(i.message)),
    );
    if (looping) {
      throw new CliError(
        `rollout of release ${shortId(release.id)} failed: instance ${looping.id} (${looping.service}) is crash-looping${looping.message ? `: ${looping.message}` : ''}`,
      );
    }
    if (Date.now() >= deadline) {
      throw new CliError(`the rollout of release ${shortId(release.id)} did not complete within ${Math.round(timeoutMs / 1000)}s (${lastSummary}); see lanes status ${tenant}/${environment}`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** The environment status's `lastRollback`, read defensively. */
function lastRollback(raw: unknown): { from: string; to: string; reason: string } | null {
  if (typeof raw !== 'object' || raw === null || !('lastRollback' in raw)) return null;
  const rb: unknown = raw.lastRollback;
  if (typeof rb !== 'object' || rb === null) return null;
  const get = (k: string): string => {
    const v: unknown = (rb as Record<string, unknown>)[k];
    return typeof v === 'string' ? v : '';
  };
  return { from: get('from'), to: get('to'), reason: get('reason') };
}
