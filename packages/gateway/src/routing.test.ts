import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Endpoint } from '@lanes/spec';
import { normalizeHost, prefixMatches, RoutingState, validateTable } from './routing.js';
import { table, vhost } from './harness.js';

const ep = (instance: string, port: number): Endpoint => ({ instance, zone: 'a', address: '127.0.0.1', port });

describe('routing core', () => {
  it('normalizes hosts: lower case, port and trailing dot stripped, IPv6 kept in brackets', () => {
    assert.equal(normalizeHost('Prod.Acme.Example.COM:8080'), 'prod.acme.example.com');
    assert.equal(normalizeHost('prod.acme.example.com.'), 'prod.acme.example.com');
    assert.equal(normalizeHost('[::1]:8080'), '[::1]');
    assert.equal(normalizeHost('plain'), 'plain');
  });

  it('matches path prefixes by whole segments', () => {
    assert.equal(prefixMatches('/', '/anything?x=1'), true);
    assert.equal(prefixMatches('/api/', '/api/x'), true);
    assert.equal(prefixMatches('/api/', '/api'), true);
    assert.equal(prefixMatches('/api/', '/api?q=1'), true);
    assert.equal(prefixMatches('/api/', '/apix'), false);
    assert.equal(prefixMatches('/api', '/api'), true);
    assert.equal(prefixMatches('/api', '/api/x'), true);
    assert.equal(prefixMatches('/api', '/api?q'), true);
    assert.equal(prefixMatches('/api', '/apix'), false);
    assert.equal(prefixMatches('/api/v1/', '/api/v'), false);
  });

  it('keeps an ejection across tables for the same instance, not for another on a recycled address and port', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ endpoints: [ep('old', 1001), ep('w2', 1002)] }])]));
    state.eject(ep('old', 1001), 60_000);
    assert.equal(state.isEjected(ep('old', 1001)), true);
    state.replace(table(2, [vhost('h.test', [{ endpoints: [ep('old', 1001), ep('w2', 1002)] }])]));
    assert.equal(state.isEjected(ep('old', 1001)), true, 'the same instance stays ejected');
    state.replace(table(3, [vhost('h.test', [{ endpoints: [ep('new', 1001), ep('w2', 1002)] }])]));
    assert.equal(state.isEjected(ep('new', 1001)), false, 'a new instance on the same address:port starts afresh');
  });

  it('finds the virtual host whatever the case or port of the Host header', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('prod.acme.lanes.test', [{ endpoints: [ep('w1', 1001)] }])]));
    assert.equal(state.match('PROD.acme.lanes.test:8080', '/')?.vhost.tenant, 'acme');
    assert.equal(state.match('prod.acme.lanes.test', '/x')?.route.service, 'web');
    assert.equal(state.match('other.acme.lanes.test', '/'), null);
    assert.equal(state.lookupHost('other.acme.lanes.test'), null);
  });

  it('lets the longest path prefix win', () => {
    const state = new RoutingState();
    state.replace(
      table(1, [
        vhost('h.test', [
          { pathPrefix: '/', service: 'web', endpoints: [ep('w1', 1001)] },
          { pathPrefix: '/api/', service: 'api', endpoints: [ep('a1', 1002)] },
          { pathPrefix: '/api/admin', service: 'admin', endpoints: [ep('x1', 1003)] },
        ]),
      ]),
    );
    assert.equal(state.match('h.test', '/')?.route.service, 'web');
    assert.equal(state.match('h.test', '/api')?.route.service, 'api');
    assert.equal(state.match('h.test', '/api/users?id=1')?.route.service, 'api');
    assert.equal(state.match('h.test', '/api/admin/x')?.route.service, 'admin');
    assert.equal(state.match('h.test', '/apiary')?.route.service, 'web');
  });

  it('has no route when no prefix serves the path', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ pathPrefix: '/api/', endpoints: [ep('a1', 1)] }])]));
    assert.equal(state.match('h.test', '/other'), null);
    assert.notEqual(state.lookupHost('h.test'), null);
  });

  it('round-robins over the endpoints of a route', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ endpoints: [ep('w1', 1001), ep('w2', 1002), ep('w3', 1003)] }])]));
    const m = state.match('h.test', '/');
    assert.ok(m);
    const picked = Array.from({ length: 6 }, () => state.pick(m)?.endpoint.instance);
    assert.deepEqual(picked, ['w1', 'w2', 'w3', 'w1', 'w2', 'w3']);
  });

  it('skips an ejected endpoint until its period is over, then uses it again', () => {
    let now = 1_000;
    const state = new RoutingState({ now: () => now });
    state.replace(table(1, [vhost('h.test', [{ endpoints: [ep('w1', 1001), ep('w2', 1002)] }])]));
    const m = state.match('h.test', '/');
    assert.ok(m);
    state.eject(ep('w1', 1001), 5_000);
    const during = Array.from({ length: 4 }, () => state.pick(m)?.endpoint.instance);
    assert.deepEqual(during, ['w2', 'w2', 'w2', 'w2']);
    now += 5_001;
    const after = new Set(Array.from({ length: 4 }, () => state.pick(m)?.endpoint.instance));
    assert.deepEqual([...after].sort(), ['w1', 'w2']);
  });

  it('still tries an endpoint when every one is ejected', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ endpoints: [ep('w1', 1001), ep('w2', 1002)] }])]));
    const m = state.match('h.test', '/');
    assert.ok(m);
    state.eject(ep('w1', 1001));
    state.eject(ep('w2', 1002));
    assert.ok(state.pick(m));
  });

  it('avoids the endpoint that just failed when another exists', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ endpoints: [ep('w1', 1001), ep('w2', 1002)] }])]));
    const m = state.match('h.test', '/');
    assert.ok(m);
    for (let i = 0; i < 4; i++) assert.equal(state.pick(m, '127.0.0.1:1001')?.endpoint.instance, 'w2');
  });

  it('returns no endpoint for a route without endpoints', () => {
    const state = new RoutingState();
    state.replace(table(1, [vhost('h.test', [{ endpoints: [] }])]));
    const m = state.match('h.test', '/');
    assert.ok(m);
    assert.equal(state.pick(m), null);
  });

  it('rejects an invalid table with a one-line error naming the field, keeping the last good one', () => {
    const state = new RoutingState();
    const good = table(3, [vhost('h.test', [{ endpoints: [ep('w1', 1001)] }])]);
    state.replace(good);
    const cases: Array<[unknown, RegExp]> = [
      [null, /^table: null is not an object/],
      [{ ...good, revision: -1 }, /^table\.revision: -1 /],
      [{ ...good, hosts: 'x' }, /^table\.hosts: "x" is not an array/],
      [table(4, [vhost('H_bad host', [])]), /^table\.hosts\[0\]\.host: "H_bad host" /],
      [table(4, [vhost('h.test', [{ endpoints: [ep('w1', 70_000)] }])]), /^table\.hosts\[0\]\.routes\[0\]\.endpoints\[0\]\.port: 70000 is not a port/],
      [table(4, [vhost('h.test', [{ endpoints: [{ ...ep('w1', 1), address: 'a b' }] }])]), /endpoints\[0\]\.address: "a b" is not an IP/],
      [table(4, [vhost('h.test', [{ pathPrefix: 'api', endpoints: [] }])]), /routes\[0\]\.pathPrefix: "api" is not a path prefix/],
      [table(4, [vhost('h.test', []), vhost('h.test', [])]), /^table\.hosts\[1\]\.host: "h\.test" appears twice/],
      [table(4, [vhost('h.test', [], 'Bad')]), /^table\.hosts\[0\]\.tenant: "Bad" is not a valid name/],
    ];
    for (const [candidate, re] of cases) {
      assert.throws(() => state.replace(candidate), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, re);
        assert.equal(err.message.includes('\n'), false);
        return true;
      });
      assert.equal(state.revision, 3);
      assert.equal(state.match('h.test', '/')?.route.endpoints[0]?.port, 1001);
    }
  });

  it('keeps only the known fields and freezes the validated table', () => {
    const t = validateTable({ ...table(1, [vhost('h.test', [{ endpoints: [ep('w1', 1)] }])]), extra: 'x' });
    assert.equal('extra' in t, false);
    assert.equal(Object.isFrozen(t), true);
    assert.equal(Object.isFrozen(t.hosts[0]?.routes[0]?.endpoints[0]), true);
  });
});
