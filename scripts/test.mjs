#!/usr/bin/env node
// Runs every test: unit tests of each package (compiled to packages/*/dist) and the
// whole-platform scenarios (tests/dist/e2e), in one node:test run so the summary is one.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const found = [];
function walk(dir) {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) found.push(p);
  }
}
const only = process.argv.slice(2);
for (const pkg of readdirSync(path.join(root, 'packages'))) walk(path.join(root, 'packages', pkg, 'dist'));
walk(path.join(root, 'tests', 'dist', 'e2e'));
const selected = only.length ? found.filter((f) => only.some((o) => f.includes(o))) : found;
if (selected.length === 0) {
  console.error('test: no test files found; run npm run build first');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
