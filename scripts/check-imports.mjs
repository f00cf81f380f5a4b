#!/usr/bin/env node
// Lint: dependencies between packages point one way, and only through a package's
// public entry (`@lanes/x`, never `@lanes/x/src/...`). Exits 1 naming each violation.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ALLOWED = {
  spec: [],
  testkit: [],
  runtime: [],
  archive: ['spec'],
  store: ['spec'],
  agent: ['spec', 'archive', 'network'],
  gateway: ['spec', 'runtime'],
  network: ['spec'],
  pki: ['spec'],
  dns: ['spec', 'runtime'],
  postgres: ['spec'],
  controlplane: ['spec', 'archive', 'store', 'network', 'pki', 'postgres'],
  cli: ['spec', 'archive', 'network'],
};
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const problems = [];

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (/\.tsx?$/.test(name)) yield p;
  }
}

for (const [pkg, allowed] of Object.entries(ALLOWED)) {
  const src = path.join(root, 'packages', pkg, 'src');
  for (const file of files(src)) {
    const isTest = /(\.test|test-helpers|harness)\.ts$/.test(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](@lanes\/[^'"]+)['"]/g)) {
      const spec = m[1];
      const [, name, ...rest] = spec.split('/');
      const rel = path.relative(root, file);
      if (rest.length > 0) problems.push(`${rel}: deep import ${spec}; import from @lanes/${name} only`);
      if (name === pkg) continue;
      if (isTest && name === 'testkit') continue;
      if (!allowed.includes(name)) problems.push(`${rel}: ${pkg} may not import @lanes/${name} (allowed: ${allowed.join(', ') || 'nothing'})`);
    }
    if (/process\.env\b/.test(text) && !/(main|config)\.ts$/.test(file) && !isTest && pkg !== 'testkit' && pkg !== 'cli') {
      problems.push(`${path.relative(root, file)}: reads process.env outside the config/main module`);
    }
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(`check-imports: ${p}`);
  process.exit(1);
}
console.log('check-imports: dependency rules hold');
