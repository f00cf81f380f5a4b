import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderEvent, renderLogLine, renderReleases, renderStatus, rolloutProgress, table } from './format.js';
import { decodeEnvironmentStatus, decodeRelease } from './model.js';

const RELEASE_ID = 'a1b2c3d4e5f6' + '0'.repeat(52);

const status = decodeEnvironmentStatus({
  tenant: 'acme',
  name: 'prod',
  lane: 'double',
  phase: 'active',
  host: 'prod.acme.lanes.localhost',
  url: 'http://prod.acme.lanes.localhost:8080/',
  release: RELEASE_ID,
  createdAt: '2025-01-01T00:00:00.000Z',
  services: [
    { name: 'web', instances: 1, effectiveInstances: 2, http: true, path: '/', ready: 1 },
    { name: 'worker', instances: 1, effectiveInstances: 1, http: false, path: null, ready: 1 },
  ],
  instances: [
    { id: 'web-2', service: 'web', release: RELEASE_ID, zone: 'b', desired: 'running', state: 'starting', healthy: false, pid: 4242, address: '127.0.0.1', port: 41001, restarts: 0, message: 'waiting for health', lastExitCode: null },
    { id: 'web-1', service: 'web', release: RELEASE_ID, zone: 'a', desired: 'running', state: 'running', healthy: true, pid: 123, address: '127.0.0.1', port: 41000, restarts: 12, message: '', lastExitCode: null },
    { id: 'worker-1', service: 'worker', release: RELEASE_ID, zone: 'a', desired: 'running', state: 'running', healthy: true, pid: 99999, address: '127.0.0.1', port: null, restarts: 0, message: '', lastExitCode: null },
  ],
  rollout: { release: RELEASE_ID, state: 'progressing', message: '1 of 2 web instances healthy' },
  conditions: [{ type: 'Ready', status: 'False', reason: 'RolloutProgressing', message: 'web: 1/2 healthy', time: '2025-01-01T00:00:01.000Z' }],
});

const release = decodeRelease({
  id: RELEASE_ID,
  version: 3,
  name: 'hello',
  status: 'deploying',
  createdAt: '2025-01-01T00:00:00.000Z',
  services: [{ name: 'web', instances: 1, http: true, path: '/' }],
});

test('table aligns every column to its widest cell, without trailing spaces', () => {
  assert.deepEqual(table(['A', 'LONGER', 'C'], [['wide-value', 'x', 'end'], ['y', '', '']]), [
    'A           LONGER  C',
    'wide-value  x       end',
    'y',
  ]);
});

test('status shows the environment, release, services and instances in aligned columns', () => {
  const expected = [
    'environment  acme/prod (lane double, active)',
    'url          http://prod.acme.lanes.localhost:8080/',
    'release      a1b2c3d4e5f6 (version 3, hello)',
    'rollout      progressing: 1 of 2 web instances healthy',
    'ready        no (web: 1/2 healthy)',
    '',
    'SERVICE  INSTANCES    READY  HTTP  PATH',
    'web      2 (asked 1)  1/2    yes   /',
    'worker   1            1/1    no    -',
    '',
    'INSTANCE  SERVICE  ZONE  PID    ADDRESS          STATE     HEALTHY  RESTARTS  MESSAGE',
    'web-1     web      a     123    127.0.0.1:41000  running   yes      12',
    'web-2     web      b     4242   127.0.0.1:41001  starting  no       0         waiting for health',
    'worker-1  worker   a     99999  127.0.0.1        running   yes      0',
  ];
  assert.deepEqual(renderStatus(status, release), expected);
});

test('status of an empty environment says so', () => {
  const empty = decodeEnvironmentStatus({ tenant: 'acme', name: 'dev', lane: 'single', phase: 'active', url: '', release: null, services: [], instances: [], rollout: null, conditions: [] });
  assert.deepEqual(renderStatus(empty, null), ['environment  acme/dev (lane single, active)', 'url          -', 'release      none', '', 'no services', '', 'no instances']);
});

test('rollout progress is one line per service', () => {
  assert.deepEqual(rolloutProgress(status), ['web: 1/2 healthy', 'worker: 1/1 healthy']);
});

test('releases are listed newest first with short ids', () => {
  const older = decodeRelease({ id: 'f'.repeat(64), version: 2, name: 'hello', status: 'superseded', createdAt: 'x', services: [] });
  const lines = renderReleases([older, release]);
  assert.equal(lines[0], 'VERSION  RELEASE       NAME   STATUS      CREATED                   SERVICES');
  assert.equal(lines[1], '3        a1b2c3d4e5f6  hello  deploying   2025-01-01T00:00:00.000Z  web×1');
  assert.equal(lines[2], '2        ffffffffffff  hello  superseded  x                         -');
});

test('log lines name the instance and mark stderr', () => {
  assert.equal(renderLogLine({ time: null, instance: 'web-1', service: 'web', zone: 'a', stream: 'stdout', line: 'listening' }), 'web-1 | listening');
  assert.equal(renderLogLine({ time: null, instance: 'web-1', service: 'web', zone: 'a', stream: 'stderr', line: 'oops' }), 'web-1 | [stderr] oops');
});

test('events have fixed-width columns', () => {
  const line = renderEvent({ id: '1', time: '2025-01-01T00:00:00.000Z', tenant: 'acme', environment: 'prod', reason: 'Scaled', object: 'acme/prod/web', message: 'web: 1 → 2' });
  assert.equal(line, `2025-01-01T00:00:00.000Z  ${'acme/prod/web'.padEnd(32)}  ${'Scaled'.padEnd(20)}  web: 1 → 2`);
});

test('an answer missing a field the CLI relies on is reported with its path', () => {
  assert.throws(() => decodeEnvironmentStatus({ tenant: 'acme', name: 'prod', instances: [{ id: 'x' }] }), {
    message: 'unexpected answer from the control plane: environment.instances[0].state should be a string',
  });
});
