/**
 * The multi-process gateway: one primary and N workers (one per core by default) sharing
 * the listeners through node:cluster. The split follows what costs what:
 *
 * - Workers do the per-request work — parse, route, balance, proxy — each a complete
 *   `Gateway` on the shared HTTP/HTTPS/TCP ports, with no state of their own on disk.
 * - The primary does the per-change and per-second work once for all of them: it follows
 *   the control plane's watch stream, validates and persists each table and hands it to
 *   the workers; it runs the active health checks and tells every worker the verdicts; it
 *   adds up the workers' figures for `GET /metrics` and the autoscaler's traffic report;
 *   and it restarts a worker that dies (a crashed worker costs its own connections only).
 *
 * Passive outlier detection and the rate limiters stay per worker: they react within a
 * request and a round trip through the primary would cost more than it gains.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { HealthChecker } from './checks.js';
import type { GatewayConfig } from './config.js';
import type { Logger } from './logging.js';
import { MetricsReporter } from './metrics.js';
import type { TrafficSource } from './metrics.js';
import { LatestWriter, readJsonFile, writeFileAtomic } from '@lanes/runtime';
import { READY_FILE, TABLE_FILE } from './persist.js';
import { Gateway } from './proxy.js';
import { RoutingState } from './routing.js';
import { mergeSnapshots, renderPrometheus } from './stats.js';
import type { StatsSnapshot } from './stats.js';
import { TableWatcher, tokenFromFile } from './watch.js';

/** Primary → worker. */
type ToWorker =
  | { readonly t: 'table'; readonly table: unknown }
  | { readonly t: 'check'; readonly key: string; readonly down: boolean }
  | { readonly t: 'stop' };

/** Worker → primary. */
type ToPrimary =
  | { readonly t: 'listening'; readonly url: string; readonly httpsUrl: string | null }
  | { readonly t: 'stats'; readonly stats: StatsSnapshot[]; readonly connections: number };

const STATS_INTERVAL_MS = 1000;

// ---------------------------------------------------------------------------------------
// Worker

export async function runWorker(config: GatewayConfig, log: Logger): Promise<void> {
  const gateway = new Gateway({
    stateDir: config.stateDir,
    host: config.host,
    httpPort: config.httpPort,
    ...(config.httpsPort === null ? {} : { httpsPort: config.httpsPort }),
    trustedProxies: config.trustedProxies,
    limits: config.limits,
    logger: log,
    activeChecks: false,
    persistTable: false,
  });
  process.on('message', (msg: ToWorker) => {
    switch (msg.t) {
      case 'table':
        try {
          gateway.applyTable(msg.table);
        } catch (err) {
          log.error({ err }, 'table from the primary rejected');
        }
        break;
      case 'check':
        gateway.setCheckDown(msg.key, msg.down);
        break;
      case 'stop':
        void gateway.close().then(() => process.exit(0));
        break;
    }
  });
  // Figures go up every second; the primary adds them together.
  const timer = setInterval(() => {
    send({ t: 'stats', stats: gateway.routing.stats.snapshot(), connections: gateway.connections });
  }, STATS_INTERVAL_MS);
  timer.unref();
  const url = await gateway.start();
  send({ t: 'listening', url, httpsUrl: gateway.httpsUrl });
  // The primary stops workers with a message; a SIGTERM sent to the whole group is the same.
  process.on('SIGTERM', () => void gateway.close().then(() => process.exit(0)));
  process.on('SIGINT', () => undefined);
  // The primary is gone (killed): the shared listeners went with it, so this worker is useless.
  process.on('disconnect', () => void gateway.close(1_000).then(() => process.exit(0)));
}

function send(msg: ToPrimary): void {
  if (process.send && process.connected) process.send(msg);
}

// ---------------------------------------------------------------------------------------
// Primary

interface WorkerInfo {
  readonly worker: Worker;
  stats: StatsSnapshot[];
  /** Totals of workers that died, so counters never go backwards. */
  connections: number;
  listening: boolean;
}

