#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `node --cpu-prof`): where the time went by function
// (self time, and total time for the gateway's own functions) and by area (the gateway's
// code, undici, Node's http/net/tls internals, the access log, GC, idle). Used by
// `bench/gateway.mjs --profile`; also runs on its own: `node bench/cpuprofile.mjs FILE [TOP]`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The area a frame belongs to, from its script URL. */
export function areaOf(frame) {
  const url = frame.url ?? '';
  const name = frame.functionName;
  if (url === '') {
    if (name === '(garbage collector)') return 'gc';
    if (name === '(idle)') return 'idle';
    if (name === '(program)') return 'program (native, outside JS)';
    return 'native';
  }
  if (url.includes('/packages/gateway/')) return 'gateway';
  if (url.includes('/packages/spec/')) return 'spec';
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/pino') || url.includes('/node_modules/sonic-boom/')) return 'pino/sonic-boom (access log)';
  if (url.includes('/node_modules/')) return 'other npm';
  if (url.startsWith('node:')) {
    const mod = url.slice(5).replace(/^internal\//, '');
    if (/^(_http|http)/.test(mod)) return 'node http';
    if (/^(net|stream|streams|timers|events|buffer)/.test(mod)) return `node ${mod.split(/[/_.]/)[0]}`;
    if (/^(tls|_tls|crypto)/.test(mod)) return 'node tls/crypto';
    return 'node other';
  }
  return 'other';
}

function frameKey(frame) {
  const file = frame.url ? frame.url.replace(/^file:\/\//, '').replace(/^.*\/(packages|node_modules)\//, '$1/') : '';
  const name = frame.functionName || '(anonymous)';
  return file === '' ? name : `${name}  ${file}:${frame.lineNumber + 1}`;
}

/**
 * Self time per function and per area, and total (inclusive) time of the gateway's own
 * functions, in ms and as a share of the busy (non-idle) time.
 */
export function summarize(profile, top = 25) {
  const nodes = new Map();
  const parent = new Map();
  for (const n of profile.nodes) {
    nodes.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Sample i lasts until sample i+1 (the deltas are the gaps before each sample).
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const avg = samples.length > 1 ? (profile.endTime - profile.startTime) / samples.length : 0;
  const selfUs = new Map();
  const totalUs = new Map();
  const areaUs = new Map();
  let idleUs = 0;
  let allUs = 0;
  for (let i = 0; i < samples.length; i++) {
    const us = i + 1 < deltas.length ? Math.max(0, deltas[i + 1]) : avg;
    const node = nodes.get(samples[i]);
    if (node === undefined) continue;
    allUs += us;
    const frame = node.callFrame;
    const area = areaOf(frame);
    if (area === 'idle') {
      idleUs += us;
      continue;
    }
    const key = frameKey(frame);
    selfUs.set(key, (selfUs.get(key) ?? 0) + us);
    areaUs.set(area, (areaUs.get(area) ?? 0) + us);
    // Inclusive time of gateway functions: each function once per sample, however deep.
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const f = nodes.get(id)?.callFrame;
      if (f === undefined || areaOf(f) !== 'gateway') continue;
      const k = frameKey(f);
      if (seen.has(k)) continue;
      seen.add(k);
      totalUs.set(k, (totalUs.get(k) ?? 0) + us);
    }
  }
  const busyUs = allUs - idleUs;
  const rows = (map, n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, percent: busyUs > 0 ? Math.round((1000 * us) / busyUs) / 10 : 0 }));
  return {
    durationMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busyUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    areas: rows(areaUs, 50),
    selfTop: rows(selfUs, top),
    gatewayTotal: rows(totalUs, 15),
  };
}

/** The summary as text lines. */
export function formatSummary(s) {
  const lines = [];
  lines.push(`profile: ${s.durationMs} ms sampled, ${s.busyMs} ms busy, ${s.idleMs} ms idle (shares below are of the busy time)`);
  const table = (title, rows) => {
    lines.push(title);
    for (const r of rows) lines.push(`  ${r.percent.toFixed(1).padStart(5)}%  ${r.ms.toFixed(1).padStart(8)} ms  ${r.name}`);
  };
  table('by area (self time):', s.areas);
  table('top functions by self time:', s.selfTop);
  table("gateway functions by total time (with what they call):", s.gatewayTotal);
  return lines;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error('usage: node bench/cpuprofile.mjs FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  for (const line of formatSummary(summarize(profile, Number(process.argv[3] ?? 25)))) console.log(line);
}
