/**
 * The failover decision, one decision at a time: each case states the situation a member
 * is in and checks the action and the sentence it gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decide,
  INITIAL_VOTER_STATE,
  leaseEnd,
  learnFromRefusal,
  majority,
  memberVotingState,
  shouldRenew,
  vote,
  type LeaseRequest,
  type MemberObservation,
  type VoterState,
} from './decide.js';

const LEASE = 2000;

function req(over: Partial<LeaseRequest>): LeaseRequest {
  return { kind: 'renew', term: 3, holder: 'a', leaseMs: LEASE, syncStandby: 'b', ...over };
}

const HELD: VoterState = { term: 3, holder: 'a', promiseUntilMs: 10_000, syncStandby: 'b' };

describe('vote', () => {
  it('renews the holder of the current term and extends the promise from the receipt', () => {
    const v = vote(HELD, req({}), 9_000);
    assert.equal(v.granted, true);
    assert.equal(v.state.promiseUntilMs, 11_000);
    assert.equal(v.reason, 'renewed term 3 of a');
  });

  it('records the synchronous standby each renewal names', () => {
    const v = vote(HELD, req({ syncStandby: null }), 9_000);
    assert.equal(v.granted, true);
    assert.equal(v.state.syncStandby, null);
  });

  it('never shortens a promise on renewal', () => {
    const v = vote(HELD, req({ leaseMs: 500 }), 9_000);
    assert.equal(v.state.promiseUntilMs, 10_000);
  });

  it('refuses a stale term and says which term is current', () => {
    const v = vote(HELD, req({ term: 2 }), 9_000);
    assert.equal(v.granted, false);
    assert.equal(v.reason, 'term 2 is stale: term 3 belongs to a');
    assert.deepEqual(v.state, HELD);
  });

  it('refuses the current term to another holder', () => {
    const v = vote(HELD, req({ holder: 'b', kind: 'elect' }), 11_000);
    assert.equal(v.granted, false);
    assert.equal(v.reason, 'term 3 already belongs to a');
  });

  it('refuses a new term to another member while its promise runs', () => {
    const v = vote(HELD, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 9_500);
    assert.equal(v.granted, false);
    assert.equal(v.reason, 'promised term 3 to a for another 500 ms');
  });

  it('grants a new term to the synchronous standby once the promise expired', () => {
    const v = vote(HELD, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 10_000);
    assert.equal(v.granted, true);
    assert.deepEqual(v.state, { term: 4, holder: 'b', promiseUntilMs: 12_000, syncStandby: null });
    assert.equal(v.reason, 'granted term 4 to b');
  });

  it('refuses an election to a member that was not the synchronous standby', () => {
    const v = vote({ ...HELD, syncStandby: null }, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 20_000);
    assert.equal(v.granted, false);
    assert.equal(v.reason, 'b was not the synchronous standby of term 3 (none was)');
  });

  it('grants a new term to the same holder without the synchronous check', () => {
    const v = vote({ ...HELD, syncStandby: null }, req({ kind: 'elect', term: 4, holder: 'a' }), 9_000);
    assert.equal(v.granted, true);
    assert.equal(v.state.term, 4);
  });

  it('learns a newer term from its holder\'s renewal once the old promise expired', () => {
    const v = vote(HELD, req({ term: 5, holder: 'b', syncStandby: 'a' }), 10_500);
    assert.equal(v.granted, true);
    assert.equal(v.reason, 'learned term 5 of b');
    assert.deepEqual(v.state, { term: 5, holder: 'b', promiseUntilMs: 12_500, syncStandby: 'a' });
  });

  it('grants only the first term without a record', () => {
    assert.equal(vote(INITIAL_VOTER_STATE, req({ kind: 'elect', term: 1, holder: 'a', syncStandby: null }), 0).granted, true);
    const v = vote(INITIAL_VOTER_STATE, req({ kind: 'elect', term: 7, holder: 'b' }), 0);
    assert.equal(v.granted, false);
    assert.equal(v.reason, 'no record of term 6; only the first term can be granted without one');
  });

  it('lets the holder release its term so that the standby need not wait for the promise', () => {
    const v = vote(HELD, req({ kind: 'release' }), 9_000);
    assert.equal(v.granted, true);
    assert.equal(v.state.promiseUntilMs, 9_000);
    assert.equal(vote(v.state, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 9_001).granted, true);
    assert.equal(vote(HELD, req({ kind: 'release', holder: 'b' }), 9_000).granted, false);
  });

  it('a member never votes its own term away while it acts as primary', () => {
    const own: VoterState = { term: 3, holder: 'a', promiseUntilMs: 0, syncStandby: 'b' };
    const acting = memberVotingState(own, 'a', 5_000, true);
    assert.equal(vote(acting, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 1e12).granted, false);
    const fenced = memberVotingState(own, 'a', 5_000, false);
    assert.equal(vote(fenced, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 4_999).granted, false);
    assert.equal(vote(fenced, req({ kind: 'elect', term: 4, holder: 'b', syncStandby: null }), 5_000).granted, true);
    assert.deepEqual(memberVotingState(HELD, 'b', 5_000, true), HELD);
  });

  it('a candidate grants nothing at or below its own term to anybody else', () => {
    const cand = memberVotingState(HELD, 'b', null, false, 4);
    assert.equal(vote(cand, req({}), 11_000).granted, false);
    assert.equal(vote(cand, req({ kind: 'elect', term: 4, holder: 'a' }), 11_000).granted, false);
    assert.equal(vote(cand, req({ term: 5, holder: 'a' }), 11_000).granted, true);
  });

  it('learns only a newer term granted to another member', () => {
    const own: VoterState = { term: 3, holder: 'a', promiseUntilMs: 0, syncStandby: 'b' };
    assert.deepEqual(learnFromRefusal(own, 'a', { term: 4, holder: 'b', promiseUntilMs: 1, syncStandby: null }, 100, LEASE), { term: 4, holder: 'b', promiseUntilMs: 2_100, syncStandby: null });
    assert.equal(learnFromRefusal(own, 'a', { term: 3, holder: 'a', promiseUntilMs: 1, syncStandby: null }, 100, LEASE), null);
    assert.equal(learnFromRefusal(own, 'a', { term: 5, holder: 'a', promiseUntilMs: 1, syncStandby: null }, 100, LEASE), null);
    assert.equal(learnFromRefusal(own, 'a', { term: 5, holder: null, promiseUntilMs: 1, syncStandby: null }, 100, LEASE), null);
  });

  it('counts a majority with the asker and ends the lease before the peers\' promises', () => {
    assert.equal(majority(1), 1);
    assert.equal(majority(2), 2);
    assert.equal(majority(3), 2);
    assert.equal(majority(5), 3);
    assert.equal(leaseEnd(1_000, LEASE, 100), 2_900);
  });
});

function obs(over: Partial<MemberObservation>): MemberObservation {
  return {
    nowMs: 5_000,
    self: 'a',
    members: ['a', 'b'],
    initialPrimary: 'a',
    voter: { term: 3, holder: 'a', promiseUntilMs: 0, syncStandby: 'b' },
    leaseUntilMs: 6_000,
    switchover: false,
    released: false,
    candidacyTerm: null,
    postgres: 'primary',
    dataWasPrimary: true,
    upstream: null,
    syncNames: 'b',
    syncClaim: 'b',
    syncClaimGranted: true,
    replicas: [{ name: 'b', state: 'streaming', syncState: 'sync' }],
    syncMissingSinceMs: null,
    syncGraceMs: 2_000,
    electionNotBeforeMs: 0,
    election: null,
    ...over,
  };
}

/** The standby b's view while a holds term 3. */
function standby(over: Partial<MemberObservation>): MemberObservation {
  return obs({
    self: 'b',
    voter: { term: 3, holder: 'a', promiseUntilMs: 6_000, syncStandby: 'b' },
    leaseUntilMs: null,
    postgres: 'standby',
    dataWasPrimary: false,
    upstream: 'a',
    syncNames: null,
    syncClaim: null,
    syncClaimGranted: false,
    replicas: [],
    ...over,
  });
}

