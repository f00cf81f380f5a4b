#!/usr/bin/env node
// Provisioning cost of private networks: time to create 1 and 50 environments (bridge,
// host nftables tables, one instance namespace each with its firewall table) and to tear
// them down. Needs root, iproute2 and nftables; uses the prefix lanes-x and 10.86.0.0/16 so
// a running Lanes is not touched. Build first (npx tsc -b packages/network).
import { NetworkManager, detectIsolation, instanceAddress, planEnvironment } from '@lanes/network';

const isolation = await detectIsolation();
if (isolation.mode !== 'netns') {
  console.error(`bench/network: isolation unavailable: ${isolation.reason}`);
  process.exit(1);
}
const PREFIX = 'lanes-x';
const manager = new NetworkManager({ prefix: PREFIX });
await manager.cleanupAll();

async function round(count) {
  const plans = Array.from({ length: count }, (_, i) => planEnvironment('10.86.0.0/16', i + 1, ['a', 'b', 'c'], { prefix: PREFIX }));
  const perEnv = [];
  const t0 = performance.now();
  for (const plan of plans) {
    const t = performance.now();
    await manager.ensureEnvironment(plan);
    const address = instanceAddress(plan, 'a', 0);
    await manager.addInstance(plan, { id: 'web-1', zone: 'a', address, service: 'web' });
    await manager.setSecurityGroups(plan, [{ service: 'web', addresses: [address], ports: [8080], allowFrom: null, http: true }]);
    perEnv.push(performance.now() - t);
  }
  const up = performance.now() - t0;
  const t1 = performance.now();
  for (const plan of plans) await manager.removeEnvironment(plan);
  const down = performance.now() - t1;
  perEnv.sort((a, b) => a - b);
  const p = (q) => perEnv[Math.min(perEnv.length - 1, Math.floor(q * perEnv.length))].toFixed(0);
  console.log(`${String(count).padStart(3)} environment(s): provision ${(up / 1000).toFixed(2)} s (per environment p50 ${p(0.5)} ms, p99 ${p(0.99)} ms), teardown ${(down / 1000).toFixed(2)} s (${(down / count).toFixed(0)} ms each)`);
}

try {
  await round(1);
  await round(50);
} finally {
  const left = await manager.cleanupAll();
  const n = left.namespaces.length + left.links.length + left.tables.length;
  console.log(`cleanupAll removed ${n} objects (the shared host tables; no namespace or link should be left: ${left.namespaces.length + left.links.length})`);
}
