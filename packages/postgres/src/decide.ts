/**
 * The failover decision: two small pure functions, unit- and property-tested, that the
 * keeper (one per member) and the arbiter run; everything else in this package only
 * gathers their inputs and carries out their answers.
 *
 * - `vote(state, request, nowMs)` is what every party (the other member's keeper and the
 *   arbiter) answers to a lease request: renew a term, elect a new term, or release one.
 * - `decide(observation)` is the member's next step, with one sentence saying why.
 *
 * The protocol (docs/adr/005-postgres-failover.md): a term-numbered lease held by the
 * primary with a majority of the parties (itself + one peer of three). Peers measure the
 * promise they give from its receipt; the primary measures its lease from the send time of
 * the request, minus a margin, so its lease always ends before any peer's promise does. A
 * peer never grants a different holder a new term while its promise runs, and grants an
 * election only to the member the last holder recorded as its synchronous standby. The
 * primary records its synchronous standby in every renewal; it drops a standby from
 * `synchronous_standby_names` only after a renewal saying so was granted, and names one in
 * a renewal only once PostgreSQL reports it `sync`.
 *
 * Times are milliseconds on the caller's monotonic clock; nothing here reads a clock.
 */

/** What a party knows of the lease and what it has promised. Persisted by every party. */
export interface VoterState {
  /** The highest term this party has granted or held; 0 before the cluster's first. */
  readonly term: number;
  /** Who holds `term`; null before the first term. */
  readonly holder: string | null;
  /** No other holder gets a new term from this party before this time (its promise). */
  readonly promiseUntilMs: number;
  /** The holder's synchronous standby as the holder last told this party (null: none). */
  readonly syncStandby: string | null;
}

export const INITIAL_VOTER_STATE: VoterState = Object.freeze({ term: 0, holder: null, promiseUntilMs: 0, syncStandby: null });

/** renew: the holder keeps its term; elect: a member asks for a new term; release: the holder gives its promise back (switchover). */
export type LeaseRequestKind = 'renew' | 'elect' | 'release';

export interface LeaseRequest {
  readonly kind: LeaseRequestKind;
  readonly term: number;
  /** The member asking (the holder of `term` if granted). */
  readonly holder: string;
  /** How long the promise lasts from its receipt. */
  readonly leaseMs: number;
  /** The holder's synchronous standby from now on (null: it acknowledges writes alone). */
  readonly syncStandby: string | null;
}

export interface Vote {
  readonly granted: boolean;
  /** The party's state after the vote (unchanged when refused). */
  readonly state: VoterState;
  readonly reason: string;
}

function refuse(state: VoterState, reason: string): Vote {
  return { granted: false, state, reason };
}

/**
 * A party's answer to a lease request received at `nowMs`. A member holding the lease passes
 * `memberVotingState(...)` so that it never hands its own term away while it acts as primary.
 */
export function vote(state: VoterState, req: LeaseRequest, nowMs: number): Vote {
  if (req.kind === 'release') {
    if (req.term === state.term && req.holder === state.holder) {
      return { granted: true, state: { ...state, promiseUntilMs: Math.min(state.promiseUntilMs, nowMs) }, reason: `${req.holder} released term ${req.term}` };
    }
    return refuse(state, `nothing to release: term ${req.term} of ${req.holder} is not the current term ${state.term} of ${state.holder ?? 'nobody'}`);
  }
  if (req.term < state.term) {
    return refuse(state, `term ${req.term} is stale: term ${state.term} belongs to ${state.holder ?? 'nobody'}`);
  }
  if (req.term === state.term) {
    if (req.holder !== state.holder) return refuse(state, `term ${req.term} already belongs to ${state.holder ?? 'nobody'}`);
    const renewed: VoterState = { ...state, promiseUntilMs: Math.max(state.promiseUntilMs, nowMs + req.leaseMs), syncStandby: req.syncStandby };
    return { granted: true, state: renewed, reason: `renewed term ${req.term} of ${req.holder}` };
  }
  // A new term.
  if (state.holder !== null && state.holder !== req.holder) {
    if (nowMs < state.promiseUntilMs) {
      return refuse(state, `promised term ${state.term} to ${state.holder} for another ${Math.ceil(state.promiseUntilMs - nowMs)} ms`);
    }
    if (req.kind === 'elect' && state.syncStandby !== req.holder) {
      return refuse(state, `${req.holder} was not the synchronous standby of term ${state.term} (${state.syncStandby ?? 'none'} was)`);
    }
  }
  if (req.kind === 'elect' && state.holder === null && req.term !== 1) {
    // A party without a record (new, or its state lost) cannot tell who was synchronous.
    return refuse(state, `no record of term ${req.term - 1}; only the first term can be granted without one`);
  }
  const next: VoterState = { term: req.term, holder: req.holder, promiseUntilMs: nowMs + req.leaseMs, syncStandby: req.syncStandby };
  return { granted: true, state: next, reason: req.kind === 'elect' ? `granted term ${req.term} to ${req.holder}` : `learned term ${req.term} of ${req.holder}` };
}

