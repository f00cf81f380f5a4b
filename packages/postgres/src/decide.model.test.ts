/**
 * Property tests of the failover protocol: a discrete-time model of two members and an
 * arbiter that runs the real `vote`, `decide` and `shouldRenew` (and nothing else of the
 * keeper), with delayed and dropped messages, crashes (kill -9 of a keeper with its
 * postmaster), partitions, switchovers and a client writing to whoever runs as primary.
 * fast-check generates the schedules; after every 25 ms step the model checks:
 *
 * - never two members holding valid leases at the same time;
 * - every acknowledged write is in the data of every member acting as primary with a
 *   valid lease (so a promotion never loses one);
 * - once everything is healed and up again, one primary and one synchronous standby.
 *
 * The model's PostgreSQL: a primary acknowledges a write once its synchronous standby
 * (if `synchronous_standby_names` names one) streams it; a fenced or killed primary never
 * acknowledges the writes still waiting; a standby streams a copy of its upstream's data.
 * All parties share one clock (the lease margin covers drift in the real system).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decide,
  INITIAL_VOTER_STATE,
  leaseEnd,
  learnFromRefusal,
  majority,
  memberVotingState,
  shouldRenew,
  vote,
  type Action,
  type ElectionWon,
  type LeaseRequest,
  type PostgresState,
  type ReplicaObservation,
  type VoterState,
} from './decide.js';

const LEASE_MS = 2000;
const MARGIN_MS = 100;
const RENEW_EVERY_MS = Math.floor(LEASE_MS / 3);
const STEP_MS = 25;
const SYNC_GRACE_MS = 1000;
const START_GRACE_MS = 3000;
const ELECTION_TIMEOUT_MS = 600;
const RELEASE_TIMEOUT_MS = 2 * LEASE_MS;
const MEMBERS = ['a', 'b'] as const;
const PARTIES = ['a', 'b', 'w'] as const;
type Party = (typeof PARTIES)[number];

interface Member {
  readonly name: Party;
  up: boolean;
  voter: VoterState;
  wonTerm: number;
  leaseUntil: number | null;
  postgres: PostgresState;
  dataWasPrimary: boolean;
  upstream: Party | null;
  syncNames: string | null;
  syncClaim: string | null;
  syncClaimGranted: boolean;
  syncMissingSince: number | null;
  startingSince: number | null;
  electionNotBefore: number;
  election: ElectionWon | null;
  /** Persisted: an undecided election. */
  candidacy: { term: number; previousHolder: string | null } | null;
  /** Volatile: the election requests in flight. */
  round: { term: number; sentAt: number; grants: Party[]; refusals: number; deadline: number } | null;
  /** Persisted: the term this member released (switchover); never renewed again. */
  releasedTerm: number;
  switchoverUntil: number | null;
  lastRenewAt: number;
  renewRound: number;
  data: Set<number>;
  pending: Set<number>;
  log: string[];
}

interface Arbiter {
  up: boolean;
  voter: VoterState;
}

type Message =
  | { kind: 'req'; from: Party; to: Party; at: number; req: LeaseRequest; sentAt: number; round: number; claim: string | null }
  | { kind: 'res'; from: Party; to: Party; at: number; granted: boolean; state: VoterState; req: LeaseRequest; sentAt: number; round: number; claim: string | null };

type Command =
  | { t: 'advance'; ms: number }
  | { t: 'write'; who: Party }
  | { t: 'crash'; who: Party }
  | { t: 'restart'; who: Party }
  | { t: 'cut'; x: Party; y: Party }
  | { t: 'heal'; x: Party; y: Party }
  | { t: 'switchover' };

