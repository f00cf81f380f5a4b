/**
 * The keeper: one per member. It owns its PostgreSQL (a supervised postmaster), takes part
 * in the lease with its peers, and every tick observes the server, asks `decide` for the
 * next step and carries it out: initdb, start, promote, fence, clone (pg_basebackup),
 * rewind (pg_rewind), follow, and the synchronous-standby steps. It serves
 * `GET /mirrorstatus` (200 SUCCESS only on the primary holding a valid lease, else 503
 * FAILED), `GET /status`, `POST /lease` (the lease RPC), `POST /switchover` (on the
 * primary: a planned handover without lost writes) and `POST /handover` (its standby half).
 *
 * Fencing does not wait for the tick: a timer at the end of the lease stops PostgreSQL at
 * once (immediate shutdown) if `decide` says so. Every grant changing the record is on
 * disk before it is answered.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { z } from 'zod';
import { ConflictError, InputError, UnavailableError } from '@lanes/spec';
import type { KeeperConfig, PeerConfig } from './config.js';
import {
  decide,
  learnFromRefusal,
  majority,
  memberVotingState,
  shouldRenew,
  vote,
  type Action,
  type Decision,
  type ElectionWon,
  type LeaseRequest,
  type MemberObservation,
  type PostgresState,
  type VoterState,
} from './decide.js';
import { DirectoryBackupStore, planRetention, restoreCommandFor, takeBaseBackup, verifyBackup, type BackupInfo, type BackupStore } from './backup.js';
import { startApiServer, type ApiServer, type Reply, type Route } from './http.js';
import { askPeer, parseLeaseRequest, recordOf, type PeerReply } from './lease.js';
import type { Logger } from './logging.js';
import { commandLine, conninfo, quoteIdent, renderPgHba, renderPostgresqlConf, REPLICATION_USER, SUPERUSER } from './pgconf.js';
import { LocalClient, observeServer, type ServerObservation } from './pgclient.js';
import { asUser, ensureDir, findPostgresBin, isDataDir, ownedDir, parseControlData, parseLsn, removeDir, resolveRunAs, runTool, writeOwnedFile, type RunAs } from './pgexec.js';
import { Postmaster, stopOrphan } from './postmaster.js';
import { scramVerifier } from './scram.js';
import type { Secret } from './secret.js';
import { loadSecrets, renderPassfile, type ClusterSecrets } from './secrets.js';
import { loadKeeperState, StateFile, type FailoverEvent, type KeeperState } from './state.js';

const STATE_FILE = 'keeper-state.json';
export const KEEPER_READY_FILE = 'keeper.json';
const HISTORY_MAX = 50;
const START_TIMEOUT_MS = 120_000;
const PROBE_TIMEOUT_MS = 1_000;
const ACTION_BACKOFF_MS = 1_000;
const HANDOVER_TIMEOUT_MS = 15_000;
const STANDBY_START_ATTEMPTS = 3;

type Phase = 'absent' | 'stopped' | 'starting' | 'primary' | 'standby' | 'stopping';

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The role /status reports, in the platform's words. */
export type MemberRole = 'primary' | 'standby' | 'candidate' | 'fenced' | 'stopped' | 'initializing';

export interface KeeperStatus {
  readonly member: string;
  readonly zone: string;
  readonly role: MemberRole;
  readonly term: number;
  readonly holder: string | null;
  /** Milliseconds left on this member's lease (primary), or null. */
  readonly leaseValidForMs: number | null;
  readonly syncStandby: string | null;
  readonly postgres: { readonly state: Phase; readonly pid: number | null; readonly port: number; readonly upstream: string | null };
  readonly replication: {
    readonly replicas: readonly { readonly name: string; readonly state: string; readonly syncState: string; readonly lagBytes: number | null }[];
    readonly receiveLsn: string | null;
    readonly replayLsn: string | null;
    readonly lagBytes: number | null;
    readonly replayDelaySeconds: number | null;
  };
  readonly lastDecision: { readonly action: string; readonly reason: string; readonly at: string } | null;
  readonly lastError: { readonly action: string; readonly message: string; readonly at: string } | null;
  readonly history: readonly FailoverEvent[];
  /** When each peer was last heard from (an answer or a request). */
  readonly peers: readonly { readonly name: string; readonly lastContactMsAgo: number | null }[];
}

export interface KeeperOptions {
  readonly config: KeeperConfig;
  readonly token: Secret;
  readonly logger: Logger;
}

const switchoverBody = z.object({ to: z.string().max(63).optional() }).strict();
const handoverBody = z.object({ term: z.number().int().min(1), lsn: z.string().max(40), from: z.string().max(63) }).strict();

export class Keeper {
  readonly #c: KeeperConfig;
  readonly #token: Secret;
  readonly #log: Logger;
  readonly #runDir: string;
  readonly #stateFile: StateFile<KeeperState>;
  readonly #renewEveryMs: number;
  #bin = '';
  #runAs: RunAs = null;
  #secrets: ClusterSecrets | null = null;
  #state!: KeeperState;
  #promiseUntil = 0;
  #leaseUntil: number | null = null;
  #phase: Phase = 'absent';
  #pgRole: 'primary' | 'standby' | null = null;
  #postmaster: Postmaster;
  #client: LocalClient | null = null;
  #server: ServerObservation | null = null;
  #probeFailures = 0;
  #upstream: string | null = null;
  #syncMissingSince: number | null = null;
  #startingSince: number | null = null;
  #syncClaimGranted = false;
  #electionNotBefore = 0;
  #election: ElectionWon | null = null;
  #releaseSeen: { term: number; holder: string } | null = null;
  #switchover = false;
  #acting: string | null = null;
  #ticking = false;
  #pokeQueued = false;
  readonly #backoff = new Map<string, number>();
  #lastDecision: { action: string; reason: string; at: string } | null = null;
  #lastSkeleton = '';
  #lastError: { action: string; message: string; at: string } | null = null;
  readonly #peerAnswer = new Map<string, number>();
  #timers: NodeJS.Timeout[] = [];
  #leaseTimer: NodeJS.Timeout | null = null;
  #api: ApiServer | null = null;
  #closing = false;
  #fencing: Promise<void> | null = null;
  #standbyStartFailures = 0;
  readonly #store: BackupStore | null;
  #backingUp: Promise<BackupInfo> | null = null;
  #lastBackupError: string | null = null;

  constructor(opts: KeeperOptions) {
    this.#c = opts.config;
    this.#token = opts.token;
    this.#log = opts.logger;
    this.#runDir = path.join(this.#c.stateDir, 'run');
    this.#stateFile = new StateFile(path.join(this.#c.stateDir, STATE_FILE));
    this.#renewEveryMs = Math.max(10, Math.floor(this.#c.leaseMs / 3));
    this.#postmaster = new Postmaster({ bin: '', dataDir: this.#c.dataDir, runAs: null, logFile: path.join(this.#c.stateDir, 'postgres.log') });
    this.#store = this.#c.backupDir === null ? null : new DirectoryBackupStore(this.#c.backupDir);
  }

  get port(): number {
    return this.#api?.port ?? 0;
  }

  // ---------------------------------------------------------------------------------------
  // start and stop