/** The table, health verdicts and figures the primary keeps for its workers. */
class PrimaryState {
  readonly routing = new RoutingState();
  readonly #writer: LatestWriter;
  readonly #log: Logger;
  readonly #broadcast: (msg: ToWorker) => void;
  readonly checker: HealthChecker;

  constructor(stateDir: string, log: Logger, broadcast: (msg: ToWorker) => void) {
    this.#log = log;
    this.#broadcast = broadcast;
    this.#writer = new LatestWriter(path.join(stateDir, TABLE_FILE), (err) => log.error({ err, file: TABLE_FILE }, 'routing table not persisted'));
    this.checker = new HealthChecker({
      onChange: (key, down, target, detail) => {
        this.routing.setCheckDown(key, down);
        log.warn({ instance: target.instance, endpoint: key, detail }, down ? 'instance failed its health checks: out of rotation' : 'instance passes its health checks again: back in rotation');
        broadcast({ t: 'check', key, down });
      },
    });
  }

  /** TableSink: validate, keep, persist, hand to every worker. */
  applyTable(candidate: unknown): ReturnType<RoutingState['replace']> {
    const table = this.routing.replace(candidate);
    this.#writer.write(JSON.stringify(table));
    this.checker.sync(this.routing.checkTargets());
    this.#broadcast({ t: 'table', table });
    this.#log.info({ revision: table.revision, hosts: table.hosts.length }, 'routing table applied');
    return table;
  }

  async loadPersisted(stateDir: string): Promise<void> {
    const file = path.join(stateDir, TABLE_FILE);
    try {
      const saved = await readJsonFile(file);
      if (saved === null) return;
      const table = this.routing.replace(saved);
      this.checker.sync(this.routing.checkTargets());
      this.#log.info({ revision: table.revision, hosts: table.hosts.length }, 'persisted routing table loaded');
    } catch (err) {
      this.#log.warn({ err, file }, 'persisted routing table ignored');
    }
  }

  async close(): Promise<void> {
    this.checker.close();
    await this.#writer.idle();
  }
}

