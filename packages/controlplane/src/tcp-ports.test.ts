import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from './config.js';

test('the platform TCP port range comes from --tcp-ports or LANES_TCP_PORTS, 30000-30999 by default', () => {
  assert.deepEqual(parseConfig(['--home', '/tmp/x'], {}).tcpPortRange, { first: 30_000, last: 30_999 });
  assert.deepEqual(parseConfig(['--home', '/tmp/x', '--tcp-ports', '40000-40009'], {}).tcpPortRange, { first: 40_000, last: 40_009 });
  assert.deepEqual(parseConfig(['--home', '/tmp/x'], { LANES_TCP_PORTS: '5000-5000' }).tcpPortRange, { first: 5_000, last: 5_000 });
});

test('a bad TCP port range is refused with one line naming it', () => {
  for (const bad of ['30000', '3-2', '0-10', '60000-70000', 'a-b']) {
    assert.throws(() => parseConfig(['--home', '/tmp/x', '--tcp-ports', bad], {}), { name: 'InputError', message: /^tcpPorts: / }, bad);
  }
});
