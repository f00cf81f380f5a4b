/**
 * The authority: the zone in force, the failover state and the health checker that feeds
 * it, and the last good zone on disk. A new snapshot is validated before anything changes;
 * an invalid one is rejected whole and the zone in force stays. Every failover decision is
 * logged as one sentence ("www.dr.lanes.example now answers secondary 203.0.113.20: primary
 * 203.0.113.10 is unhealthy (HTTP 503) and secondary 203.0.113.20 is healthy").
 */
import path from 'node:path';
import type { DnsTarget, DnsZoneSnapshot } from '@lanes/spec';
import { answerQuestion, type Answer, type Question } from './answer.js';
import { HealthChecker, type ProbeResult } from './checker.js';
import { FailoverState, type Role } from './failover.js';
import { silentLogger, type Logger } from './logging.js';
import { LatestWriter, readJsonFile } from '@lanes/runtime';
import { ZONE_FILE } from './persist.js';
import { buildZone, validateSnapshot, type Zone } from './zone.js';

export interface AuthorityOptions {
  /** Where the last accepted zone is kept; null keeps nothing on disk. */
  readonly stateDir: string | null;
  readonly logger?: Logger;
  /** The health checks' probe; replaceable in tests. */
  readonly probe?: (url: string, timeoutMs: number) => Promise<ProbeResult>;
}

export class Authority {
  readonly failover = new FailoverState();
  readonly #log: Logger;
  readonly #checker: HealthChecker;
  readonly #writer: LatestWriter | null;
  readonly #file: string | null;
  #zone: Zone | null = null;

  constructor(options: AuthorityOptions) {
    this.#log = options.logger ?? silentLogger();
    this.#file = options.stateDir === null ? null : path.join(options.stateDir, ZONE_FILE);
    this.#writer = this.#file === null ? null : new LatestWriter(this.#file, (err) => this.#log.error({ err }, 'could not persist the zone; the one in memory still serves'));
    this.#checker = new HealthChecker({ onResult: (name, role, key, r) => this.#onResult(name, role, key, r), ...(options.probe ? { probe: options.probe } : {}) });
  }

  get zone(): Zone | null {
    return this.#zone;
  }

  /** The serial in force, or null before the first zone (the watch's revision rule reads it). */
  get serial(): number | null {
    return this.#zone?.snapshot.serial ?? null;
  }

  /** Validates and installs a zone; throws an InputError (keeping the zone in force) when it is invalid. */
  applySnapshot(candidate: unknown, persist = true): DnsZoneSnapshot {
    const snapshot = validateSnapshot(candidate);
    const zone = buildZone(snapshot);
    this.#zone = zone;
    this.failover.setRecords(zone.failover.values());
    this.#checker.sync([...zone.failover.values()]);
    if (persist) this.#writer?.write(`${JSON.stringify(snapshot)}\n`);
    this.#log.info({ domain: snapshot.domain, serial: snapshot.serial, hosts: snapshot.hosts.length, failover: zone.failover.size }, 'zone installed');
    return snapshot;
  }

  /** Serves the zone persisted by an earlier run, if there is a valid one; true when it did. */
  async loadPersisted(): Promise<boolean> {
    if (this.#file === null) return false;
    try {
      const saved = await readJsonFile(this.#file);
      if (saved === null) return false;
      this.applySnapshot(saved, false);
      return true;
    } catch (err) {
      this.#log.warn({ err, file: this.#file }, 'persisted zone not usable; waiting for the control plane');
      return false;
    }
  }

  answer(q: Question): Answer {
    return answerQuestion(this.#zone, q, (record): DnsTarget => this.failover.choice(record).target);
  }

  async close(): Promise<void> {
    this.#checker.stop();
    await this.#writer?.idle();
  }

  #onResult(name: string, role: Role, key: string, r: ProbeResult): void {
    const t = this.failover.report(name, role, key, r.ok, r.detail);
    if (t === null) return;
    if (t.flipped) {
      const record = this.failover.records().find((x) => x.name === name);
      const fields = { record: name, role, address: record?.[role].address, check: r.detail };
      if (t.health.healthy) this.#log.info(fields, 'failover target healthy');
      else this.#log.warn(fields, 'failover target unhealthy');
    }
    if (t.before.role !== t.after.role || t.before.reason !== t.after.reason) {
      const sentence = `${name} now answers ${t.after.role} ${t.after.target.address}: ${t.after.reason} (last ${role} check: ${r.detail})`;
      this.#log.warn({ record: name, from: t.before.role, to: t.after.role, decision: sentence }, 'failover decision');
    }
  }
}
