#!/usr/bin/env node
// High availability figures:
//  1. zone loss → every instance rescheduled into the surviving zones and healthy
//     (double lane, examples/hello: web x2, worker x2), median of 5 outages;
//  2. a rolling deploy of 4 web instances under wrk at 64 connections: its duration and the
//     failed requests during it.
// Anchors to quote beside them: Kubernetes evicts pods from a lost node after 300 s by
// default (the taint tolerationSeconds); ECS replaces tasks in minutes.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootPlatform, hasWrk, median, root, run } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 5);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(50);
  }
}

const p = await bootPlatform('a,b,c');
const app = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-ha-'));
cpSync(path.join(root, 'examples', 'hello'), app, { recursive: true });
try {
  await run(p.env, ['tenant', 'create', 'bench']);
  await run(p.env, ['env', 'create', 'bench/ha', '--lane', 'double']);
  await run(p.env, ['deploy', 'bench/ha', app]);
  const status = () => p.api('/v1/tenants/bench/environments/ha');
  const settled = async (live) => {
    const s = await status();
    const running = s.instances.filter((i) => i.desired === 'running' && live.includes(i.zone));
    const asked = s.services.reduce((n, x) => n + x.effectiveInstances, 0);
    return running.length === asked && running.every((i) => i.healthy) && s.instances.length === asked ? s : false;
  };
  const times = [];
  const zones = ['a', 'b', 'c'];
  for (let i = 0; i < runs; i++) {
    const s = await waitFor(() => settled(zones));
    const lost = s.instances.find((x) => x.service === 'web').zone;
    const t0 = performance.now();
    await run(p.env, ['zone', 'down', lost]);
    await waitFor(async () => {
      const st = await status();
      const live = st.instances.filter((x) => x.desired === 'running' && x.zone !== lost);
      const asked = st.services.reduce((n, x) => n + x.effectiveInstances, 0);
      return live.length >= asked && live.every((x) => x.healthy);
    });
    times.push(performance.now() - t0);
    await run(p.env, ['zone', 'up', lost]);
  }
  console.log(`bench/ha: zone loss → all instances rescheduled and healthy (double lane, 4 instances, ${runs} outages)`);
  console.log(`  median ${(median(times) / 1000).toFixed(2)} s, min ${(Math.min(...times) / 1000).toFixed(2)} s, max ${(Math.max(...times) / 1000).toFixed(2)} s`);
  console.log('  anchors: Kubernetes evicts pods from a lost node after 300 s by default; ECS replaces tasks in minutes');

  if (!hasWrk()) {
    console.log('bench/ha: wrk not installed: rolling-deploy figures skipped');
  } else {
    await run(p.env, ['env', 'create', 'bench/roll']);
    await run(p.env, ['deploy', 'bench/roll', app]);
    await run(p.env, ['scale', 'bench/roll', 'web', '4']);
    await waitFor(async () => {
      const s = await p.api('/v1/tenants/bench/environments/roll');
      const web = s.instances.filter((x) => x.service === 'web');
      return web.length === 4 && web.every((x) => x.healthy);
    });
    const wrkOut = new Promise((resolve, reject) => {
      execFile('wrk', ['-t', '2', '-c', '64', '-d', '20s', '-H', 'Host: prod.bench.lanes.localhost'.replace('prod', 'roll'), `http://127.0.0.1:${p.httpPort}/`], (err, out) => (err ? reject(err) : resolve(out)));
    });
    await sleep(3000);
    writeFileSync(path.join(app, 'VERSION'), 'rolled\n');
    const t0 = performance.now();
    await run(p.env, ['deploy', 'bench/roll', app]);
    const deployMs = performance.now() - t0;
    const out = await wrkOut;
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = non2xx + (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
    console.log(`bench/ha: rolling deploy of 4 web instances under wrk -c 64 (20 s window around it)`);
    console.log(`  deploy → all new instances healthy and old retired: ${(deployMs / 1000).toFixed(2)} s; failed requests ${errors} of ${total} (non-2xx ${non2xx}, socket errors ${sock ? sock.slice(1).join("/") : "0/0/0/0"} connect/read/write/timeout)`);
  }
} finally {
  rmSync(app, { recursive: true, force: true });
  await p.stop();
}