/** A small seeded PRNG (mulberry32) for message delays and losses. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class World {
  now = 0;
  readonly members: Record<'a' | 'b', Member>;
  readonly arbiter: Arbiter = { up: true, voter: INITIAL_VOTER_STATE };
  messages: Message[] = [];
  readonly cuts = new Set<string>();
  readonly acked = new Map<number, number>();
  nextWrite = 1;
  readonly random: () => number;
  lossRate: number;
  maxDelayMs: number;
  readonly trace: string[] = [];

  constructor(seed: number, lossRate: number, maxDelayMs: number) {
    this.random = rng(seed);
    this.lossRate = lossRate;
    this.maxDelayMs = maxDelayMs;
    const member = (name: Party): Member => ({
      name,
      up: true,
      voter: INITIAL_VOTER_STATE,
      wonTerm: 0,
      leaseUntil: null,
      postgres: 'absent',
      dataWasPrimary: false,
      upstream: null,
      syncNames: null,
      syncClaim: null,
      syncClaimGranted: false,
      syncMissingSince: null,
      startingSince: null,
      electionNotBefore: 0,
      election: null,
      candidacy: null,
      round: null,
      releasedTerm: 0,
      switchoverUntil: null,
      lastRenewAt: -1e9,
      renewRound: 0,
      data: new Set(),
      pending: new Set(),
      log: [],
    });
    this.members = { a: member('a'), b: member('b') };
  }

  linked(x: Party, y: Party): boolean {
    return !this.cuts.has([x, y].sort().join('-'));
  }

  member(p: Party): Member | null {
    return p === 'w' ? null : this.members[p];
  }

  isUp(p: Party): boolean {
    return p === 'w' ? this.arbiter.up : this.members[p].up;
  }

  send(from: Party, to: Party, req: LeaseRequest, round: number, claim: string | null): void {
    if (this.random() < this.lossRate) return;
    this.messages.push({ kind: 'req', from, to, at: this.now + 1 + Math.floor(this.random() * this.maxDelayMs), req, sentAt: this.now, round, claim });
  }

  leaseValid(m: Member): boolean {
    return m.voter.holder === m.name && m.wonTerm === m.voter.term && m.leaseUntil !== null && this.now < m.leaseUntil;
  }

  votingState(m: Member): VoterState {
    return memberVotingState(m.voter, m.name, m.leaseUntil, m.postgres === 'primary', m.candidacy?.term ?? null);
  }

  dropCandidacyUpTo(m: Member, term: number): void {
    if (m.candidacy !== null && m.candidacy.term <= term) {
      m.candidacy = null;
      m.round = null;
    }
  }

  /** A party answers a request (the RPC handler of a keeper or of the arbiter). */
  receive(msg: Extract<Message, { kind: 'req' }>): void {
    const m = this.member(msg.to);
    let granted: boolean;
    let state: VoterState;
    if (m === null) {
      const v = vote(this.arbiter.voter, msg.req, this.now);
      if (v.granted) this.arbiter.voter = v.state;
      granted = v.granted;
      state = this.arbiter.voter;
    } else {
      const v = vote(this.votingState(m), msg.req, this.now);
      if (v.granted && v.state.holder !== m.name) {
        m.voter = v.state;
        this.dropCandidacyUpTo(m, v.state.term);
      }
      granted = v.granted;
      state = m.voter;
    }
    if (this.random() < this.lossRate) return;
    this.messages.push({ kind: 'res', from: msg.to, to: msg.from, at: this.now + 1 + Math.floor(this.random() * this.maxDelayMs), granted, state, req: msg.req, sentAt: msg.sentAt, round: msg.round, claim: msg.claim });
  }

  /** The requester takes an answer (the keeper's lease client). */
  answer(msg: Extract<Message, { kind: 'res' }>): void {
    const m = this.member(msg.to);
    if (m === null) return;
    if (!msg.granted) {
      const learned = learnFromRefusal(m.voter, m.name, msg.state, this.now, LEASE_MS);
      if (learned !== null) {
        m.voter = learned;
        m.leaseUntil = null;
        this.dropCandidacyUpTo(m, learned.term);
        return;
      }
    }
    if (msg.req.kind === 'renew') {
      if (!msg.granted || m.voter.term !== msg.req.term || m.voter.holder !== m.name || m.wonTerm !== msg.req.term) return;
      if (m.releasedTerm === msg.req.term) return;
      m.leaseUntil = Math.max(m.leaseUntil ?? 0, leaseEnd(msg.sentAt, LEASE_MS, MARGIN_MS));
      if (msg.claim === m.syncClaim) {
        m.syncClaimGranted = true;
        m.voter = { ...m.voter, syncStandby: m.syncClaim };
      }
      return;
    }
    if (msg.req.kind === 'elect') {
      const r = m.round;
      if (r === null || r.term !== msg.req.term || m.candidacy === null) return;
      if (!msg.granted) {
        r.refusals += 1;
        if (r.refusals >= PARTIES.length - 1) {
          // Every peer refused: nobody granted this term, so it may be given up.
          m.candidacy = null;
          m.round = null;
          m.electionNotBefore = this.now + Math.floor(LEASE_MS / 4);
        }
        return;
      }
      r.grants.push(msg.from);
      if (1 + r.grants.length >= majority(PARTIES.length)) {
        m.voter = { term: r.term, holder: m.name, promiseUntilMs: this.now + LEASE_MS, syncStandby: null };
        m.wonTerm = r.term;
        m.leaseUntil = leaseEnd(r.sentAt, LEASE_MS, MARGIN_MS);
        m.election = { term: r.term, previousHolder: m.candidacy.previousHolder, grantedBy: [...r.grants] };
        m.syncClaim = null;
        m.syncClaimGranted = true;
        m.candidacy = null;
        m.round = null;
      }
    }
  }

  replicas(m: Member): ReplicaObservation[] {
    const out: ReplicaObservation[] = [];
    for (const name of MEMBERS) {
      const o = this.members[name];
      if (o === m || !this.streams(o, m)) continue;
      out.push({ name, state: 'streaming', syncState: m.syncNames === name ? 'sync' : 'async' });
    }
    return out;
  }

  streams(standby: Member, primary: Member): boolean {
    return standby.up && primary.up && standby.postgres === 'standby' && standby.upstream === primary.name && primary.postgres === 'primary' && this.linked(standby.name, primary.name);
  }

  tick(m: Member): void {
    if (!m.up) return;
    const holds = m.voter.holder === m.name && m.wonTerm === m.voter.term;
    if (!holds || m.postgres === 'primary') m.startingSince = null;
    const leaseOver = m.leaseUntil === null || this.now >= m.leaseUntil;
    if (m.startingSince !== null && leaseOver && this.now - m.startingSince >= START_GRACE_MS) m.startingSince = null;
    const replicas = m.postgres === 'primary' ? this.replicas(m) : [];
    const syncOk = m.syncNames !== null && replicas.some((r) => r.name === m.syncNames && r.syncState === 'sync');
    m.syncMissingSince = m.syncNames !== null && !syncOk ? (m.syncMissingSince ?? this.now) : null;
    if (m.switchoverUntil !== null && this.now >= m.switchoverUntil) m.switchoverUntil = null;
    if (m.candidacy !== null && m.candidacy.term <= m.voter.term) this.dropCandidacyUpTo(m, m.voter.term);
    if (m.round !== null && this.now >= m.round.deadline) {
      m.round = null;
      m.electionNotBefore = this.now + Math.floor(LEASE_MS / 4);
    }

    if (m.releasedTerm !== m.voter.term && shouldRenew({ holds, startingSinceMs: m.startingSince, nowMs: this.now, startGraceMs: START_GRACE_MS }) && this.now - m.lastRenewAt >= RENEW_EVERY_MS) {
      m.lastRenewAt = this.now;
      m.renewRound += 1;
      const req: LeaseRequest = { kind: 'renew', term: m.voter.term, holder: m.name, leaseMs: LEASE_MS, syncStandby: m.syncClaim };
      for (const p of PARTIES) if (p !== m.name) this.send(m.name, p, req, m.renewRound, m.syncClaim);
    }
    if (m.round !== null) return;

    const d = decide({
      nowMs: this.now,
      self: m.name,
      members: MEMBERS,
      initialPrimary: 'a',
      voter: m.voter,
      leaseUntilMs: m.voter.holder === m.name && m.wonTerm === m.voter.term ? (m.leaseUntil ?? 0) : null,
      switchover: m.switchoverUntil !== null,
      released: holds && m.releasedTerm === m.voter.term,
      candidacyTerm: m.candidacy?.term ?? null,
      postgres: m.postgres,
      dataWasPrimary: m.dataWasPrimary,
      upstream: m.upstream,
      syncNames: m.syncNames,
      syncClaim: m.syncClaim,
      syncClaimGranted: m.syncClaimGranted,
      replicas,
      syncMissingSinceMs: m.syncMissingSince,
      syncGraceMs: SYNC_GRACE_MS,
      electionNotBeforeMs: m.electionNotBefore,
      election: m.election,
    });
    if (d.action.kind !== 'wait') {
      m.log.push(`${this.now} ${d.reason}`);
      this.trace.push(`${this.now} ${d.reason}`);
    }
    this.apply(m, d.action);
  }

  apply(m: Member, a: Action): void {
    const holder = (p: string): Member | null => (p === 'a' || p === 'b' ? this.members[p] : null);
    switch (a.kind) {
      case 'wait':
        return;
      case 'elect': {
        const req: LeaseRequest = { kind: 'elect', term: a.term, holder: m.name, leaseMs: LEASE_MS, syncStandby: null };
        if (!vote(this.votingState(m), req, this.now).granted) {
          m.electionNotBefore = this.now + Math.floor(LEASE_MS / 4);
          return;
        }
        const previousHolder = m.candidacy?.term === a.term ? m.candidacy.previousHolder : m.voter.holder;
        m.candidacy = { term: a.term, previousHolder };
        m.round = { term: a.term, sentAt: this.now, grants: [], refusals: 0, deadline: this.now + ELECTION_TIMEOUT_MS };
        for (const p of PARTIES) if (p !== m.name) this.send(m.name, p, req, 0, null);
        return;
      }
      case 'initdb':
        m.postgres = 'stopped';
        m.dataWasPrimary = true;
        return;
      case 'start_primary':
        m.startingSince ??= this.now;
        m.postgres = 'primary';
        return;
      case 'promote':
        m.startingSince ??= this.now;
        m.postgres = 'primary';
        m.dataWasPrimary = true;
        m.upstream = null;
        m.syncNames = null;
        return;
      case 'fence':
        m.postgres = 'stopped';
        m.upstream = null;
        m.pending.clear();
        return;
      case 'clone':
      case 'rewind': {
        const from = holder(a.from);
        if (from === null || !from.up || from.postgres !== 'primary' || !this.linked(m.name, from.name)) return;
        m.data = new Set(from.data);
        m.postgres = 'stopped';
        m.dataWasPrimary = false;
        m.syncNames = null;
        m.syncClaim = null;
        return;
      }
      case 'start_standby':
        m.postgres = 'standby';
        m.upstream = a.upstream === 'a' || a.upstream === 'b' ? a.upstream : null;
        return;
      case 'follow':
        m.upstream = a.upstream === 'a' || a.upstream === 'b' ? a.upstream : null;
        return;
      case 'require_sync':
        m.syncNames = a.standby;
        return;
      case 'claim_sync':
        m.syncClaim = a.standby;
        m.syncClaimGranted = false;
        return;
      case 'unclaim_sync':
        m.syncClaim = null;
        m.syncClaimGranted = false;
        m.voter = { ...m.voter, syncStandby: null };
        return;
      case 'drop_sync':
        m.syncNames = null;
        // PostgreSQL releases the commits that were waiting for the dropped standby.
        for (const id of m.pending) this.acked.set(id, m.voter.term);
        m.pending.clear();
        return;
    }
  }

  replicate(): void {
    for (const name of MEMBERS) {
      const s = this.members[name];
      const u = s.upstream === 'a' || s.upstream === 'b' ? this.members[s.upstream] : null;
      if (u === null || !this.streams(s, u)) continue;
      s.data = new Set(u.data);
      if (u.syncNames === s.name) {
        for (const id of u.pending) this.acked.set(id, u.voter.term);
        u.pending.clear();
      }
    }
  }

  step(): void {
    const due = this.messages.filter((m) => m.at <= this.now);
    this.messages = this.messages.filter((m) => m.at > this.now);
    for (const msg of due) {
      if (!this.linked(msg.from, msg.to) || !this.isUp(msg.to)) continue;
      if (msg.kind === 'req') this.receive(msg);
      else this.answer(msg);
    }
    const order: ('a' | 'b')[] = this.random() < 0.5 ? ['a', 'b'] : ['b', 'a'];
    for (const name of order) this.tick(this.members[name]);
    this.replicate();
    this.check();
    this.now += STEP_MS;
  }

  check(): void {
    const valid = MEMBERS.filter((n) => this.leaseValid(this.members[n]));
    assert.ok(valid.length <= 1, `two valid leases at ${this.now}: ${valid.map((n) => `${n} term ${this.members[n].voter.term} until ${this.members[n].leaseUntil}`).join(', ')}\n${this.trace.slice(-25).join('\n')}`);
    for (const n of valid) {
      const m = this.members[n];
      if (m.postgres !== 'primary') continue;
      for (const [id, term] of this.acked) {
        assert.ok(m.data.has(id), `write ${id} acknowledged in term ${term} is missing on ${n}, primary of term ${m.voter.term}\n${this.trace.slice(-25).join('\n')}`);
      }
    }
  }

  write(who: Party): void {
    const m = this.member(who);
    if (m === null || !m.up || m.postgres !== 'primary') return;
    const id = this.nextWrite++;
    m.data.add(id);
    if (m.syncNames === null) {
      this.acked.set(id, m.voter.term);
      return;
    }
    const s = this.member(m.syncNames as Party);
    if (s !== null && this.streams(s, m)) {
      s.data.add(id);
      this.acked.set(id, m.voter.term);
    } else {
      m.pending.add(id);
    }
  }

  crash(who: Party): void {
    const m = this.member(who);
    if (m === null) {
      this.arbiter.up = false;
      return;
    }
    m.up = false;
    m.postgres = m.postgres === 'absent' ? 'absent' : 'stopped';
    m.upstream = null;
    m.pending.clear();
    m.round = null;
    m.leaseUntil = null;
    m.switchoverUntil = null;
  }

  restart(who: Party): void {
    const m = this.member(who);
    if (m === null) {
      if (!this.arbiter.up) {
        this.arbiter.up = true;
        this.arbiter.voter = { ...this.arbiter.voter, promiseUntilMs: Math.max(this.arbiter.voter.promiseUntilMs, this.now + LEASE_MS) };
      }
      return;
    }
    if (m.up) return;
    m.up = true;
    m.voter = { ...m.voter, promiseUntilMs: Math.max(m.voter.promiseUntilMs, this.now + LEASE_MS) };
    m.leaseUntil = m.wonTerm === m.voter.term && m.voter.holder === m.name ? 0 : null;
    m.syncMissingSince = null;
    m.startingSince = null;
  }

  /** The keeper's /switchover on the primary: stop, let the standby catch up, release the term. */
  switchover(): void {
    const p = MEMBERS.map((n) => this.members[n]).find((m) => this.leaseValid(m) && m.postgres === 'primary' && m.syncClaim !== null && m.syncClaimGranted);
    if (!p) return;
    const s = this.members[p.syncClaim as 'a' | 'b'];
    if (!this.streams(s, p) || p.syncNames !== s.name) return;
    // Fast shutdown: waiting commits are not acknowledged; all WAL reaches the standby.
    p.postgres = 'stopped';
    p.pending.clear();
    s.data = new Set(p.data);
    p.switchoverUntil = this.now + RELEASE_TIMEOUT_MS;
    p.releasedTerm = p.voter.term;
    p.leaseUntil = this.now;
    p.voter = { ...p.voter, promiseUntilMs: this.now };
    const req: LeaseRequest = { kind: 'release', term: p.voter.term, holder: p.name, leaseMs: LEASE_MS, syncStandby: p.syncClaim };
    for (const q of PARTIES) if (q !== p.name) this.send(p.name, q, req, 0, null);
  }

  advance(ms: number): void {
    const until = this.now + ms;
    while (this.now < until) this.step();
  }

  run(cmd: Command): void {
    this.trace.push(`${this.now} -- ${JSON.stringify(cmd)}`);
    switch (cmd.t) {
      case 'advance':
        this.advance(cmd.ms);
        return;
      case 'write':
        this.write(cmd.who);
        return;
      case 'crash':
        this.crash(cmd.who);
        return;
      case 'restart':
        this.restart(cmd.who);
        return;
      case 'cut':
        if (cmd.x !== cmd.y) this.cuts.add([cmd.x, cmd.y].sort().join('-'));
        return;
      case 'heal':
        this.cuts.delete([cmd.x, cmd.y].sort().join('-'));
        return;
      case 'switchover':
        this.switchover();
        return;
    }
  }

  /** Everything healed and up: after a while, exactly one primary with a synchronous standby. */
  settle(): void {
    this.cuts.clear();
    this.lossRate = 0;
    this.maxDelayMs = 20;
    for (const p of PARTIES) this.restart(p);
    this.advance(40_000);
    const primaries = MEMBERS.filter((n) => this.leaseValid(this.members[n]) && this.members[n].postgres === 'primary');
    const describe = (): string =>
      MEMBERS.map((n) => {
        const m = this.members[n];
        return `${n}: ${m.postgres} voter ${JSON.stringify(m.voter)} won ${m.wonTerm} released ${m.releasedTerm} candidacy ${JSON.stringify(m.candidacy)} sync ${m.syncNames}/${m.syncClaim} last: ${m.log.at(-1) ?? ''}`;
      }).join('\n') + `\nw: term ${this.arbiter.voter.term} holder ${this.arbiter.voter.holder} sync ${this.arbiter.voter.syncStandby}`;
    assert.equal(primaries.length, 1, `no single primary after healing:\n${describe()}\n${this.trace.slice(-30).join('\n')}`);
    const p = this.members[primaries[0] as 'a' | 'b'];
    const s = this.members[p.name === 'a' ? 'b' : 'a'];
    assert.equal(s.postgres, 'standby', `the other member is not a standby:\n${describe()}`);
    assert.equal(p.syncNames, s.name, `no synchronous standby after healing:\n${describe()}`);
    assert.equal(p.syncClaim, s.name, `the synchronous standby is not recorded after healing:\n${describe()}`);
  }
}

