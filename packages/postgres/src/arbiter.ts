/**
 * The arbiter (witness): the third party of the lease, in a third zone, with no data. It
 * only answers lease requests with `vote` and keeps its record (term, holder, synchronous
 * standby) on disk before answering a grant that changes it. After a restart it assumes it
 * promised a full lease just before. Serves `POST /lease` and `GET /status` (bearer token).
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ArbiterConfig } from './config.js';
import { vote, type VoterState } from './decide.js';
import { startApiServer, type ApiServer, type Reply } from './http.js';
import { parseLeaseRequest, recordOf } from './lease.js';
import type { Logger } from './logging.js';
import { ownedDir } from './pgexec.js';
import type { Secret } from './secret.js';
import { loadArbiterState, StateFile, type ArbiterState } from './state.js';

export const ARBITER_READY_FILE = 'arbiter.json';
const now = (): number => performance.now();

export class Arbiter {
  readonly #c: ArbiterConfig;
  readonly #token: Secret;
  readonly #log: Logger;
  readonly #file: StateFile<ArbiterState>;
  #state: ArbiterState = { version: 1, record: { term: 0, holder: null, syncStandby: null } };
  #promiseUntil = 0;
  #api: ApiServer | null = null;
  readonly #lastSeen = new Map<string, number>();
  #lastReason = '';

  constructor(opts: { config: ArbiterConfig; token: Secret; logger: Logger }) {
    this.#c = opts.config;
    this.#token = opts.token;
    this.#log = opts.logger;
    this.#file = new StateFile(path.join(this.#c.stateDir, 'arbiter-state.json'));
  }

  get port(): number {
    return this.#api?.port ?? 0;
  }

  async start(): Promise<void> {
    await ownedDir(this.#c.stateDir, null, 0o700);
    this.#state = await loadArbiterState(path.join(this.#c.stateDir, 'arbiter-state.json'));
    this.#promiseUntil = now() + this.#c.leaseMs;
    this.#api = await startApiServer({
      host: this.#c.host,
      port: this.#c.port,
      token: this.#token,
      logger: this.#log,
      routes: [
        { method: 'POST', path: '/lease', handle: (body) => this.#onLease(body) },
        { method: 'GET', path: '/status', handle: () => ({ status: 200, json: this.status() }) },
      ],
    });
    const hostPart = this.#api.host.includes(':') ? `[${this.#api.host}]` : this.#api.host;
    await writeFile(path.join(this.#c.stateDir, ARBITER_READY_FILE), `${JSON.stringify({ pid: process.pid, name: this.#c.name, url: `http://${hostPart}:${this.#api.port}`, port: this.#api.port })}\n`, { mode: 0o600 });
    this.#log.info({ arbiter: this.#c.name, zone: this.#c.zone, port: this.#api.port, term: this.#state.record.term, holder: this.#state.record.holder }, 'arbiter started');
  }

  async #onLease(body: unknown): Promise<Reply> {
    const req = parseLeaseRequest(body);
    this.#lastSeen.set(req.holder, Date.now());
    const current: VoterState = { ...this.#state.record, promiseUntilMs: this.#promiseUntil };
    const v = vote(current, req, now());
    if (v.granted) {
      const before = this.#state.record;
      const changed = before.term !== v.state.term || before.holder !== v.state.holder || before.syncStandby !== v.state.syncStandby;
      this.#state = { version: 1, record: { term: v.state.term, holder: v.state.holder, syncStandby: v.state.syncStandby } };
      this.#promiseUntil = v.state.promiseUntilMs;
      if (changed) {
        await this.#file.save(this.#state);
        this.#log.info({ kind: req.kind, term: v.state.term, holder: v.state.holder, syncStandby: v.state.syncStandby, reason: v.reason }, 'record changed');
      }
    } else if (v.reason !== this.#lastReason) {
      this.#log.info({ kind: req.kind, term: req.term, holder: req.holder, reason: v.reason }, 'refused');
    }
    this.#lastReason = v.reason;
    return { status: 200, json: { granted: v.granted, reason: v.reason, record: recordOf(this.#state.record) } };
  }

  status(): Record<string, unknown> {
    return {
      name: this.#c.name,
      zone: this.#c.zone,
      role: 'arbiter',
      term: this.#state.record.term,
      holder: this.#state.record.holder,
      syncStandby: this.#state.record.syncStandby,
      promiseValidForMs: Math.max(0, Math.round(this.#promiseUntil - now())),
      members: [...this.#lastSeen].map(([name, at]) => ({ name, lastRequestMsAgo: Date.now() - at })),
    };
  }

  async close(): Promise<void> {
    await this.#api?.close();
    await rm(path.join(this.#c.stateDir, ARBITER_READY_FILE), { force: true });
  }
}