  async start(): Promise<void> {
    const c = this.#c;
    const bin = c.pgBin ?? findPostgresBin();
    if (bin === null) throw new UnavailableError('PostgreSQL binaries not found under /usr/lib/postgresql/<version>/bin; install postgresql or give --pg-bin');
    this.#bin = bin;
    this.#runAs = await resolveRunAs(c.runAs ?? null);
    await ownedDir(c.stateDir, this.#runAs, 0o700);
    await ownedDir(this.#runDir, this.#runAs, 0o700);
    // The parent of a --data-dir elsewhere is created if missing, never re-permissioned.
    await ensureDir(path.dirname(c.dataDir), this.#runAs, 0o700);
    await this.#checkReachable([this.#runDir, path.dirname(c.dataDir)]);
    if (c.backupDir !== null) {
      // archive_command runs as PostgreSQL's user and writes here.
      await ensureDir(c.backupDir, this.#runAs, 0o700);
      await this.#checkReachable([c.backupDir]);
    }
    this.#postmaster = new Postmaster({ bin, dataDir: c.dataDir, runAs: this.#runAs, logFile: path.join(c.stateDir, 'postgres.log') });
    this.#postmaster.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.#onPostmasterExit(code, signal));

    this.#state = await loadKeeperState(path.join(c.stateDir, STATE_FILE));
    // A restart forgets promises: assume a full lease is still promised, and no lease held.
    this.#promiseUntil = now() + c.leaseMs;
    this.#leaseUntil = this.#holds() ? 0 : null;

    const orphan = await stopOrphan(c.dataDir);
    if (orphan !== null) this.#log.warn({ pid: orphan }, 'stopped a postmaster left running without its keeper');
    this.#phase = (await isDataDir(c.dataDir)) ? 'stopped' : 'absent';

    const creates = c.initialPrimary === c.name && this.#state.record.term === 0;
    this.#secrets = await loadSecrets(c.secretsDir, creates);
    await writeOwnedFile(this.#passfile(), renderPassfile(this.#secrets, SUPERUSER, REPLICATION_USER), this.#runAs, 0o600);
    this.#client = new LocalClient({ socketDir: this.#runDir, port: c.pgPort, user: SUPERUSER, password: this.#secrets.superuser, database: 'postgres' });

    this.#api = await startApiServer({ host: c.host, port: c.port, routes: this.#routes(), token: this.#token, logger: this.#log });
    const hostPart = this.#api.host.includes(':') ? `[${this.#api.host}]` : this.#api.host;
    await writeFile(
      path.join(c.stateDir, KEEPER_READY_FILE),
      `${JSON.stringify({ pid: process.pid, member: c.name, url: `http://${hostPart}:${this.#api.port}`, port: this.#api.port, pgPort: c.pgPort })}\n`,
      { mode: 0o600 },
    );
    this.#log.info({ member: c.name, zone: c.zone, port: this.#api.port, pgPort: c.pgPort, term: this.#state.record.term, holder: this.#state.record.holder, peers: c.peers.map((p) => p.name) }, 'keeper started');

    this.#timers.push(setInterval(() => void this.#tick(), c.tickMs));
    this.#timers.push(setInterval(() => void this.#renew(), this.#renewEveryMs));
    // The schedule is checked often (a directory listing) so that a new primary takes its
    // due backup within seconds; how often backups are taken is the interval's business.
    if (this.#store !== null) this.#timers.push(setInterval(() => void this.#backupIfDue(), Math.min(10_000, Math.max(1_000, Math.floor(c.backupIntervalMs / 10)))));
    void this.#renew();
    this.#poke();
  }

  /** PostgreSQL's user must reach its directories (every parent traversable): say so at once if not. */
  async #checkReachable(dirs: readonly string[]): Promise<void> {
    if (this.#runAs === null) return;
    for (const dir of dirs) {
      const { file, args } = asUser(this.#runAs, 'test', ['-w', dir, '-a', '-x', dir]);
      try {
        await runTool({ file, args, timeoutMs: 10_000 });
      } catch {
        throw new UnavailableError(`PostgreSQL's user (uid ${this.#runAs.uid}) cannot write to ${dir}; make every directory above it traversable (chmod o+x) or choose another --state-dir`);
      }
    }
  }

  /** Stops the keeper. As primary it stops PostgreSQL cleanly and hands its term back. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    if (this.#leaseTimer) clearTimeout(this.#leaseTimer);
    const wasPrimary = this.#leaseValid() && this.#phase === 'primary';
    await this.#postmaster.stop('fast', 30_000).catch(() => undefined);
    if (wasPrimary && this.#c.members.length > 1) await this.#release().catch(() => undefined);
    this.#client?.close();
    await this.#api?.close();
    await rm(path.join(this.#c.stateDir, KEEPER_READY_FILE), { force: true });
  }

  // ---------------------------------------------------------------------------------------
  // the record and the lease

  #holds(): boolean {
    return this.#state.record.holder === this.#c.name && this.#state.wonTerm === this.#state.record.term;
  }

  #released(): boolean {
    return this.#holds() && this.#state.releasedTerm === this.#state.record.term;
  }

  #leaseValid(): boolean {
    return this.#holds() && !this.#released() && this.#leaseUntil !== null && now() < this.#leaseUntil;
  }

  #voter(): VoterState {
    return { ...this.#state.record, promiseUntilMs: this.#promiseUntil };
  }

  #actingPrimary(): boolean {
    return this.#postmaster.running && (this.#pgRole === 'primary' || this.#phase === 'primary');
  }

  #candidacyTerm(): number | null {
    const cand = this.#state.candidacy;
    return cand !== null && cand.term > this.#state.record.term ? cand.term : null;
  }

  #votingState(): VoterState {
    return memberVotingState(this.#voter(), this.#c.name, this.#leaseUntil, this.#actingPrimary(), this.#candidacyTerm());
  }

  #voterPeers(): readonly PeerConfig[] {
    return this.#c.peers;
  }

  #parties(): number {
    return 1 + this.#voterPeers().length;
  }

  async #persist(): Promise<void> {
    await this.#stateFile.save(this.#state);
  }

  /**
   * A term this member holds with PostgreSQL found primary but no entry in the history (the
   * keeper died between pg_promote and writing it down, say) is recorded when it is seen, so
   * that every term with a primary is in the failover history.
   */
  #recordFoundPrimary(): void {
    const term = this.#state.record.term;
    if (this.#phase !== 'primary' || !this.#holds() || this.#state.history.some((h) => h.term === term && h.primary === this.#c.name)) return;
    this.#pushHistory({ at: new Date().toISOString(), term, primary: this.#c.name, reason: `${this.#c.name} found PostgreSQL primary in term ${term}` });
    void this.#persist().catch((err: unknown) => this.#log.warn({ err }, 'could not save the failover history'));
  }

  #pushHistory(e: FailoverEvent): void {
    const last = this.#state.history.at(-1);
    if (last !== undefined && last.term === e.term && last.primary === e.primary) return;
    this.#state = { ...this.#state, history: [...this.#state.history, e].slice(-HISTORY_MAX) };
  }

  /** Adopts a newer term that a peer granted to someone else (from a refusal). */
  #learn(reply: PeerReply): void {
    if (!('answer' in reply)) return;
    this.#peerAnswer.set(reply.peer, Date.now());
    if (reply.answer.granted) return;
    const theirs: VoterState = { ...reply.answer.record, promiseUntilMs: 0 };
    const learned = learnFromRefusal(this.#voter(), this.#c.name, theirs, now(), this.#c.leaseMs);
    if (learned === null) return;
    void this.#adopt(learned, `${this.#c.name} learned from ${reply.peer} that ${learned.holder ?? '?'} holds term ${learned.term}`);
  }

  /** Takes `next` as this member's record; the returned promise resolves once it is on disk. */
  #adopt(next: VoterState, why: string): Promise<void> {
    const previousHolder = this.#state.record.holder;
    const cand = this.#state.candidacy;
    this.#state = {
      ...this.#state,
      record: { term: next.term, holder: next.holder, syncStandby: next.syncStandby },
      candidacy: cand !== null && cand.term <= next.term ? null : cand,
    };
    this.#promiseUntil = next.promiseUntilMs;
    if (next.holder !== this.#c.name) this.#leaseUntil = null;
    if (next.holder !== null && next.holder !== previousHolder) {
      this.#pushHistory({ at: new Date().toISOString(), term: next.term, primary: next.holder, reason: why });
      this.#log.info({ term: next.term, holder: next.holder, reason: why }, 'new primary');
    }
    this.#poke();
    return this.#persist();
  }

  #extendLease(term: number, sentAt: number, claim: string | null): void {
    if (!this.#holds() || this.#released() || this.#state.record.term !== term) return;
    const until = this.#voterPeers().length === 0 ? Number.POSITIVE_INFINITY : sentAt + this.#c.leaseMs - this.#c.leaseMarginMs;
    const was = this.#leaseUntil ?? 0;
    this.#leaseUntil = Math.max(was, until);
    if (claim === this.#state.syncClaim) {
      this.#syncClaimGranted = true;
      if (this.#state.record.syncStandby !== claim) {
        this.#state = { ...this.#state, record: { ...this.#state.record, syncStandby: claim } };
        void this.#persist();
      }
    }
    if (was <= now()) this.#poke();
    this.#armLeaseTimer();
  }

  #armLeaseTimer(): void {
    if (this.#leaseTimer) clearTimeout(this.#leaseTimer);
    this.#leaseTimer = null;
    const until = this.#leaseUntil;
    if (until === null || !Number.isFinite(until) || this.#closing) return;
    this.#leaseTimer = setTimeout(() => this.#onLeaseEnd(), Math.max(0, until - now()) + 1);
  }

  /** The lease ran out: fence at once if `decide` says so, without waiting for a tick or an action. */
  #onLeaseEnd(): void {
    if (this.#leaseValid() || !this.#actingPrimary()) return;
    const d = decide(this.#observation());
    if (d.action.kind === 'fence') {
      this.#note(d);
      void this.#fence(d.reason);
    }
    this.#poke();
  }

  /** Renews the lease with every peer; one grant makes a majority of three. */
  async #renew(): Promise<void> {
    if (this.#closing) return;
    const holds = this.#holds() && !this.#released();
    if (this.#startingSince !== null && (this.#leaseUntil === null || now() >= this.#leaseUntil) && now() - this.#startingSince >= this.#c.startGraceMs) {
      // It let its lease run out so that the standby could take over; nobody did: try again.
      this.#startingSince = null;
    }
    if (!shouldRenew({ holds, startingSinceMs: this.#switchover ? null : this.#startingSince, nowMs: now(), startGraceMs: this.#c.startGraceMs })) return;
    const term = this.#state.record.term;
    const claim = this.#state.syncClaim;
    const sentAt = now();
    const peers = this.#voterPeers();
    if (peers.length === 0) {
      this.#extendLease(term, sentAt, claim);
      return;
    }
    const req: LeaseRequest = { kind: 'renew', term, holder: this.#c.name, leaseMs: this.#c.leaseMs, syncStandby: claim };
    let grants = 0;
    await Promise.all(
      peers.map(async (p) => {
        const reply = await askPeer(p, req, this.#token, this.#renewEveryMs);
        if (this.#closing) return;
        this.#learn(reply);
        if ('answer' in reply && reply.answer.granted) {
          grants += 1;
          if (1 + grants >= majority(this.#parties())) this.#extendLease(term, sentAt, claim);
        }
      }),
    );
  }

  /** Hands the term back (switchover, clean stop): never renewed again, peers' promises end now. */
  async #release(): Promise<void> {
    const term = this.#state.record.term;
    this.#state = { ...this.#state, releasedTerm: term };
    this.#leaseUntil = now();
    this.#promiseUntil = Math.min(this.#promiseUntil, now());
    await this.#persist();
    const req: LeaseRequest = { kind: 'release', term, holder: this.#c.name, leaseMs: this.#c.leaseMs, syncStandby: this.#state.syncClaim };
    // Parties without data (the arbiter) first: the standby elects itself as soon as it hears
    // of the release, and its election should find the arbiter released too.
    const peers = this.#voterPeers();
    await Promise.all(peers.filter((p) => p.postgres === null).map((p) => askPeer(p, req, this.#token, 1_000)));
    await Promise.all(peers.filter((p) => p.postgres !== null).map((p) => askPeer(p, req, this.#token, 1_000)));
    this.#log.info({ term }, 'released the term');
  }

  async #elect(term: number): Promise<void> {
    const c = this.#c;
    const req: LeaseRequest = { kind: 'elect', term, holder: c.name, leaseMs: c.leaseMs, syncStandby: null };
    const self = vote(this.#votingState(), req, now());
    if (!self.granted) {
      this.#electionNotBefore = now() + c.leaseMs / 4;
      this.#log.info({ term, reason: self.reason }, 'not asking for a term');
      return;
    }
    const cand = this.#state.candidacy;
    const previousHolder = cand !== null && cand.term === term ? cand.previousHolder : this.#state.record.holder;
    // The candidacy is on disk before anyone is asked, so it survives a crash and is asked
    // for again: a term granted while this member could not hear it is never left unclaimed.
    if (cand?.term !== term || cand.previousHolder !== previousHolder) {
      this.#state = { ...this.#state, candidacy: { term, previousHolder } };
      await this.#persist();
    }
    const sentAt = now();
    const peers = this.#voterPeers();
    // Counted as they come: a majority wins at once, without waiting for a peer that is gone
    // silently (a dark zone answers nothing until the timeout).
    const replies: PeerReply[] = [];
    const grantedBy: string[] = [];
    const needed = majority(this.#parties()) - 1;
    await new Promise<void>((resolve) => {
      if (peers.length === 0 || needed <= 0) resolve();
      for (const p of peers) {
        void askPeer(p, req, this.#token, Math.max(200, Math.floor(c.leaseMs / 2))).then((r) => {
          replies.push(r);
          this.#learn(r);
          if ('answer' in r && r.answer.granted) grantedBy.push(r.peer);
          if (grantedBy.length >= needed || replies.length === peers.length) resolve();
        });
      }
    });
    if (this.#state.candidacy?.term !== term) return;
    if (1 + grantedBy.length >= majority(this.#parties())) {
      const released = this.#releaseSeen !== null && this.#releaseSeen.holder === previousHolder && this.#releaseSeen.term === term - 1;
      this.#state = {
        ...this.#state,
        record: { term, holder: c.name, syncStandby: null },
        wonTerm: term,
        candidacy: null,
        syncClaim: null,
      };
      this.#promiseUntil = now() + c.leaseMs;
      this.#syncClaimGranted = true;
      this.#election = { term, previousHolder, grantedBy: [...grantedBy], previousReleased: released };
      this.#leaseUntil = peers.length === 0 ? Number.POSITIVE_INFINITY : sentAt + c.leaseMs - c.leaseMarginMs;
      await this.#persist();
      this.#armLeaseTimer();
      this.#log.info({ term, grantedBy: [...grantedBy] }, 'won the election');
      void this.#renew();
      return;
    }
    const refusals = replies.filter((r) => 'answer' in r && !r.answer.granted);
    if (refusals.length === peers.length) {
      // Everyone refused: nobody granted this term, so the candidacy may be given up.
      this.#state = { ...this.#state, candidacy: null };
      await this.#persist();
      this.#electionNotBefore = now() + c.leaseMs / 4;
      this.#log.info({ term, refusals: refusals.map((r) => ('answer' in r ? `${r.peer}: ${r.answer.reason}` : r.peer)) }, 'election refused');
    } else {
      this.#electionNotBefore = now() + this.#renewEveryMs / 2;
    }
  }

  // ---------------------------------------------------------------------------------------
  // the tick: observe, decide, act

  #poke(): void {
    if (this.#pokeQueued || this.#closing) return;
    this.#pokeQueued = true;
    setImmediate(() => {
      this.#pokeQueued = false;
      void this.#tick();
    });
  }

  async #probe(): Promise<void> {
    if (!this.#postmaster.running) {
      if (this.#phase !== 'starting' && this.#phase !== 'stopping') this.#phase = (await isDataDir(this.#c.dataDir)) ? 'stopped' : 'absent';
      this.#server = null;
      return;
    }
    if (this.#phase === 'starting' || this.#phase === 'stopping' || this.#client === null) return;
    try {
      this.#server = await observeServer(this.#client, PROBE_TIMEOUT_MS);
      this.#probeFailures = 0;
      this.#phase = this.#server.inRecovery ? 'standby' : 'primary';
    } catch (err) {
      this.#probeFailures += 1;
      if (this.#probeFailures === 3) this.#log.warn({ err }, 'PostgreSQL does not answer');
    }
  }

  #updateClocks(): void {
    const t = now();
    const healthyPrimary = this.#phase === 'primary' && this.#probeFailures < 3;
    // Only time spent bringing existing data up as primary counts (not initdb, not a switchover).
    if (!this.#holds() || healthyPrimary || this.#switchover || this.#phase === 'absent') this.#startingSince = null;
    else this.#startingSince ??= t;
    const names = this.#state.syncNames;
    const sync = names !== null && this.#phase === 'primary' && (this.#server?.replicas ?? []).some((r) => r.name === names && r.state === 'streaming' && r.syncState === 'sync');
    if (names === null || sync) this.#syncMissingSince = null;
    else this.#syncMissingSince ??= t;
  }

  #observation(): MemberObservation {
    const phase = this.#phase;
    const postgres: PostgresState = phase === 'primary' || phase === 'standby' || phase === 'absent' ? phase : phase === 'starting' ? (this.#pgRole ?? 'stopped') : 'stopped';
    return {
      nowMs: now(),
      self: this.#c.name,
      members: this.#c.members,
      initialPrimary: this.#c.initialPrimary,
      voter: this.#voter(),
      leaseUntilMs: this.#holds() ? (this.#leaseUntil ?? 0) : null,
      switchover: this.#switchover,
      released: this.#released(),
      candidacyTerm: this.#candidacyTerm(),
      postgres,
      dataWasPrimary: this.#state.dataWasPrimary,
      upstream: this.#upstream,
      syncNames: this.#state.syncNames,
      syncClaim: this.#state.syncClaim,
      syncClaimGranted: this.#syncClaimGranted,
      replicas: this.#server?.replicas ?? [],
      syncMissingSinceMs: this.#syncMissingSince,
      syncGraceMs: this.#c.syncGraceMs,
      electionNotBeforeMs: this.#electionNotBefore,
      election: this.#election,
    };
  }

  /** Keeps the last decision; logs it when it is an action or a different kind of wait. */
  #note(d: Decision): void {
    this.#lastDecision = { action: d.action.kind, reason: d.reason, at: new Date().toISOString() };
    const skeleton = `${d.action.kind}:${d.reason.replace(/\d+/g, '#')}`;
    if (d.action.kind !== 'wait' || skeleton !== this.#lastSkeleton) {
      this.#log.info({ action: d.action.kind, term: this.#state.record.term, reason: d.reason }, 'decision');
    }
    this.#lastSkeleton = skeleton;
  }

  async #tick(): Promise<void> {
    if (this.#closing || this.#ticking || this.#acting !== null) return;
    this.#ticking = true;
    try {
      await this.#probe();
      this.#updateClocks();
      this.#recordFoundPrimary();
      if (this.#acting !== null || this.#phase === 'starting' || this.#phase === 'stopping') return;
      const d = decide(this.#observation());
      if (d.action.kind !== 'wait' && now() < (this.#backoff.get(d.action.kind) ?? 0)) return;
      this.#note(d);
      if (d.action.kind === 'wait') return;
      const action = d.action;
      this.#acting = action.kind;
      void this.#execute(action, d.reason).finally(() => {
        this.#acting = null;
        this.#poke();
      });
    } finally {
      this.#ticking = false;
    }
  }

  async #execute(a: Action, reason: string): Promise<void> {
    try {
      switch (a.kind) {
        case 'wait':
          return;
        case 'elect':
          return await this.#elect(a.term);
        case 'initdb':
          return await this.#initdb();
        case 'start_primary':
          return await this.#startPrimary(reason);
        case 'promote':
          return await this.#promote(reason);
        case 'fence':
          return await this.#fence(reason);
        case 'clone':
          return await this.#clone(a.from);
        case 'rewind':
          return await this.#rewind(a.from);
        case 'start_standby':
          return await this.#startStandby(a.upstream);
        case 'follow':
          return await this.#follow(a.upstream);
        case 'require_sync':
          return await this.#setSyncNames(a.standby);
        case 'drop_sync':
          return await this.#setSyncNames(null);
        case 'claim_sync':
          this.#state = { ...this.#state, syncClaim: a.standby };
          this.#syncClaimGranted = false;
          await this.#persist();
          void this.#renew();
          return;
        case 'unclaim_sync':
          this.#state = { ...this.#state, syncClaim: null, record: { ...this.#state.record, syncStandby: null } };
          this.#syncClaimGranted = false;
          await this.#persist();
          void this.#renew();
          return;
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#lastError = { action: a.kind, message, at: new Date().toISOString() };
      this.#backoff.set(a.kind, now() + ACTION_BACKOFF_MS);
      // Expected while a peer is away (the primary not up yet, say): a warning, retried.
      if (err instanceof UnavailableError) this.#log.warn({ err, action: a.kind }, 'action failed');
      else this.#log.error({ err, action: a.kind }, 'action failed');
    }
  }

  // ---------------------------------------------------------------------------------------
  // PostgreSQL

  #passfile(): string {
    return path.join(this.#runDir, 'pgpass');
  }

  #tool(name: string): string {
    return path.join(this.#bin, name);
  }

  async #runPg(name: string, args: readonly string[], timeoutMs: number, env: Readonly<Record<string, string>> = {}): Promise<{ stdout: string; stderr: string }> {
    const { file, args: argv } = asUser(this.#runAs, this.#tool(name), args);
    return runTool({ file, args: argv, timeoutMs, env: { PGPASSFILE: this.#passfile(), PGCONNECT_TIMEOUT: '5', ...env } });
  }

  #peer(name: string): PeerConfig & { postgres: { host: string; port: number } } {
    const p = this.#c.peers.find((x) => x.name === name);
    if (p === undefined || p.postgres === null) throw new UnavailableError(`member ${JSON.stringify(name)} has no PostgreSQL address; give it as --peer ${name}=URL,HOST:PORT`);
    return { ...p, postgres: p.postgres };
  }

  #archiveCommands(): { archiveCommand: string; restoreCommand: string } | null {
    const dir = this.#c.backupDir;
    if (dir === null) return null;
    const walMain = path.join(path.dirname(fileURLToPath(import.meta.url)), 'wal-main.js');
    return {
      archiveCommand: commandLine([process.execPath, walMain, 'archive', '--store', dir, { placeholder: '%p' }, { placeholder: '%f' }], 'archive_command'),
      restoreCommand: commandLine([process.execPath, walMain, 'restore', '--store', dir, { placeholder: '%f' }, { placeholder: '%p' }], 'restore_command'),
    };
  }

  async #writeConfig(role: 'primary' | 'standby', upstream: string | null): Promise<void> {
    const c = this.#c;
    const up = upstream === null ? null : this.#peer(upstream).postgres;
    const conf = renderPostgresqlConf({
      member: c.name,
      listenAddresses: [c.pgListen],
      port: c.pgPort,
      socketDir: this.#runDir,
      maxConnections: c.maxConnections,
      sharedBuffers: c.sharedBuffers,
      walKeepSize: c.walKeepSize,
      fsync: !c.unsafeNoFsync,
      role,
      syncStandby: this.#state.syncNames,
      upstream: up,
      passfile: this.#passfile(),
      archive: this.#archiveCommands(),
    });
    await writeOwnedFile(path.join(c.dataDir, 'postgresql.conf'), conf, this.#runAs, 0o600);
    await writeOwnedFile(path.join(c.dataDir, 'pg_hba.conf'), renderPgHba({ member: c.name, allow: c.allow }), this.#runAs, 0o600);
    // ALTER SYSTEM and pg_rewind's copies must not override the rendered file.
    await writeOwnedFile(path.join(c.dataDir, 'postgresql.auto.conf'), '# Not used: the Lanes keeper renders postgresql.conf.\n', this.#runAs, 0o600);
  }

  async #signalFile(name: 'standby.signal' | 'recovery.signal', present: boolean): Promise<void> {
    const file = path.join(this.#c.dataDir, name);
    if (present) await writeOwnedFile(file, '', this.#runAs, 0o600);
    else await rm(file, { force: true });
  }

  async #logTail(lines = 3): Promise<string> {
    try {
      return (await readFile(path.join(this.#c.stateDir, 'postgres.log'), 'utf8')).trim().split('\n').slice(-lines).join(' | ');
    } catch {
      return '';
    }
  }

  /** Starts the postmaster and waits until it answers; returns whether it is in recovery. */
  async #startPostmaster(role: 'primary' | 'standby'): Promise<void> {
    const client = this.#client;
    if (client === null) throw new UnavailableError('keeper not started');
    this.#phase = 'starting';
    this.#pgRole = role;
    const pid = this.#postmaster.start();
    this.#log.info({ postmasterPid: pid, role }, 'postmaster started');
    const deadline = now() + START_TIMEOUT_MS;
    for (;;) {
      if (!this.#postmaster.running) {
        this.#phase = (await isDataDir(this.#c.dataDir)) ? 'stopped' : 'absent';
        throw new UnavailableError(`PostgreSQL exited while starting: ${await this.#logTail()}`);
      }
      try {
        const [row] = await client.query<{ r: boolean }>('select pg_is_in_recovery() as r', [], PROBE_TIMEOUT_MS);
        this.#phase = row?.r === true ? 'standby' : 'primary';
        return;
      } catch {
        /* not ready yet */
      }
      if (now() > deadline) {
        await this.#postmaster.stop('immediate', 5_000);
        throw new UnavailableError(`PostgreSQL did not accept connections within ${START_TIMEOUT_MS} ms: ${await this.#logTail()}`);
      }
      await sleep(50);
    }
  }

  #onPostmasterExit(code: number | null, signal: NodeJS.Signals | null): void {
    const expected = this.#phase === 'stopping';
    if (!expected && !this.#closing) this.#log.warn({ code, signal }, 'postmaster exited');
    if (this.#phase !== 'starting') this.#phase = 'stopped';
    this.#pgRole = null;
    this.#server = null;
    this.#upstream = null;
    this.#client?.close();
    this.#poke();
  }

  async #stopPostmaster(mode: 'fast' | 'immediate'): Promise<void> {
    if (!this.#postmaster.running) return;
    this.#phase = 'stopping';
    try {
      await this.#postmaster.stop(mode, mode === 'fast' ? 60_000 : 5_000);
    } finally {
      this.#phase = (await isDataDir(this.#c.dataDir)) ? 'stopped' : 'absent';
    }
  }

  async #initdb(): Promise<void> {
    const c = this.#c;
    const secrets = this.#secrets;
    if (secrets === null) throw new UnavailableError('keeper not started');
    await removeDir(c.dataDir);
    const pwfile = path.join(this.#runDir, 'initdb-password');
    await writeOwnedFile(pwfile, `${secrets.superuser.reveal()}\n`, this.#runAs, 0o600);
    try {
      await this.#runPg(
        'initdb',
        ['-D', c.dataDir, '-U', SUPERUSER, `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--data-checksums', ...(c.unsafeNoFsync ? ['--no-sync'] : [])],
        300_000,
      );
    } finally {
      await rm(pwfile, { force: true });
    }
    this.#state = { ...this.#state, dataWasPrimary: true, bootstrapped: false, syncNames: null, syncClaim: null };
    await this.#persist();
    await this.#writeConfig('primary', null);
    this.#phase = 'stopped';
    this.#log.info({ dataDir: c.dataDir }, 'created the cluster');
  }

  async #startPrimary(reason: string): Promise<void> {
    await this.#writeConfig('primary', null);
    await this.#signalFile('standby.signal', false);
    await this.#signalFile('recovery.signal', false);
    await this.#startPostmaster('primary');
    if (this.#phase !== 'primary') throw new UnavailableError('PostgreSQL started in recovery although it was to be the primary');
    this.#upstream = null;
    if (!this.#state.bootstrapped) await this.#createRoles();
    // A new term that began with PostgreSQL stopped (elected while its data was down) is a
    // failover too: in the history, like a promotion (#pushHistory skips a term already there).
    const term = this.#state.record.term;
    const created = this.#state.history.length === 0;
    const last = this.#state.history.at(-1);
    if (created || last?.term !== term || last.primary !== this.#c.name) {
      this.#pushHistory({ at: new Date().toISOString(), term, primary: this.#c.name, reason: created ? `${this.#c.name} created the cluster in term ${term}` : reason });
      await this.#persist();
    }
  }

  /** The replication user, the application user and database, with SCRAM verifiers (no plain passwords in SQL). */
  async #createRoles(): Promise<void> {
    const client = this.#client;
    const secrets = this.#secrets;
    if (client === null || secrets === null) throw new UnavailableError('keeper not started');
    const c = this.#c;
    const lit = (v: string): string => `'${v.replace(/'/g, "''")}'`;
    const ensureRole = async (role: string, attrs: string, password: Secret): Promise<void> => {
      const exists = await client.query('select 1 from pg_roles where rolname = $1', [role]);
      const verb = exists.length > 0 ? 'alter' : 'create';
      await client.query(`${verb} role ${quoteIdent(role)} with ${attrs} password ${lit(scramVerifier(password))}`);
    };
    await ensureRole(REPLICATION_USER, 'replication login', secrets.replication);
    await ensureRole(c.appUser, 'login', secrets.app);
    const db = await client.query('select 1 from pg_database where datname = $1', [c.database]);
    if (db.length === 0) await client.query(`create database ${quoteIdent(c.database)} owner ${quoteIdent(c.appUser)}`, [], 60_000);
    this.#state = { ...this.#state, bootstrapped: true };
    await this.#persist();
    this.#log.info({ database: c.database, user: c.appUser }, 'created the roles and the database');
  }

  async #promote(reason: string): Promise<void> {
    const client = this.#client;
    if (client === null) throw new UnavailableError('keeper not started');
    // On disk first: if this keeper dies mid-promotion, its data will be rewound before it follows anyone.
    this.#state = { ...this.#state, dataWasPrimary: true, syncNames: null, syncClaim: null };
    await this.#persist();
    this.#startingSince ??= now();
    // The history keeps when the promotion began: no write was acknowledged here before it.
    const startedAt = new Date();
    const [row] = await client.query<{ ok: boolean }>('select pg_promote(true, 60) as ok', [], 65_000);
    if (row?.ok !== true) throw new UnavailableError(`pg_promote did not finish: ${await this.#logTail()}`);
    // Promoted: in the history now, even if what follows fails (the tick would then find it primary).
    this.#pushHistory({ at: startedAt.toISOString(), term: this.#state.record.term, primary: this.#c.name, reason });
    await this.#persist();
    // pg_control shows the new timeline only after a checkpoint; pg_rewind reads it there, so
    // a former primary rewinding right after this promotion would otherwise go wrong.
    await client.query('checkpoint', [], 120_000);
    this.#pgRole = 'primary';
    this.#phase = 'primary';
    this.#upstream = null;
    await this.#writeConfig('primary', null);
    await client.query('select pg_reload_conf()');
    await this.#persist();
    this.#log.info({ term: this.#state.record.term, reason }, 'promoted');
  }

  async #fence(reason: string): Promise<void> {
    if (this.#fencing !== null) return this.#fencing;
    this.#fencing = (async () => {
      this.#log.warn({ term: this.#state.record.term, reason }, 'fencing: immediate shutdown of PostgreSQL');
      await this.#stopPostmaster('immediate');
    })().finally(() => {
      this.#fencing = null;
    });
    return this.#fencing;
  }

  async #clone(from: string): Promise<void> {
    const c = this.#c;
    const peer = this.#peer(from);
    const tmp = `${c.dataDir}.clone`;
    await removeDir(tmp);
    this.#log.info({ from }, 'copying the primary (pg_basebackup)');
    await this.#runPg(
      'pg_basebackup',
      ['-h', peer.postgres.host, '-p', String(peer.postgres.port), '-U', REPLICATION_USER, '-D', tmp, '-X', 'stream', '-c', 'fast', '-w', ...(c.unsafeNoFsync ? ['--no-sync'] : [])],
      6 * 3_600_000,
      { PGAPPNAME: `${c.name}-clone` },
    );
    await removeDir(c.dataDir);
    await rename(tmp, c.dataDir);
    this.#state = { ...this.#state, dataWasPrimary: false, bootstrapped: true, syncNames: null, syncClaim: null };
    await this.#persist();
    await this.#writeConfig('standby', from);
    this.#phase = 'stopped';
  }

  /**
   * pg_rewind reads the source's timeline from its pg_control, which shows a promotion only
   * after the checkpoint that follows it. A member that learns of a new term before the new
   * holder has finished promoting would otherwise find "the same timeline", skip the rewind
   * and keep WAL the new primary never had (it could then never stream). Until the source is
   * out of recovery with its checkpoint on its current timeline, this waits (retried).
   */
  async #sourcePromoted(from: string, peer: PeerConfig & { postgres: { host: string; port: number } }): Promise<void> {
    const secrets = this.#secrets;
    if (secrets === null) throw new UnavailableError('keeper not started');
    const client = new pg.Client({ host: peer.postgres.host, port: peer.postgres.port, user: SUPERUSER, password: secrets.superuser.reveal(), database: 'postgres', connectionTimeoutMillis: 5000, statement_timeout: 5000, application_name: 'lanes-keeper' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const r = await client.query<{ recovery: boolean; checkpoint: number; current: number | null }>(
        `select pg_is_in_recovery() as recovery, (select timeline_id from pg_control_checkpoint()) as checkpoint,
                case when pg_is_in_recovery() then null else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end as current`,
      );
      const row = r.rows[0];
      if (row === undefined || row.recovery) throw new UnavailableError(`${from} is not primary yet (still in recovery): waiting to rewind`);
      if (row.current !== null && row.checkpoint !== row.current) throw new UnavailableError(`${from} has not checkpointed its new timeline ${row.current} yet: waiting to rewind`);
    } catch (err) {
      if (err instanceof UnavailableError) throw err;
      throw new UnavailableError(`cannot check ${from}'s timeline before rewinding: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async #rewind(from: string): Promise<void> {
    const c = this.#c;
    const peer = this.#peer(from);
    await this.#sourcePromoted(from, peer);
    await this.#stopPostmaster('fast');
    const source = conninfo({ host: peer.postgres.host, port: peer.postgres.port, user: SUPERUSER, dbname: 'postgres', passfile: this.#passfile(), connect_timeout: 5 });
    this.#log.info({ from }, 'rewinding to the primary (pg_rewind)');
    try {
      const r = await this.#runPg('pg_rewind', ['-D', c.dataDir, `--source-server=${source}`, ...(c.unsafeNoFsync ? ['--no-sync'] : [])], 3_600_000);
      const said = `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => l.startsWith('pg_rewind:'));
      this.#log.info({ from, output: said.slice(-2).join(' | ') }, 'rewound');
    } catch (err) {
      // Divergence pg_rewind cannot repair (WAL gone): start afresh from a copy of the primary.
      this.#log.warn({ err, from }, 'pg_rewind failed; removing the data to copy the primary afresh');
      await removeDir(c.dataDir);
      this.#state = { ...this.#state, dataWasPrimary: false, syncNames: null, syncClaim: null };
      await this.#persist();
      this.#phase = 'absent';
      return;
    }
    this.#state = { ...this.#state, dataWasPrimary: false, syncNames: null, syncClaim: null };
    await this.#persist();
    await this.#writeConfig('standby', from);
  }

  async #startStandby(upstream: string | null): Promise<void> {
    await this.#writeConfig('standby', upstream);
    await this.#signalFile('recovery.signal', false);
    await this.#signalFile('standby.signal', true);
    try {
      await this.#startPostmaster('standby');
      this.#standbyStartFailures = 0;
    } catch (err) {
      this.#standbyStartFailures += 1;
      if (upstream !== null && this.#standbyStartFailures >= STANDBY_START_ATTEMPTS) {
        // Data that cannot even start as a standby of the primary is set aside (one generation
        // kept for an operator) and copied afresh from the primary, which holds everything.
        const aside = `${this.#c.dataDir}.broken`;
        this.#log.warn({ err, attempts: this.#standbyStartFailures, aside }, 'the standby does not start; setting its data aside to copy the primary afresh');
        await removeDir(aside);
        await rename(this.#c.dataDir, aside);
        this.#standbyStartFailures = 0;
        this.#phase = 'absent';
        return;
      }
      throw err;
    }
    this.#upstream = upstream;
  }

  async #follow(upstream: string): Promise<void> {
    await this.#writeConfig('standby', upstream);
    await this.#client?.query('select pg_reload_conf()');
    this.#upstream = upstream;
  }

  async #setSyncNames(standby: string | null): Promise<void> {
    const client = this.#client;
    if (client === null) throw new UnavailableError('keeper not started');
    this.#state = { ...this.#state, syncNames: standby };
    await this.#persist();
    await this.#writeConfig('primary', null);
    await client.query('select pg_reload_conf()');
    const want = standby === null ? '' : quoteIdent(standby);
    const deadline = now() + 5_000;
    for (;;) {
      const [row] = await client.query<{ v: string }>("select current_setting('synchronous_standby_names') as v");
      if (row?.v === want || row?.v === standby) return;
      if (now() > deadline) throw new UnavailableError(`synchronous_standby_names is still ${JSON.stringify(row?.v)} after a reload`);
      await sleep(20);
    }
  }

  // ---------------------------------------------------------------------------------------
  // backups

  #walMain(): string {
    return path.join(path.dirname(fileURLToPath(import.meta.url)), 'wal-main.js');
  }

  /** The schedule, level-triggered from the store: on the primary, when the newest backup is older than the interval. */
  async #backupIfDue(): Promise<void> {
    const store = this.#store;
    if (store === null || this.#backingUp !== null || !this.isPrimary()) return;
    try {
      const latest = (await store.listBackups()).at(-1);
      if (latest !== undefined && Date.now() - Date.parse(latest.finishedAt) < this.#c.backupIntervalMs) return;
      await this.backupNow();
    } catch (err) {
      this.#lastBackupError = err instanceof Error ? err.message : String(err);
      this.#log.warn({ err }, 'scheduled backup failed');
    }
  }

  /** Takes a base backup now (primary only), applies retention, and verifies it if configured. */
  backupNow(): Promise<BackupInfo> {
    const store = this.#store;
    if (store === null) return Promise.reject(new ConflictError(`${this.#c.name} has no backup store; start it with --backup-dir`));
    if (!this.isPrimary()) return Promise.reject(new ConflictError(`${this.#c.name} is not the primary; backups are taken on the primary (${this.#state.record.holder ?? 'none'})`));
    if (this.#backingUp !== null) return this.#backingUp;
    const run = async (): Promise<BackupInfo> => {
      const c = this.#c;
      const tools = { bin: this.#bin, runAs: this.#runAs };
      this.#log.info({}, 'backup started');
      let info = await takeBaseBackup({ store, tools, socketDir: this.#runDir, port: c.pgPort, passfile: this.#passfile(), workDir: path.join(c.stateDir, 'backups-work'), member: c.name, fsync: !c.unsafeNoFsync });
      this.#log.info({ backup: info.id, sizeBytes: info.sizeBytes, stopLsn: info.stopLsn }, 'backup finished');
      const plan = planRetention(await store.listBackups(), await store.listWal(), Date.now(), c.backupRetentionMs);
      for (const id of plan.deleteBackups) await store.deleteBackup(id);
      for (const name of plan.deleteWal) await store.deleteWal(name);
      if (plan.deleteBackups.length > 0 || plan.deleteWal.length > 0) this.#log.info({ backups: plan.deleteBackups, walFiles: plan.deleteWal.length }, 'retention removed old backups and WAL');
      if (c.verifyBackups && this.#secrets !== null) {
        info = await verifyBackup({
          store,
          tools,
          id: info.id,
          scratchDir: path.join(c.stateDir, 'verify'),
          port: await freeLocalPort(),
          superuserPassword: this.#secrets.superuser,
          restoreCommand: restoreCommandFor(store instanceof DirectoryBackupStore ? store.root : '', this.#walMain()),
          retentionMs: c.backupRetentionMs,
        });
        if (info.verified?.ok === true) this.#log.info({ backup: info.id, message: info.verified.message }, 'backup verified');
        else this.#log.error({ backup: info.id, message: info.verified?.message }, 'backup failed verification');
      }
      this.#lastBackupError = null;
      return info;
    };
    this.#backingUp = run().finally(() => {
      this.#backingUp = null;
    });
    return this.#backingUp;
  }

  async #listBackups(): Promise<Reply> {
    const store = this.#store;
    if (store === null) throw new ConflictError(`${this.#c.name} has no backup store; start it with --backup-dir`);
    const backups = await store.listBackups();
    return { status: 200, json: { backups, retentionMs: this.#c.backupRetentionMs, intervalMs: this.#c.backupIntervalMs, lastError: this.#lastBackupError } };
  }

  // ---------------------------------------------------------------------------------------
  // switchover

  /** The primary's half: stop cleanly, let the standby replay everything, hand the term over. */
  async #switchoverTo(body: unknown): Promise<Reply> {
    const parsed = switchoverBody.safeParse(body ?? {});
    if (!parsed.success) throw new InputError(`switchover: ${parsed.error.issues[0]?.message ?? 'invalid body'}; send {} or {"to": "<member>"}`, 'body');
    const c = this.#c;
    const term = this.#state.record.term;
    if (!this.#leaseValid() || this.#phase !== 'primary') {
      throw new ConflictError(`${c.name} is not the primary (term ${term} is held by ${this.#state.record.holder ?? 'nobody'}); ask the primary for a switchover`);
    }
    if (this.#switchover) throw new ConflictError('a switchover is already in progress');
    const standby = this.#state.syncClaim;
    const replica = (this.#server?.replicas ?? []).find((r) => r.name === standby);
    if (standby === null || !this.#syncClaimGranted || replica?.syncState !== 'sync') {
      throw new ConflictError(`${c.name} has no synchronous standby to hand over to${standby === null ? '' : ` (${standby} is ${replica?.syncState ?? 'not connected'})`}; wait until one is in sync`);
    }
    const to = parsed.data.to;
    if (to !== undefined && to !== standby) throw new ConflictError(`switchover to ${JSON.stringify(to)}: only the synchronous standby ${standby} can take over without losing writes`);
    const peer = this.#peer(standby);
    this.#switchover = true;
    let released = false;
    try {
      this.#log.info({ to: standby, term }, 'switchover: stopping PostgreSQL cleanly');
      await this.#stopPostmaster('fast');
      const control = parseControlData((await this.#runPg('pg_controldata', ['-D', c.dataDir], 30_000)).stdout);
      if (control.state !== 'shut down' || control.checkpointLsn === null) throw new UnavailableError(`PostgreSQL did not shut down cleanly (${control.state ?? 'unknown state'})`);
      const res = await fetch(`${peer.url}/handover`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#token.reveal()}` },
        body: JSON.stringify({ term, lsn: control.checkpointLsn, from: c.name }),
        signal: AbortSignal.timeout(HANDOVER_TIMEOUT_MS),
      }).catch((err: unknown) => {
        throw new UnavailableError(`${standby} did not confirm the handover: ${err instanceof Error ? err.message : String(err)}`);
      });
      if (res.status !== 200) throw new UnavailableError(`${standby} refused the handover: ${(await res.text()).slice(0, 300)}`);
      await this.#release();
      released = true;
      const deadline = now() + HANDOVER_TIMEOUT_MS;
      while (!(this.#state.record.term > term && this.#state.record.holder === standby)) {
        if (now() > deadline) throw new UnavailableError(`${standby} did not take term ${term + 1} within ${HANDOVER_TIMEOUT_MS} ms; ${c.name} asks for a new term`);
        await sleep(20);
      }
      const reason = `switched over from ${c.name} to ${standby}: ${standby} replayed everything up to ${control.checkpointLsn} and took term ${this.#state.record.term}`;
      this.#log.info({ to: standby, term: this.#state.record.term, reason }, 'switched over');
      return { status: 200, json: { primary: standby, term: this.#state.record.term, reason } };
    } catch (err) {
      this.#log.error({ err, released }, 'switchover failed');
      throw err;
    } finally {
      this.#switchover = false;
      this.#poke();
    }
  }

  /** The standby's half: confirm that everything up to the primary's shutdown checkpoint is replayed. */
  async #handover(body: unknown): Promise<Reply> {
    const parsed = handoverBody.safeParse(body);
    if (!parsed.success) throw new InputError(`handover: ${parsed.error.issues[0]?.message ?? 'invalid body'}`, 'body');
    const { term, lsn, from } = parsed.data;
    const rec = this.#state.record;
    if (rec.term !== term || rec.holder !== from) throw new ConflictError(`handover from ${from} in term ${term}: this member knows term ${rec.term} of ${rec.holder ?? 'nobody'}`);
    if (rec.syncStandby !== this.#c.name) throw new ConflictError(`${this.#c.name} is not the synchronous standby of term ${term}`);
    const target = parseLsn(lsn);
    if (target === null) throw new InputError(`handover: ${JSON.stringify(lsn)} is not an LSN`, 'lsn');
    const client = this.#client;
    if (client === null || this.#phase !== 'standby') throw new ConflictError(`${this.#c.name} is not running as a standby`);
    const deadline = now() + HANDOVER_TIMEOUT_MS - 2_000;
    let replayed: string | null = null;
    for (;;) {
      const [row] = await client.query<{ lsn: string | null }>('select pg_last_wal_replay_lsn()::text as lsn', [], PROBE_TIMEOUT_MS);
      replayed = row?.lsn ?? null;
      const at = parseLsn(replayed);
      if (at !== null && at > target) break;
      if (now() > deadline) throw new UnavailableError(`${this.#c.name} replayed up to ${replayed ?? 'nothing'}, not past ${lsn}`);
      await sleep(20);
    }
    this.#releaseSeen = { term, holder: from };
    return { status: 200, json: { member: this.#c.name, replayLsn: replayed } };
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  async #onLease(body: unknown): Promise<Reply> {
    const req = parseLeaseRequest(body);
    this.#peerAnswer.set(req.holder, Date.now());
    const v = vote(this.#votingState(), req, now());
    if (v.granted && v.state.holder !== this.#c.name) {
      const before = this.#state.record;
      if (req.kind === 'release') this.#releaseSeen = { term: req.term, holder: req.holder };
      const changed = before.term !== v.state.term || before.holder !== v.state.holder || before.syncStandby !== v.state.syncStandby;
      // A grant that changes the record is on disk before it is answered.
      if (changed) await this.#adopt(v.state, `${this.#c.name} granted term ${v.state.term} to ${v.state.holder ?? '?'}`);
      else this.#promiseUntil = v.state.promiseUntilMs;
    }
    return { status: 200, json: { granted: v.granted, reason: v.reason, record: recordOf(this.#state.record) } };
  }

  status(): KeeperStatus {
    const s = this.#server;
    const rec = this.#state.record;
    let role: MemberRole;
    if (this.#leaseValid() && this.#phase === 'primary') role = 'primary';
    else if (this.#phase === 'standby' || (this.#phase === 'starting' && this.#pgRole === 'standby')) role = 'standby';
    else if (this.#candidacyTerm() !== null) role = 'candidate';
    else if (this.#holds()) role = this.#phase === 'absent' ? 'initializing' : 'fenced';
    else role = this.#phase === 'absent' ? 'initializing' : 'stopped';
    const standby = s !== null && s.inRecovery;
    const receive = standby ? parseLsn(s.receiveLsn) : null;
    const replay = standby ? parseLsn(s.replayLsn) : null;
    return {
      member: this.#c.name,
      zone: this.#c.zone,
      role,
      term: rec.term,
      holder: rec.holder,
      leaseValidForMs: this.#leaseValid() && this.#leaseUntil !== null ? (Number.isFinite(this.#leaseUntil) ? Math.round(this.#leaseUntil - now()) : null) : null,
      syncStandby: this.#holds() ? this.#state.syncClaim : rec.syncStandby,
      postgres: { state: this.#phase, pid: this.#postmaster.pid, port: this.#c.pgPort, upstream: this.#upstream },
      replication: {
        replicas: s?.replicas ?? [],
        receiveLsn: standby ? s.receiveLsn : null,
        replayLsn: standby ? s.replayLsn : null,
        lagBytes: receive !== null && replay !== null ? Number(receive > replay ? receive - replay : 0n) : null,
        replayDelaySeconds: standby ? s.replayDelaySeconds : null,
      },
      lastDecision: this.#lastDecision,
      lastError: this.#lastError,
      history: this.#state.history,
      peers: this.#c.peers.map((p) => {
        const at = this.#peerAnswer.get(p.name);
        return { name: p.name, lastContactMsAgo: at === undefined ? null : Date.now() - at };
      }),
    };
  }

  /** InterSystems' mirror status contract, for a load balancer's primary check. */
  isPrimary(): boolean {
    return this.#leaseValid() && this.#phase === 'primary' && !this.#switchover && this.#probeFailures < 3 && this.#postmaster.running;
  }

  #routes(): Route[] {
    return [
      { method: 'GET', path: '/mirrorstatus', public: true, handle: () => (this.isPrimary() ? { status: 200, text: 'SUCCESS' } : { status: 503, text: 'FAILED' }) },
      { method: 'GET', path: '/status', handle: () => ({ status: 200, json: this.status() }) },
      { method: 'POST', path: '/lease', handle: (body) => this.#onLease(body) },
      { method: 'POST', path: '/switchover', handle: (body) => this.#switchoverTo(body) },
      { method: 'POST', path: '/handover', handle: (body) => this.#handover(body) },
      { method: 'POST', path: '/backup', handle: async () => ({ status: 200, json: await this.backupNow() }) },
      { method: 'GET', path: '/backups', handle: () => this.#listBackups() },
    ];
  }
}

/** A TCP port free on loopback a moment ago (for the scratch server of a verification). */
function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

/** The data directory exists and holds a cluster (for tests and tools). */
export function hasCluster(dataDir: string): boolean {
  return existsSync(path.join(dataDir, 'PG_VERSION'));
}
