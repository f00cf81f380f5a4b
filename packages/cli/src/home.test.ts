import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeHttpError, describeNetworkError } from './api.js';
import { decodeContext, decodeDownZones, instancesFromAgentState } from './home.js';

test("instance pids are read from the agent's state file format", () => {
  const state = {
    version: 1,
    desired: [{ id: 'web-1', argv: ['node'], pid: 5 }],
    instances: [
      { id: 'web-1', pid: 4321, startTime: '998877', port: 4000 },
      { id: 'web-2', pid: null, startTime: null },
      { id: 'web-3', pid: 'nonsense' },
    ],
  };
  assert.deepEqual(instancesFromAgentState(state), [{ pid: 4321, startTime: '998877' }]);
});

test('a damaged agent state file yields no pids instead of failing', () => {
  for (const v of [null, 42, 'x', [], { instances: 'x' }, { instances: [null, 1, 'a'] }]) assert.deepEqual(instancesFromAgentState(v), []);
});

test('context.json is decoded leniently and needs a launcher pid', () => {
  assert.equal(decodeContext({ apiUrl: 'http://x' }), null);
  const ctx = decodeContext({ launcherPid: 77, apiUrl: 'http://127.0.0.1:7070', components: { controlplane: 78, agents: { a: 79, b: 'x' } } });
  assert.ok(ctx);
  assert.equal(ctx.state, 'ready');
  assert.deepEqual(ctx.components, { controlplane: 78, gateway: null, dns: null, agents: { a: 79 } });
  assert.equal(ctx.isolation, null, 'a context.json from before isolation says nothing about it');
  assert.deepEqual(ctx.downZones, []);
  assert.equal(decodeContext({ launcherPid: 77, isolation: 'netns', networkCidr: '10.88.0.0/16' })?.isolation, 'netns');
});

test('frozen zones in context.json are read leniently: bad zones and pids are dropped', () => {
  const v = [
    { zone: 'b', since: 't', supervisors: [{ pid: 40, startTime: '9' }, { pid: 'x' }], instances: [{ pid: 41 }, null, { pid: 1 }] },
    { zone: 'b', supervisors: [{ pid: 50 }] },
    { zone: 'B!' },
    'c',
    { zone: 'c' },
  ];
  assert.deepEqual(decodeDownZones(v), [
    { zone: 'b', since: 't', supervisors: [{ pid: 40, startTime: '9' }], instances: [{ pid: 41, startTime: null }] },
    { zone: 'c', since: '', supervisors: [], instances: [] },
  ]);
  assert.deepEqual(decodeDownZones({ b: {} }), []);
});

test('problem+json is rendered by its detail; other answers by status and body', () => {
  const problem = JSON.stringify({ title: 'Bad Request', status: 400, detail: 'name: "Acme" is not a valid name' });
  assert.equal(describeHttpError(400, 'Bad Request', 'application/problem+json', problem), 'name: "Acme" is not a valid name');
  assert.equal(describeHttpError(502, 'Bad Gateway', 'text/html', '<h1>bad\ngateway</h1>'), 'the control plane answered 502 Bad Gateway: <h1>bad gateway</h1>');
  assert.match(describeHttpError(401, 'Unauthorized', 'application/problem+json', JSON.stringify({ detail: 'token not valid' })), /^token not valid \(401\); check/);
});

test('network errors name the URL and the reason', () => {
  const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
  assert.equal(describeNetworkError('http://127.0.0.1:7070', refused, 30_000), 'cannot reach the control plane at http://127.0.0.1:7070: connection refused');
  const timeout = new DOMException('timed out', 'TimeoutError');
  assert.equal(describeNetworkError('http://x', timeout, 30_000), 'cannot reach the control plane at http://x: no answer within 30s');
});