/**
 * The state a member votes with. While it holds the term and runs PostgreSQL as primary it
 * promises the term to itself without end, and while its lease runs, at least until then.
 * While it is a candidate for `candidacyTerm` it has voted for itself in that term, so it
 * grants nothing at or below it to anybody else. Refusals report the member's record
 * (`voter`), never this view: a candidacy is not a grant and must not be learned as one.
 */
export function memberVotingState(voter: VoterState, self: string, leaseUntilMs: number | null, actingPrimary: boolean, candidacyTerm: number | null = null): VoterState {
  if (candidacyTerm !== null && candidacyTerm > voter.term) {
    return { ...voter, term: candidacyTerm, holder: self, promiseUntilMs: Math.max(voter.promiseUntilMs, leaseUntilMs ?? 0) };
  }
  if (voter.holder !== self) return voter;
  const until = actingPrimary ? Number.POSITIVE_INFINITY : Math.max(voter.promiseUntilMs, leaseUntilMs ?? 0);
  return { ...voter, promiseUntilMs: until };
}

/**
 * What a member adopts from a refusal: a newer term that the refusing party granted to
 * another member (that member won it, or will on asking again). Its promise is assumed to
 * run a full lease from now. Null when there is nothing to learn.
 */
export function learnFromRefusal(own: VoterState, self: string, theirs: VoterState, nowMs: number, leaseMs: number): VoterState | null {
  if (theirs.term <= own.term || theirs.holder === null || theirs.holder === self) return null;
  return { term: theirs.term, holder: theirs.holder, promiseUntilMs: nowMs + leaseMs, syncStandby: theirs.syncStandby };
}

/** Parties needed for a grant: a majority of `parties` (members + arbiter), the asker included. */
export function majority(parties: number): number {
  return Math.floor(parties / 2) + 1;
}

/** The end of the holder's lease after a granted request sent at `sentAtMs`: before any peer's promise ends. */
export function leaseEnd(sentAtMs: number, leaseMs: number, marginMs: number): number {
  return sentAtMs + leaseMs - marginMs;
}

// ---------------------------------------------------------------------------------------
// The member's decision

/** What this member's PostgreSQL is doing. */
export type PostgresState = 'absent' | 'stopped' | 'primary' | 'standby';

export interface ReplicaObservation {
  /** The standby's application_name: its member name. */
  readonly name: string;
  /** pg_stat_replication.state: startup, catchup, streaming, backup, stopping. */
  readonly state: string;
  /** pg_stat_replication.sync_state: async, potential, sync, quorum. */
  readonly syncState: string;
}

/** This member's last won election, for the promotion's sentence. */
export interface ElectionWon {
  readonly term: number;
  readonly previousHolder: string | null;
  /** The peers that granted it. */
  readonly grantedBy: readonly string[];
  /** The previous holder released its term (a switchover) rather than letting it expire. */
  readonly previousReleased?: boolean;
}

export interface MemberObservation {
  readonly nowMs: number;
  readonly self: string;
  /** Every member with data (the arbiter is not one), self included. */
  readonly members: readonly string[];
  /** The member that creates the cluster (initdb) when nobody holds a term yet. */
  readonly initialPrimary: string;
  /** This member's own record as a party to the lease. */
  readonly voter: VoterState;
  /** When self holds `voter.term`: the end of its lease (null: no granted lease yet). */
  readonly leaseUntilMs: number | null;
  /** A planned switchover has stopped this member's PostgreSQL on purpose. */
  readonly switchover: boolean;
  /** Self holds `voter.term` but released it (a switchover): it is never renewed again. */
  readonly released: boolean;
  /** The term of this member's undecided election (kept across restarts), or null. */
  readonly candidacyTerm: number | null;
  readonly postgres: PostgresState;
  /** The data directory last ran as a primary (so it must be rewound before it can follow). */
  readonly dataWasPrimary: boolean;
  /** The member a running standby streams from (null when primary or stopped). */
  readonly upstream: string | null;
  /** synchronous_standby_names in force on a primary (one member or null). */
  readonly syncNames: string | null;
  /** The synchronous standby this member's renewals name. */
  readonly syncClaim: string | null;
  /** A renewal naming the current `syncClaim` has been granted. */
  readonly syncClaimGranted: boolean;
  /** The primary's pg_stat_replication. */
  readonly replicas: readonly ReplicaObservation[];
  /** Since when the standby in `syncNames` has not been `sync` (null: it is, or none named). */
  readonly syncMissingSinceMs: number | null;
  /** How long a synchronous standby may be missing before the primary goes on without it. */
  readonly syncGraceMs: number;
  /** No election before this time (backoff after a refused one). */
  readonly electionNotBeforeMs: number;
  readonly election: ElectionWon | null;
}