const party = fc.constantFrom<Party>('a', 'b', 'w');
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 25, max: 3000 }).map((ms): Command => ({ t: 'advance', ms })) },
  { weight: 6, arbitrary: party.map((who): Command => ({ t: 'write', who })) },
  { weight: 1, arbitrary: party.map((who): Command => ({ t: 'crash', who })) },
  { weight: 2, arbitrary: party.map((who): Command => ({ t: 'restart', who })) },
  { weight: 1, arbitrary: fc.tuple(party, party).map(([x, y]): Command => ({ t: 'cut', x, y })) },
  { weight: 1, arbitrary: fc.tuple(party, party).map(([x, y]): Command => ({ t: 'heal', x, y })) },
  { weight: 1, arbitrary: fc.constant<Command>({ t: 'switchover' }) },
);

function bootstrapped(seed: number, lossRate: number, maxDelayMs: number): World {
  const w = new World(seed, lossRate, maxDelayMs);
  w.advance(6000);
  return w;
}

describe('failover protocol model', () => {
  it('bootstraps a primary with a synchronous standby', () => {
    const w = bootstrapped(1, 0, 50);
    assert.equal(w.members.a.postgres, 'primary');
    assert.equal(w.members.b.postgres, 'standby');
    assert.equal(w.members.a.syncClaim, 'b');
    assert.equal(w.arbiter.voter.syncStandby, 'b');
  });

  it('fails over to the synchronous standby when the primary dies, losing no acknowledged write', () => {
    const w = bootstrapped(2, 0, 50);
    for (let i = 0; i < 20; i++) w.write('a');
    w.crash('a');
    w.advance(4000);
    assert.equal(w.members.b.postgres, 'primary');
    assert.equal(w.members.b.voter.term, 2);
    assert.ok(w.members.b.log.some((l) => /promoted b: a's lease expired, b was its synchronous standby, w agreed to term 2/.test(l)), w.members.b.log.join('\n'));
    for (const id of w.acked.keys()) assert.ok(w.members.b.data.has(id));
    w.write('b');
    assert.equal(w.acked.size, 21, 'the new primary acknowledges writes without a standby');
    w.restart('a');
    w.advance(6000);
    assert.equal(w.members.a.postgres, 'standby');
    assert.equal(w.members.b.syncClaim, 'a');
  });

  it('keeps the primary when only the arbiter is lost', () => {
    const w = bootstrapped(3, 0, 50);
    w.crash('w');
    w.advance(20_000);
    assert.equal(w.members.a.postgres, 'primary');
    assert.ok(w.leaseValid(w.members.a));
    w.write('a');
    assert.equal(w.acked.size, 1);
    assert.equal(w.members.a.voter.term, 1);
  });

  it('an isolated primary fences itself before the standby is promoted', () => {
    const w = bootstrapped(4, 0, 50);
    w.run({ t: 'cut', x: 'a', y: 'b' });
    w.run({ t: 'cut', x: 'a', y: 'w' });
    let fencedAt = -1;
    let promotedAt = -1;
    for (let i = 0; i < 200; i++) {
      w.step();
      if (fencedAt < 0 && w.members.a.postgres === 'stopped') fencedAt = w.now;
      if (promotedAt < 0 && w.members.b.postgres === 'primary') promotedAt = w.now;
    }
    assert.ok(fencedAt > 0 && promotedAt > 0 && fencedAt < promotedAt, `fenced ${fencedAt}, promoted ${promotedAt}`);
  });

  it('does not promote a standby the primary had stopped waiting for', () => {
    const w = bootstrapped(5, 0, 50);
    // b's keeper and replication are cut off from a; a records that b is not synchronous.
    w.run({ t: 'cut', x: 'a', y: 'b' });
    w.advance(4000);
    assert.equal(w.members.a.syncNames, null);
    assert.equal(w.arbiter.voter.syncStandby, null);
    w.write('a');
    assert.equal(w.acked.size, 1);
    w.crash('a');
    w.advance(10_000);
    assert.notEqual(w.members.b.postgres, 'primary');
  });

  it('hands over without losing a write', () => {
    const w = bootstrapped(6, 0, 50);
    for (let i = 0; i < 5; i++) w.write('a');
    w.run({ t: 'switchover' });
    w.advance(6000);
    assert.equal(w.members.b.postgres, 'primary');
    assert.equal(w.members.a.postgres, 'standby');
    for (const id of w.acked.keys()) assert.ok(w.members.b.data.has(id));
  });

  it('holds its invariants under random crashes, partitions, delays and switchovers', () => {
    // The schedules must reach the paths that matter, or passing says little.
    const seen = { promoted: 0, rewound: 0, dropped: 0, released: 0, reelected: 0 };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.constantFrom(0, 0.05, 0.3),
        fc.constantFrom(20, 150, 600),
        fc.array(command, { minLength: 5, maxLength: 40 }),
        (seed, lossRate, maxDelayMs, commands) => {
          const w = bootstrapped(seed, lossRate, maxDelayMs);
          for (const c of commands) w.run(c);
          w.settle();
          const all = w.trace.join('\n');
          if (/promoted /.test(all)) seen.promoted++;
          if (/rewinds its data/.test(all)) seen.rewound++;
          if (/acknowledges writes without/.test(all)) seen.dropped++;
          if (w.members.a.releasedTerm + w.members.b.releasedTerm > 0) seen.released++;
          if (/it released term/.test(all)) seen.reelected++;
        },
      ),
      // 600 schedules: the rarest path (a re-election after a released term) is reached about
      // 12 times in 600 (0 to 9 in 150, which let the coverage check fail about one run in 15).
      { numRuns: Number(process.env['LANES_MODEL_RUNS'] ?? 600), includeErrorInReport: true },
    );
    if (process.env['LANES_MODEL_STATS']) console.log(JSON.stringify(seen));
    for (const [path, count] of Object.entries(seen)) assert.ok(count > 0, `no schedule reached "${path}": ${JSON.stringify(seen)}`);
  });
});
