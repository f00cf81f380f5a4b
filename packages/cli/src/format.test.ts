import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderEgress, renderEvent, renderLogLine, renderReleases, renderStatus, renderZones, rolloutProgress, table } from './format.js';
import { decodeEnvironmentStatus, decodeRelease, decodeZone } from './model.js';

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

test('status of an environment with a private network shows its isolation, subnet, egress address and egress', () => {
  const isolated = decodeEnvironmentStatus({
    tenant: 'acme',
    name: 'prod',
    lane: 'single',
    phase: 'active',
    url: 'http://prod.acme.lanes.localhost:8080/',
    release: null,
    isolation: 'netns',
    network: { subnet: '10.88.3.0/24', egressAddress: '10.88.255.3', egress: [{ cidr: '0.0.0.0/0', port: 443 }, { cidr: '10.1.0.0/16', port: null }] },
    services: [],
    instances: [],
  });
  assert.deepEqual(renderStatus(isolated, null).slice(0, 7), [
    'environment     acme/prod (lane single, active)',
    'url             http://prod.acme.lanes.localhost:8080/',
    'release         none',
    'isolation       netns',
    'network         10.88.3.0/24',
    'egress address  10.88.255.3',
    'egress          0.0.0.0/0:443, 10.1.0.0/16',
  ]);
  const shared = decodeEnvironmentStatus({ tenant: 'acme', name: 'dev', release: null, isolation: 'none', network: null });
  assert.deepEqual(renderStatus(shared, null).slice(0, 4), ['environment  acme/dev (lane , )', 'url          -', 'release      none', 'isolation    none']);
});

test('egress renders as any, nothing, or the list', () => {
  assert.equal(renderEgress(null), 'any destination outside the platform');
  assert.equal(renderEgress([]), 'nothing');
  assert.equal(renderEgress([{ cidr: '192.0.2.0/24', port: 53 }]), '192.0.2.0/24:53');
});

test('zone list shows each zone with its state, address and when it last reported', () => {
  const now = new Date('2025-01-01T00:10:00.000Z');
  const zones = [
    { name: 'a', state: 'ready', address: '127.0.0.1', lastSeenAt: '2025-01-01T00:09:59.000Z' },
    { name: 'b', state: 'down', address: '127.0.0.1', lastSeenAt: '2025-01-01T00:05:00.000Z' },
    { name: 'c', state: 'unavailable', address: null, lastSeenAt: null },
  ].map((z) => decodeZone(z));
  assert.deepEqual(renderZones(zones, now), [
    'ZONE  STATE        ADDRESS    LAST SEEN',
    'a     ready        127.0.0.1  1s ago',
    'b     down         127.0.0.1  5m ago',
    'c     unavailable  -          never',
  ]);
  assert.deepEqual(renderZones([], now), ['no zones']);
});