export type Action =
  | { readonly kind: 'wait' }
  /** Ask the parties for `term` with self as holder. */
  | { readonly kind: 'elect'; readonly term: number }
  /** Create the cluster's data directory. */
  | { readonly kind: 'initdb' }
  /** Start PostgreSQL on data that last ran as primary. */
  | { readonly kind: 'start_primary' }
  /** End recovery (pg_promote) and accept writes without a synchronous standby. */
  | { readonly kind: 'promote' }
  /** Stop PostgreSQL at once (immediate shutdown): no write may be acknowledged any more. */
  | { readonly kind: 'fence' }
  /** Copy the primary's data (pg_basebackup). */
  | { readonly kind: 'clone'; readonly from: string }
  /** Rewind diverged data to the primary's timeline (pg_rewind). */
  | { readonly kind: 'rewind'; readonly from: string }
  /** Start PostgreSQL in recovery, streaming from `upstream` (null: from nobody, before a promotion). */
  | { readonly kind: 'start_standby'; readonly upstream: string | null }
  /** Stream from another member. */
  | { readonly kind: 'follow'; readonly upstream: string }
  /** Name `standby` in synchronous_standby_names (it streams; commits will wait for it). */
  | { readonly kind: 'require_sync'; readonly standby: string }
  /** Name `standby` as synchronous in the renewals (PostgreSQL reports it sync). */
  | { readonly kind: 'claim_sync'; readonly standby: string }
  /** Renew saying there is no synchronous standby (it has been missing too long). */
  | { readonly kind: 'unclaim_sync'; readonly standby: string }
  /** Empty synchronous_standby_names (a renewal saying so was granted). */
  | { readonly kind: 'drop_sync'; readonly standby: string };

export interface Decision {
  readonly action: Action;
  /** One sentence: what this member does and why. */
  readonly reason: string;
}

const WAIT: Action = Object.freeze({ kind: 'wait' });

function ms(n: number): string {
  return `${Math.max(0, Math.round(n))} ms`;
}

/** The member's next step. Pure; see the module header. */
export function decide(o: MemberObservation): Decision {
  const { self, voter } = o;
  const holds = voter.holder === self;
  const leaseValid = holds && o.leaseUntilMs !== null && o.nowMs < o.leaseUntilMs;

  // A planned switchover drives this member itself until it ends.
  if (o.switchover) return { action: WAIT, reason: `${self} waits: a switchover is in progress` };

  if (holds && o.released) {
    if (o.postgres === 'primary') return { action: { kind: 'fence' }, reason: `fenced ${self}: it released term ${voter.term}` };
    if (o.nowMs < o.electionNotBeforeMs) return { action: WAIT, reason: `${self} waits ${ms(o.electionNotBeforeMs - o.nowMs)} before asking for term ${voter.term + 1}` };
    return { action: { kind: 'elect', term: voter.term + 1 }, reason: `${self} asks for term ${voter.term + 1}: it released term ${voter.term} for a switchover that did not complete` };
  }

  if (holds && !leaseValid) {
    const why = o.leaseUntilMs === null ? `has no granted lease for term ${voter.term} yet` : `lease of term ${voter.term} expired ${ms(o.nowMs - o.leaseUntilMs)} ago`;
    if (o.postgres === 'primary') return { action: { kind: 'fence' }, reason: `fenced ${self}: its ${why.replace(/^has /, '')}, so it may acknowledge no more writes` };
    return { action: WAIT, reason: `${self} ${why}; renewing before it runs as primary` };
  }

  if (leaseValid) return decideAsPrimary(o);

  if (o.candidacyTerm !== null) {
    // An election may have been granted without this member hearing of it: ask again for the
    // same term until it is won or every peer refused it, so no granted term is left unclaimed.
    if (o.postgres === 'primary') return { action: { kind: 'fence' }, reason: `fenced ${self}: it is a candidate for term ${o.candidacyTerm}, not a holder` };
    if (o.nowMs < o.electionNotBeforeMs) return { action: WAIT, reason: `${self} waits ${ms(o.electionNotBeforeMs - o.nowMs)} before asking again for term ${o.candidacyTerm}` };
    return { action: { kind: 'elect', term: o.candidacyTerm }, reason: `${self} asks again for term ${o.candidacyTerm}: its election is still undecided` };
  }

  if (voter.holder === null) {
    if (o.initialPrimary === self) {
      if (o.nowMs < o.electionNotBeforeMs) return { action: WAIT, reason: `${self} waits ${ms(o.electionNotBeforeMs - o.nowMs)} before asking again for the first term` };
      return { action: { kind: 'elect', term: voter.term + 1 }, reason: `${self} asks for term ${voter.term + 1} to create the cluster: nobody holds a term yet` };
    }
    return { action: WAIT, reason: `${self} waits for ${o.initialPrimary} to create the cluster` };
  }

  return decideAsStandby(o, voter.holder);
}

