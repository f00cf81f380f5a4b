import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatus } from './format.js';
import { decodeEnvironmentStatus } from './model.js';

test('status names the platform TCP port of each tcp service', () => {
  const status = decodeEnvironmentStatus({
    tenant: 'acme',
    name: 'prod',
    lane: 'single',
    phase: 'active',
    url: 'http://prod.acme.lanes.localhost:8080/',
    release: null,
    services: [
      { name: 'broker', instances: 2, effectiveInstances: 2, http: false, path: null, ready: 2, tcp: { address: '127.0.0.1', port: 30001 } },
      { name: 'web', instances: 1, effectiveInstances: 1, http: true, path: null, ready: 1, tcp: null },
      { name: 'old', instances: 1, effectiveInstances: 1, http: false, path: null, ready: 1 },
    ],
    instances: [],
    rollout: null,
    conditions: [],
  });
  assert.deepEqual(status.services.map((s) => s.tcp), [{ address: '127.0.0.1', port: 30001 }, null, null]);
  const lines = renderStatus(status, null);
  assert.deepEqual(lines.slice(0, 4), [
    'environment  acme/prod (lane single, active)',
    'url          http://prod.acme.lanes.localhost:8080/',
    'release      none',
    'tcp          127.0.0.1:30001 → broker',
  ]);
});
