#!/usr/bin/env node
// Gateway throughput and latency for a small response at 64 connections, against the same
// requests sent straight to an instance, in the same run. Needs wrk (Debian: apt-get install wrk).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootPlatform, freePort, hasWrk, run, root, wrk } from './lib.mjs';

function hasHaproxy() {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** HAProxy in front of the same instance: the peer a user would otherwise put there. */
async function startHaproxy(address, port) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-haproxy-'));
  const listen = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global', '  nbthread 1', 'defaults', '  mode http', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s', '  option http-keep-alive',
    'frontend fe', `  bind 127.0.0.1:${listen}`, '  default_backend be',
    'backend be', '  option forwardfor', `  server s1 ${address}:${port}`, '',
  ].join('\n'));
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  return { url: `http://127.0.0.1:${listen}/`, stop() { proc.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); } };
}

if (!hasWrk()) {
  console.error('bench/gateway: wrk is not installed (apt-get install wrk)');
  process.exit(1);
}
const durationS = Number(process.env.BENCH_SECONDS ?? 10);
const p = await bootPlatform('a');
try {
  await run(p.env, ['tenant', 'create', 'bench']);
  await run(p.env, ['env', 'create', 'bench/prod']);
  await run(p.env, ['deploy', 'bench/prod', path.join(root, 'examples', 'hello')]);
  await run(p.env, ['scale', 'bench/prod', 'web', '1']);
  let s;
  for (let i = 0; i < 100; i++) {
    s = await p.api('/v1/tenants/bench/environments/prod');
    const web = s.instances.filter((x) => x.service === 'web' && x.desired === 'running');
    if (web.length === 1 && web[0].healthy && s.instances.filter((x) => x.service === 'web').length === 1) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  const inst = s.instances.find((x) => x.service === 'web' && x.desired === 'running');
  const direct = `http://${inst.address}:${inst.port}/`;
  const host = 'prod.bench.lanes.localhost';
  wrk(direct, { durationS: 2 });
  wrk(`http://127.0.0.1:${p.httpPort}/`, { host, durationS: 2 });
  const d = wrk(direct, { durationS });
  const g = wrk(`http://127.0.0.1:${p.httpPort}/`, { host, durationS });
  let h = null;
  if (hasHaproxy()) {
    const hp = await startHaproxy(inst.address, inst.port);
    try {
      wrk(hp.url, { durationS: 2 });
      h = wrk(hp.url, { durationS });
    } finally {
      hp.stop();
    }
  }
  const row = (name, r) => `${name.padEnd(22)} ${r.rps.toFixed(0).padStart(9)} ${r.p50Ms.toFixed(2).padStart(9)} ${r.p99Ms.toFixed(2).padStart(9)} ${String(r.errors).padStart(7)}`;
  console.log(`bench/gateway: one hello instance, wrk -c 64 -t 2 -d ${durationS}s, ${new Date().toISOString()}`);
  console.log(`${'target'.padEnd(22)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'errors'.padStart(7)}`);
  console.log(row('direct to instance', d));
  console.log(row('through gateway', g));
  if (h) console.log(row('through HAProxy (1 thr)', h));
  console.log(`ratio gateway/direct: req/s ${(g.rps / d.rps).toFixed(2)}, p50 ${(g.p50Ms / d.p50Ms).toFixed(2)}x, p99 ${(g.p99Ms / d.p99Ms).toFixed(2)}x`);
  if (h) console.log(`ratio gateway/HAProxy: req/s ${(g.rps / h.rps).toFixed(2)}, p50 ${(g.p50Ms / h.p50Ms).toFixed(2)}x, p99 ${(g.p99Ms / h.p99Ms).toFixed(2)}x`);
  else console.log('HAProxy not installed (apt-get install haproxy): peer skipped');
} finally {
  await p.stop();
}