function decideAsPrimary(o: MemberObservation): Decision {
  const { self, voter } = o;
  const until = o.leaseUntilMs ?? o.nowMs;
  switch (o.postgres) {
    case 'absent':
      if (voter.term === 1) return { action: { kind: 'initdb' }, reason: `${self} creates the cluster: it holds the first term` };
      return { action: WAIT, reason: `${self} holds term ${voter.term} but has no data; an operator must restore it` };
    case 'stopped':
      if (o.dataWasPrimary) {
        const left = Number.isFinite(until) ? ` for another ${ms(until - o.nowMs)}` : '';
        return { action: { kind: 'start_primary' }, reason: `${self} starts PostgreSQL as primary: it holds term ${voter.term}${left}` };
      }
      return { action: { kind: 'start_standby', upstream: null }, reason: `${self} starts PostgreSQL in recovery to promote it: it holds term ${voter.term}` };
    case 'standby': {
      const e = o.election;
      const how =
        e !== null && e.term === voter.term
          ? `${e.previousReleased === true ? `${e.previousHolder ?? 'the previous primary'} handed over its term` : `${e.previousHolder ?? 'the previous primary'}'s lease expired`}, ${self} was its synchronous standby, ${e.grantedBy.length > 0 ? e.grantedBy.join(' and ') : 'nobody else'} agreed to term ${e.term}`
          : `it holds term ${voter.term}`;
      return { action: { kind: 'promote' }, reason: `promoted ${self}: ${how}` };
    }
    case 'primary':
      return decideSync(o, until);
  }
}

/** The primary's synchronous standby: name it once it streams, claim it once sync, let it go when missing. */
function decideSync(o: MemberObservation, until: number): Decision {
  const { self, voter } = o;
  // A single member's lease never runs out (there is nobody to take over).
  const held = `primary of term ${voter.term}${Number.isFinite(until) ? `, lease valid for another ${ms(until - o.nowMs)}` : ''}`;
  const others = o.members.filter((m) => m !== self);
  if (others.length === 0) return { action: WAIT, reason: `${self} is ${held}, a single member` };

  if (o.syncNames !== null) {
    const standby = o.syncNames;
    const replica = o.replicas.find((r) => r.name === standby);
    const isSync = replica !== undefined && replica.state === 'streaming' && replica.syncState === 'sync';
    if (isSync) {
      if (o.syncClaim !== standby) return { action: { kind: 'claim_sync', standby }, reason: `${self} records ${standby} as its synchronous standby: PostgreSQL reports it sync` };
      return { action: WAIT, reason: `${self} is ${held}, ${standby} synchronous` };
    }
    const missingMs = o.syncMissingSinceMs === null ? 0 : o.nowMs - o.syncMissingSinceMs;
    const how = replica === undefined ? 'not connected' : replica.state === 'streaming' ? `streaming but ${replica.syncState}` : replica.state;
    if (missingMs < o.syncGraceMs) {
      return { action: WAIT, reason: `${self} is ${held}; its synchronous standby ${standby} is ${how} for ${ms(missingMs)}, commits wait for it` };
    }
    if (o.syncClaim !== null) {
      return { action: { kind: 'unclaim_sync', standby }, reason: `${self} records that it has no synchronous standby: ${standby} has been ${replica === undefined ? 'disconnected' : how} for ${ms(missingMs)}` };
    }
    if (o.syncClaimGranted) {
      return { action: { kind: 'drop_sync', standby }, reason: `${self} acknowledges writes without ${standby}: a peer recorded that ${standby} is no longer synchronous, so it can never be promoted` };
    }
    return { action: WAIT, reason: `${self} waits for a peer to record that ${standby} is no longer synchronous before it stops waiting for it` };
  }

  if (o.syncClaim !== null) {
    // Renewals must never name a standby that commits do not wait for.
    return { action: { kind: 'unclaim_sync', standby: o.syncClaim }, reason: `${self} records that it has no synchronous standby: synchronous_standby_names is empty` };
  }
  const streaming = o.replicas.find((r) => others.includes(r.name) && r.state === 'streaming');
  if (streaming !== undefined) {
    return { action: { kind: 'require_sync', standby: streaming.name }, reason: `${self} makes ${streaming.name} its synchronous standby: it streams and has caught up` };
  }
  return { action: WAIT, reason: `${self} is ${held}, no standby streaming: writes are acknowledged by ${self} alone` };
}

