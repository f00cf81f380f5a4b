#!/usr/bin/env node
// The cost of the instance sandbox (ADR 007), sandboxed vs plain in the same run, as root:
//  1. start: N starts of a node program that listens on a port and exits, through the very
//     bundle the supervisor writes (runc + tini) vs spawned directly;
//  2. memory: the resident memory of each instance's process tree on two platforms
//     (`lanes up --sandbox runc` and `--sandbox none`) running examples/hello;
//  3. throughput: wrk through each platform's gateway to the same app.
// Prints each figure and the ratio sandboxed / plain.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootPlatform, hasWrk, median, root, run, wrk } from './lib.mjs';

if (process.getuid?.() !== 0) {
  console.log('bench/sandbox: needs root (sandboxes are for a root platform); skipped');
  process.exit(0);
}
const { SandboxRuntime, DEFAULT_LIMITS } = await import(path.join(root, 'packages', 'agent', 'dist', 'sandbox.js'));
const { descendants } = await import(path.join(root, 'packages', 'testkit', 'dist', 'index.js'));
const starts = Number(process.env.BENCH_STARTS ?? 20);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);

// ---- 1. start time --------------------------------------------------------------------
const work = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-sandbox-'));
const app = path.join(work, 'app');
mkdirSync(app);
writeFileSync(path.join(app, 'start.js'), "require('node:http').createServer().listen(0, '127.0.0.1', () => process.exit(0));\n");
const runtime = new SandboxRuntime({ dir: path.join(work, 'sandbox') });
const once = (file, args, opts) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(file, args, { stdio: 'ignore', ...opts });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${file} exited ${code}`))));
  });
const plain = [];
const boxed = [];
for (let i = 0; i < starts; i++) {
  plain.push(await once(process.execPath, ['start.js'], { cwd: app }));
  const id = `bench-${i}`;
  const argv = runtime.prepare({ id, argv: ['node', 'start.js'], env: { PATH: '/usr/local/bin:/usr/bin:/bin' }, packageDir: app, dataDir: path.join(work, 'data', id), netns: null, uid: 299999, gid: 299999, limits: DEFAULT_LIMITS });
  boxed.push(await once(argv[0], argv.slice(1), { cwd: work, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }));
  await runtime.remove(id);
}
console.log(`bench/sandbox: start of a node program that listens and exits, ${starts} times each`);
console.log(`  plain process      median ${median(plain).toFixed(1)} ms, max ${Math.max(...plain).toFixed(1)} ms`);
console.log(`  runc sandbox       median ${median(boxed).toFixed(1)} ms, max ${Math.max(...boxed).toFixed(1)} ms`);
console.log(`  ratio sandbox/plain ${(median(boxed) / median(plain)).toFixed(2)}x (+${(median(boxed) - median(plain)).toFixed(1)} ms a start)`);
rmSync(work, { recursive: true, force: true });

// ---- 2 and 3: two platforms ------------------------------------------------------------
function treeRssKb(pid) {
  let kb = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return kb;
}

const results = {};
for (const mode of ['none', 'runc']) {
  const p = await bootPlatform('a', 'none', ['--sandbox', mode]);
  try {
    await run(p.env, ['tenant', 'create', 'bench']);
    await run(p.env, ['env', 'create', 'bench/prod', '--lane', 'single']);
    await run(p.env, ['deploy', 'bench/prod', path.join(root, 'examples', 'hello')]);
    const status = await p.api('/v1/tenants/bench/environments/prod');
    const rss = status.instances.filter((i) => i.pid).map((i) => treeRssKb(i.pid));
    const figures = { rssKb: median(rss) };
    if (hasWrk()) figures.wrk = wrk(`http://127.0.0.1:${p.httpPort}/`, { host: 'prod.bench.lanes.localhost', durationS: seconds });
    results[mode] = figures;
  } finally {
    await p.stop();
  }
}
console.log('bench/sandbox: examples/hello on two platforms (zone a, --isolation none), sandboxed and plain');
console.log(`  memory per instance (process tree RSS, median): plain ${(results.none.rssKb / 1024).toFixed(1)} MiB, sandboxed ${(results.runc.rssKb / 1024).toFixed(1)} MiB (+${((results.runc.rssKb - results.none.rssKb) / 1024).toFixed(1)} MiB: runc and tini stay resident)`);
if (results.none.wrk && results.runc.wrk) {
  const a = results.none.wrk;
  const b = results.runc.wrk;
  console.log(`  gateway → instance, wrk 64 connections ${seconds}s: plain ${a.rps.toFixed(0)} req/s (p99 ${a.p99Ms} ms), sandboxed ${b.rps.toFixed(0)} req/s (p99 ${b.p99Ms} ms), ratio ${(b.rps / a.rps).toFixed(2)}x; errors ${a.errors} / ${b.errors}`);
} else {
  console.log('  (wrk not installed: no throughput figures)');
}