export async function runPrimary(config: GatewayConfig, log: Logger): Promise<void> {
  const workers = new Map<number, WorkerInfo>();
  /** Figures of workers that died, kept so that counters never go backwards. */
  const retired: StatsSnapshot[][] = [];
  let stopping = false;
  const broadcast = (msg: ToWorker): void => {
    for (const w of workers.values()) if (w.worker.isConnected()) w.worker.send(msg);
  };
  const state = new PrimaryState(config.stateDir, log, broadcast);
  await state.loadPersisted(config.stateDir);

  const merged = (): StatsSnapshot[] => mergeSnapshots([...retired, ...[...workers.values()].map((w) => w.stats)]);
  // The autoscaler's traffic report: request counts since the previous report, from the sum.
  const reported = new Map<string, number>();
  const traffic: TrafficSource = {
    take(): { tenant: string; environment: string; service: string; requests: number }[] {
      const out: { tenant: string; environment: string; service: string; requests: number }[] = [];
      for (const s of merged()) {
        const key = `${s.tenant}/${s.environment}/${s.service}`;
        const n = s.requests - (reported.get(key) ?? 0);
        reported.set(key, s.requests);
        if (n > 0) out.push({ tenant: s.tenant, environment: s.environment, service: s.service, requests: n });
      }
      return out;
    },
  };

  let firstUrl: { url: string; httpsUrl: string | null } | null = null;
  let readyResolve: (() => void) | null = null;
  const allListening = new Promise<void>((resolve) => (readyResolve = resolve));
  const restarts: number[] = [];

  // Workers accept from the shared listening socket themselves (SCHED_NONE) rather than
  // through the primary (round robin): a connection waiting in the kernel's backlog is
  // taken by whichever worker is alive, so a worker killed with SIGKILL loses only the
  // connections it had accepted, never one the primary was handing over; and the primary
  // is not on the path of every new connection.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = (): void => {
    const worker = cluster.fork();
    const info: WorkerInfo = { worker, stats: [], connections: 0, listening: false };
    workers.set(worker.id, info);
    worker.on('online', () => {
      if (state.routing.table !== null) worker.send({ t: 'table', table: state.routing.table } satisfies ToWorker);
      for (const key of state.checker.down()) worker.send({ t: 'check', key, down: true } satisfies ToWorker);
    });
    worker.on('message', (msg: ToPrimary) => {
      if (msg.t === 'stats') {
        info.stats = msg.stats;
        info.connections = msg.connections;
      } else if (msg.t === 'listening') {
        info.listening = true;
        firstUrl ??= { url: msg.url, httpsUrl: msg.httpsUrl };
        if ([...workers.values()].filter((w) => w.listening).length >= config.workers) readyResolve?.();
      }
    });
    worker.on('exit', (code, signal) => {
      workers.delete(worker.id);
      retired.push(info.stats);
      if (stopping) return;
      log.error({ worker: worker.process.pid, code, signal }, 'gateway worker died; starting another');
      const now = Date.now();
      restarts.push(now);
      while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
      // A worker that cannot stay up (a bad port, a bug on start) is retried slowly.
      setTimeout(fork, restarts.length > 5 ? 5_000 : 100).unref();
    });
  };
  for (let i = 0; i < config.workers; i++) fork();

  let started = false;
  const startupTimer = setTimeout(() => {
    if (started) return;
    log.fatal({ workers: config.workers }, 'gateway workers did not start listening');
    process.exit(1);
  }, 30_000);
  await allListening;
  started = true;
  clearTimeout(startupTimer);

  const token = config.tokenFile === null ? null : tokenFromFile(config.tokenFile);
  let admin: http.Server | null = null;
  if (config.adminPort !== null) {
    admin = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
      void (async () => {
        if (token !== null && req.headers.authorization !== `Bearer ${await token()}`) {
          res.writeHead(401, { 'content-type': 'text/plain' }).end('a bearer token (the node token) is required\n');
          return;
        }
        if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
          return;
        }
        const connections = [...workers.values()].reduce((n, w) => n + w.connections, 0);
        const body = renderPrometheus(merged(), { connections, workers: workers.size, tableRevision: state.routing.revision });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
      })().catch((err: unknown) => {
        log.error({ err }, 'admin request failed');
        res.destroy();
      });
    });
    admin.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      admin?.once('error', reject);
      admin?.listen(config.adminPort ?? 0, config.host, () => resolve());
    });
  }
  const adminAddr = admin?.address();
  const adminUrl = adminAddr && typeof adminAddr === 'object' ? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${adminAddr.port}` : null;

  const readyFile = path.join(config.stateDir, READY_FILE);
  const urls = firstUrl as { url: string; httpsUrl: string | null } | null;
  await writeFileAtomic(readyFile, `${JSON.stringify({ pid: process.pid, url: urls?.url, httpsUrl: urls?.httpsUrl ?? null, adminUrl, workers: config.workers })}\n`);
  log.info({ url: urls?.url, httpsUrl: urls?.httpsUrl, adminUrl, workers: config.workers }, 'gateway ready');

  let watcher: TableWatcher | null = null;
  let reporter: MetricsReporter | null = null;
  if (config.apiUrl !== null && token !== null) {
    watcher = new TableWatcher({ apiUrl: config.apiUrl, token, sink: state, logger: log });
    watcher.start();
    reporter = new MetricsReporter({ apiUrl: config.apiUrl, token, traffic, logger: log });
    reporter.start();
  } else {
    log.warn('no --api given; serving the persisted routing table only');
  }

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: workers.size }, 'stopping: workers drain their in-flight requests');
    void (async () => {
      reporter?.stop();
      await watcher?.stop();
      const exits = [...workers.values()].map((w) => new Promise<void>((resolve) => (w.worker.isDead() ? resolve() : w.worker.once('exit', () => resolve()))));
      broadcast({ t: 'stop' });
      const grace = setTimeout(() => {
        for (const w of workers.values()) w.worker.process.kill('SIGKILL');
      }, config.limits.shutdownGraceMs + 2_000);
      await Promise.all(exits);
      clearTimeout(grace);
      admin?.close();
      await state.close();
      await rm(readyFile, { force: true });
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** In a worker process? */
export function isWorker(): boolean {
  return cluster.isWorker;
}

export { Gateway };
