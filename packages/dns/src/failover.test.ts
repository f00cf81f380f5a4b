import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { choose, FailoverState, INITIAL_HEALTH, observe, targetKey } from './failover.js';
import { check, DOMAIN, failoverRecord } from './test-helpers.js';

const c = check('http://127.0.0.1:9/', { healthyThreshold: 2, unhealthyThreshold: 3 });

describe('failover state', () => {
  it('turns unhealthy only after unhealthyThreshold failures in a row, and healthy after healthyThreshold successes', () => {
    let h = INITIAL_HEALTH;
    assert.equal(h.healthy, true);
    h = observe(h, false, c, 'HTTP 503');
    h = observe(h, false, c, 'HTTP 503');
    assert.equal(h.healthy, true, 'two failures of three');
    h = observe(h, true, c, 'HTTP 200');
    assert.equal(h.failures, 0, 'a success resets the failure count');
    for (let i = 0; i < 3; i++) h = observe(h, false, c, 'timed out');
    assert.equal(h.healthy, false);
    assert.equal(h.last, 'timed out');
    h = observe(h, true, c, 'HTTP 204');
    assert.equal(h.healthy, false, 'one success of two');
    h = observe(h, true, c, 'HTTP 204');
    assert.equal(h.healthy, true);
  });

  it('answers the primary while healthy, the secondary while only it is healthy, and the primary when both are down (fail open)', () => {
    const r = failoverRecord(`www.${DOMAIN}`);
    assert.equal(choose(r, true, true).role, 'primary');
    assert.equal(choose(r, true, false).role, 'primary');
    const s = choose(r, false, true);
    assert.equal(s.role, 'secondary');
    assert.equal(s.target.address, '198.51.100.20');
    assert.match(s.reason, /primary 192\.0\.2\.10 is unhealthy and secondary 198\.51\.100\.20 is healthy/);
    const both = choose(r, false, false);
    assert.equal(both.role, 'primary');
    assert.match(both.reason, /both unhealthy; answering the primary \(fail open\)/);
  });

  it('switches a record on reported results, keeps history for unchanged checks and drops late results', () => {
    const secondaryCheck = check('http://127.0.0.1:10/', { unhealthyThreshold: 1, healthyThreshold: 1 });
    const r = failoverRecord(`www.${DOMAIN}`, { primary: { address: '192.0.2.10', check: c }, secondary: { address: '198.51.100.20', check: secondaryCheck } });
    const st = new FailoverState();
    st.setRecords([r]);
    const pk = targetKey(r, 'primary');
    const sk = targetKey(r, 'secondary');
    for (let i = 0; i < 2; i++) assert.equal(st.report(r.name, 'primary', pk, false, 'HTTP 500')?.after.role, 'primary');
    const t = st.report(r.name, 'primary', pk, false, 'HTTP 500');
    assert.ok(t);
    assert.equal(t.flipped, true);
    assert.equal(t.before.role, 'primary');
    assert.equal(t.after.role, 'secondary');
    // The secondary fails too: fail open to the primary.
    assert.equal(st.report(r.name, 'secondary', sk, false, 'refused')?.after.reason.includes('fail open'), true);
    // The same record again (a new zone with the same checks) keeps the history.
    st.setRecords([{ ...r, ttl: 99 }]);
    assert.equal(st.health(r, 'primary').healthy, false);
    // A changed check starts over, healthy; a result for the old check is dropped.
    const changed = { ...r, primary: { address: '192.0.2.11', check: c } };
    st.setRecords([changed]);
    assert.equal(st.health(changed, 'primary').healthy, true);
    assert.equal(st.report(r.name, 'primary', pk, false, 'late'), null);
    st.setRecords([]);
    assert.equal(st.report(r.name, 'secondary', sk, true, 'late'), null);
  });
});
