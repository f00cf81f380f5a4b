#!/usr/bin/env node
// The gateway's req/s through an environment's namespace link vs. on loopback, in the same
// run: the same app and load, once with isolation netns (instance in its own namespace
// behind the environment bridge) and once with isolation none (instance on 127.0.0.1).
// Needs root, iproute2, nftables and wrk.
import path from 'node:path';
import { bootPlatform, hasWrk, root, run, wrk } from './lib.mjs';

if (!hasWrk()) {
  console.error('bench/gateway-netns: wrk is not installed (apt-get install wrk)');
  process.exit(1);
}
const durationS = Number(process.env.BENCH_SECONDS ?? 10);

async function measure(isolation) {
  const p = await bootPlatform('a', isolation);
  try {
    await run(p.env, ['tenant', 'create', 'bench']);
    await run(p.env, ['env', 'create', 'bench/prod']);
    await run(p.env, ['deploy', 'bench/prod', path.join(root, 'examples', 'hello')]);
    await run(p.env, ['scale', 'bench/prod', 'web', '1']);
    for (let i = 0; i < 100; i++) {
      const s = await p.api('/v1/tenants/bench/environments/prod');
      if (s.instances.filter((x) => x.service === 'web').length === 1 && s.instances.some((x) => x.service === 'web' && x.healthy)) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    const url = `http://127.0.0.1:${p.httpPort}/`;
    const host = 'prod.bench.lanes.localhost';
    wrk(url, { host, durationS: 2 });
    return wrk(url, { host, durationS });
  } finally {
    await p.stop();
  }
}

const lo = await measure('none');
const ns = await measure('netns');
const row = (name, r) => `${name.padEnd(26)} ${r.rps.toFixed(0).padStart(9)} ${r.p50Ms.toFixed(2).padStart(9)} ${r.p99Ms.toFixed(2).padStart(9)} ${String(r.errors).padStart(7)}`;
console.log(`bench/gateway-netns: one hello instance behind the gateway, wrk -c 64 -t 2 -d ${durationS}s, ${new Date().toISOString()}`);
console.log(`${'path to the instance'.padEnd(26)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'errors'.padStart(7)}`);
console.log(row('loopback (isolation none)', lo));
console.log(row('namespace link (netns)', ns));
console.log(`ratio netns/loopback: req/s ${(ns.rps / lo.rps).toFixed(2)}, p50 ${(ns.p50Ms / lo.p50Ms).toFixed(2)}x, p99 ${(ns.p99Ms / lo.p99Ms).toFixed(2)}x`);