describe('decide: creating the cluster', () => {
  it('the initial primary asks for the first term when nobody holds one', () => {
    const d = decide(obs({ voter: INITIAL_VOTER_STATE, leaseUntilMs: null, postgres: 'absent', dataWasPrimary: false }));
    assert.deepEqual(d.action, { kind: 'elect', term: 1 });
    assert.equal(d.reason, 'a asks for term 1 to create the cluster: nobody holds a term yet');
  });

  it('backs off after a refused first election', () => {
    const d = decide(obs({ voter: INITIAL_VOTER_STATE, leaseUntilMs: null, postgres: 'absent', electionNotBeforeMs: 5_300 }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a waits 300 ms before asking again for the first term');
  });

  it('the other member waits for the initial primary', () => {
    const d = decide(standby({ voter: INITIAL_VOTER_STATE, postgres: 'absent' }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'b waits for a to create the cluster');
  });

  it('the holder of the first term runs initdb', () => {
    const d = decide(obs({ voter: { term: 1, holder: 'a', promiseUntilMs: 0, syncStandby: null }, postgres: 'absent' }));
    assert.deepEqual(d.action, { kind: 'initdb' });
  });

  it('a holder of a later term without data waits for an operator', () => {
    const d = decide(obs({ postgres: 'absent' }));
    assert.equal(d.action.kind, 'wait');
    assert.match(d.reason, /an operator must restore it/);
  });

  it('the standby copies the primary when it has no data', () => {
    const d = decide(standby({ postgres: 'absent', upstream: null }));
    assert.deepEqual(d.action, { kind: 'clone', from: 'a' });
    assert.equal(d.reason, "b copies a's data to become its standby");
  });
});

describe('decide: the primary', () => {
  it('starts PostgreSQL as primary while it holds a valid lease', () => {
    const d = decide(obs({ postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'start_primary' });
    assert.equal(d.reason, 'a starts PostgreSQL as primary: it holds term 3 for another 1000 ms');
  });

  it('fences itself when its lease expired', () => {
    const d = decide(obs({ leaseUntilMs: 4_880 }));
    assert.deepEqual(d.action, { kind: 'fence' });
    assert.equal(d.reason, 'fenced a: its lease of term 3 expired 120 ms ago, so it may acknowledge no more writes');
  });

  it('does not start PostgreSQL again before a renewal is granted', () => {
    const d = decide(obs({ leaseUntilMs: 4_000, postgres: 'stopped' }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a lease of term 3 expired 1000 ms ago; renewing before it runs as primary');
  });

  it('fences a primary that has never been granted a lease for its term', () => {
    const d = decide(obs({ leaseUntilMs: null }));
    assert.deepEqual(d.action, { kind: 'fence' });
  });

  it('waits while its synchronous standby is in sync', () => {
    const d = decide(obs({}));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a is primary of term 3, lease valid for another 1000 ms, b synchronous');
  });

  it('records a standby as synchronous once PostgreSQL reports it sync', () => {
    const d = decide(obs({ syncClaim: null, syncClaimGranted: true }));
    assert.deepEqual(d.action, { kind: 'claim_sync', standby: 'b' });
  });

  it('names a streaming standby in synchronous_standby_names', () => {
    const d = decide(obs({ syncNames: null, syncClaim: null, replicas: [{ name: 'b', state: 'streaming', syncState: 'async' }] }));
    assert.deepEqual(d.action, { kind: 'require_sync', standby: 'b' });
    assert.equal(d.reason, 'a makes b its synchronous standby: it streams and has caught up');
  });

  it('does not name a standby that is still catching up', () => {
    const d = decide(obs({ syncNames: null, syncClaim: null, replicas: [{ name: 'b', state: 'catchup', syncState: 'async' }] }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a is primary of term 3, lease valid for another 1000 ms, no standby streaming: writes are acknowledged by a alone');
  });

  it('ignores replicas that are not members (a backup, pg_receivewal)', () => {
    const d = decide(obs({ syncNames: null, syncClaim: null, replicas: [{ name: 'pg_basebackup', state: 'streaming', syncState: 'async' }] }));
    assert.equal(d.action.kind, 'wait');
  });

  it('keeps waiting for a missing synchronous standby within the grace', () => {
    const d = decide(obs({ replicas: [], syncMissingSinceMs: 4_000 }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a is primary of term 3, lease valid for another 1000 ms; its synchronous standby b is not connected for 1000 ms, commits wait for it');
  });

  it('records that it has no synchronous standby once the grace is over', () => {
    const d = decide(obs({ replicas: [], syncMissingSinceMs: 3_000 }));
    assert.deepEqual(d.action, { kind: 'unclaim_sync', standby: 'b' });
    assert.equal(d.reason, 'a records that it has no synchronous standby: b has been disconnected for 2000 ms');
  });

  it('does not stop waiting for the standby before a peer recorded that it is not synchronous', () => {
    const d = decide(obs({ replicas: [], syncMissingSinceMs: 1_000, syncClaim: null, syncClaimGranted: false }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a waits for a peer to record that b is no longer synchronous before it stops waiting for it');
  });

  it('drops the standby from synchronous_standby_names once a peer recorded it', () => {
    const d = decide(obs({ replicas: [], syncMissingSinceMs: 1_000, syncClaim: null, syncClaimGranted: true }));
    assert.deepEqual(d.action, { kind: 'drop_sync', standby: 'b' });
  });

  it('never names a synchronous standby that commits do not wait for', () => {
    const d = decide(obs({ syncNames: null, syncClaim: 'b' }));
    assert.deepEqual(d.action, { kind: 'unclaim_sync', standby: 'b' });
  });

  it('a single member has nothing to synchronise with', () => {
    const d = decide(obs({ members: ['a'], syncNames: null, syncClaim: null, replicas: [] }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a is primary of term 3, lease valid for another 1000 ms, a single member');
  });

  it('never renews a released term: it fences and asks for a new one', () => {
    assert.deepEqual(decide(obs({ released: true })).action, { kind: 'fence' });
    const d = decide(obs({ released: true, postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'elect', term: 4 });
    assert.equal(d.reason, 'a asks for term 4: it released term 3 for a switchover that did not complete');
  });

  it('does nothing of its own during a switchover', () => {
    const d = decide(obs({ switchover: true, postgres: 'stopped', leaseUntilMs: 1 }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'a waits: a switchover is in progress');
  });

  it('fences a former primary when another member holds the term', () => {
    const d = decide(obs({ voter: { term: 4, holder: 'b', promiseUntilMs: 9_000, syncStandby: null }, leaseUntilMs: null }));
    assert.deepEqual(d.action, { kind: 'fence' });
    assert.equal(d.reason, 'fenced a: b holds term 4, so this former primary may acknowledge no more writes');
  });
});

describe('decide: the standby', () => {
  it('streams from the holder while the promise runs', () => {
    const d = decide(standby({}));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'b is a standby of a (term 3), promise valid for another 1000 ms');
  });

  it('asks for the next term when the lease expired and it was synchronous', () => {
    const d = decide(standby({ nowMs: 6_020 }));
    assert.deepEqual(d.action, { kind: 'elect', term: 4 });
    assert.equal(d.reason, "b asks for term 4: a's lease of term 3 expired 20 ms ago and b was its synchronous standby");
  });

  it('also asks when its own PostgreSQL is stopped (it will promote its data)', () => {
    assert.deepEqual(decide(standby({ nowMs: 6_020, postgres: 'stopped' })).action, { kind: 'elect', term: 4 });
  });

  it('never asks when it was not the synchronous standby', () => {
    const d = decide(standby({ nowMs: 6_020, voter: { term: 3, holder: 'a', promiseUntilMs: 6_000, syncStandby: null } }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, "b is a standby of a (term 3), a's lease expired but b was not its synchronous standby (none was), so it may not take over");
  });

  it('asks again for the term of an undecided election, even after a restart', () => {
    const d = decide(standby({ candidacyTerm: 4, postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'elect', term: 4 });
    assert.equal(d.reason, 'b asks again for term 4: its election is still undecided');
  });

  it('backs off after a refused election', () => {
    const d = decide(standby({ nowMs: 6_020, electionNotBeforeMs: 6_500 }));
    assert.equal(d.action.kind, 'wait');
    assert.equal(d.reason, 'b waits 480 ms before asking again for term 4');
  });

  it('promotes itself once it holds the term, and says who agreed', () => {
    const d = decide(
      standby({
        voter: { term: 4, holder: 'b', promiseUntilMs: 8_000, syncStandby: null },
        leaseUntilMs: 7_000,
        election: { term: 4, previousHolder: 'a', grantedBy: ['arbiter'] },
      }),
    );
    assert.deepEqual(d.action, { kind: 'promote' });
    assert.equal(d.reason, "promoted b: a's lease expired, b was its synchronous standby, arbiter agreed to term 4");
  });

  it('says so when the previous primary handed its term over', () => {
    const d = decide(
      standby({
        voter: { term: 4, holder: 'b', promiseUntilMs: 8_000, syncStandby: null },
        leaseUntilMs: 7_000,
        election: { term: 4, previousHolder: 'a', grantedBy: ['a', 'arbiter'], previousReleased: true },
      }),
    );
    assert.equal(d.reason, 'promoted b: a handed over its term, b was its synchronous standby, a and arbiter agreed to term 4');
  });

  it('does not promote once the lease it won has expired', () => {
    const d = decide(standby({ voter: { term: 4, holder: 'b', promiseUntilMs: 0, syncStandby: null }, leaseUntilMs: 4_000 }));
    assert.equal(d.action.kind, 'wait');
  });

  it('starts a stopped standby that won the term in recovery first, never straight as primary', () => {
    const d = decide(standby({ voter: { term: 4, holder: 'b', promiseUntilMs: 8_000, syncStandby: null }, leaseUntilMs: 7_000, postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'start_standby', upstream: null });
  });

  it('starts a stopped standby streaming from the holder', () => {
    const d = decide(standby({ postgres: 'stopped', upstream: null }));
    assert.deepEqual(d.action, { kind: 'start_standby', upstream: 'a' });
  });

  it('follows a new holder', () => {
    const d = decide(standby({ self: 'c', members: ['a', 'b', 'c'], voter: { term: 4, holder: 'b', promiseUntilMs: 9_000, syncStandby: 'c' } }));
    assert.deepEqual(d.action, { kind: 'follow', upstream: 'b' });
  });

  it('rewinds a former primary before it follows the new one', () => {
    const d = decide(obs({ voter: { term: 4, holder: 'b', promiseUntilMs: 9_000, syncStandby: null }, leaseUntilMs: null, postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'rewind', from: 'b' });
    assert.equal(d.reason, 'a rewinds its data to follow b: it last ran as primary and b holds term 4');
  });

  it('a former primary never takes over before it was rewound, even if named synchronous', () => {
    const d = decide(obs({ nowMs: 20_000, voter: { term: 4, holder: 'b', promiseUntilMs: 9_000, syncStandby: 'a' }, leaseUntilMs: null, postgres: 'stopped' }));
    assert.deepEqual(d.action, { kind: 'rewind', from: 'b' });
  });
});

describe('shouldRenew', () => {
  const base = { holds: true, startingSinceMs: null, nowMs: 10_000, startGraceMs: 5_000 };
  it('renews while PostgreSQL runs as primary', () => assert.equal(shouldRenew(base), true));
  it('renews while fenced, to get its lease back', () => assert.equal(shouldRenew({ ...base, startingSinceMs: null }), true));
  it('renews within the start grace', () => assert.equal(shouldRenew({ ...base, startingSinceMs: 6_000 }), true));
  it('lets the lease run out when PostgreSQL does not come up', () => assert.equal(shouldRenew({ ...base, startingSinceMs: 5_000 }), false));
  it('never renews a term it does not hold', () => assert.equal(shouldRenew({ ...base, holds: false }), false));
});
