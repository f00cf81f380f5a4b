#!/usr/bin/env node
// Time from `lanes deploy` to all instances healthy for examples/hello (2 web + 1 worker),
// over several releases (each run changes one file so it is a new release). Median and max.
import { cpSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootPlatform, median, root, run } from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 5);
const p = await bootPlatform('a,b,c');
const app = mkdtempSync(path.join(os.tmpdir(), 'lanes-bench-app-'));
cpSync(path.join(root, 'examples', 'hello'), app, { recursive: true });
try {
  await run(p.env, ['tenant', 'create', 'bench']);
  await run(p.env, ['env', 'create', 'bench/prod']);
  const times = [];
  for (let i = 0; i < runs; i++) {
    writeFileSync(path.join(app, 'VERSION'), `${i}\n`);
    const t0 = performance.now();
    await run(p.env, ['deploy', 'bench/prod', app]); // returns once every new instance is healthy
    times.push(performance.now() - t0);
  }
  console.log(`bench/deploy: examples/hello (web x2 with /healthz checks at 1 s interval, threshold 2; worker x1), ${runs} releases`);
  console.log(`deploy → all healthy: median ${(median(times) / 1000).toFixed(2)} s, min ${(Math.min(...times) / 1000).toFixed(2)} s, max ${(Math.max(...times) / 1000).toFixed(2)} s`);
  console.log(`runs (s): ${times.map((t) => (t / 1000).toFixed(2)).join(', ')}`);
} finally {
  rmSync(app, { recursive: true, force: true });
  await p.stop();
}