function decideAsStandby(o: MemberObservation, holder: string): Decision {
  const { self, voter } = o;
  if (o.postgres === 'primary') {
    return { action: { kind: 'fence' }, reason: `fenced ${self}: ${holder} holds term ${voter.term}, so this former primary may acknowledge no more writes` };
  }
  if (o.postgres === 'absent') return { action: { kind: 'clone', from: holder }, reason: `${self} copies ${holder}'s data to become its standby` };

  if (o.nowMs >= voter.promiseUntilMs) {
    if (voter.syncStandby === self && !o.dataWasPrimary) {
      if (o.nowMs < o.electionNotBeforeMs) return { action: WAIT, reason: `${self} waits ${ms(o.electionNotBeforeMs - o.nowMs)} before asking again for term ${voter.term + 1}` };
      return {
        action: { kind: 'elect', term: voter.term + 1 },
        reason: `${self} asks for term ${voter.term + 1}: ${holder}'s lease of term ${voter.term} expired ${ms(o.nowMs - voter.promiseUntilMs)} ago and ${self} was its synchronous standby`,
      };
    }
  }

  if (o.dataWasPrimary) {
    if (o.postgres !== 'stopped') return { action: { kind: 'fence' }, reason: `${self} stops PostgreSQL to rewind it to ${holder}'s timeline` };
    return { action: { kind: 'rewind', from: holder }, reason: `${self} rewinds its data to follow ${holder}: it last ran as primary and ${holder} holds term ${voter.term}` };
  }
  if (o.postgres === 'stopped') return { action: { kind: 'start_standby', upstream: holder }, reason: `${self} starts PostgreSQL as a standby of ${holder}` };
  if (o.upstream !== holder) return { action: { kind: 'follow', upstream: holder }, reason: `${self} streams from ${holder}, the primary of term ${voter.term}` };

  const promise =
    o.nowMs < voter.promiseUntilMs
      ? `promise valid for another ${ms(voter.promiseUntilMs - o.nowMs)}`
      : `${holder}'s lease expired but ${self} was not its synchronous standby (${voter.syncStandby ?? 'none'} was), so it may not take over`;
  return { action: WAIT, reason: `${self} is a standby of ${holder} (term ${voter.term}), ${promise}` };
}

/**
 * Whether the holder keeps renewing its lease. It renews unless it has been trying for
 * longer than `startGraceMs` to bring PostgreSQL up as primary (start, promote) without
 * success: then it lets its lease run out so that its synchronous standby can take over.
 * Once the lease has run out the keeper clears `startingSinceMs` and tries again, so a lone
 * member is never stuck. A fenced member is not "starting" and renews to get its lease back.
 */
export function shouldRenew(input: {
  readonly holds: boolean;
  /** Since when the holder has been trying to bring PostgreSQL up as primary (null: not trying, or it is up). */
  readonly startingSinceMs: number | null;
  readonly nowMs: number;
  readonly startGraceMs: number;
}): boolean {
  if (!input.holds) return false;
  if (input.startingSinceMs === null) return true;
  return input.nowMs - input.startingSinceMs < input.startGraceMs;
}
