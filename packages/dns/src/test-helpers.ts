/** Test support: zone snapshots and a dig runner. */
import { execFile } from 'node:child_process';
import type { DnsFailoverRecord, DnsHealthCheck, DnsZoneSnapshot } from '@lanes/spec';

export const DOMAIN = 'lanes.test';

export function check(url: string, over: Partial<DnsHealthCheck> = {}): DnsHealthCheck {
  return { url, intervalMs: 200, timeoutMs: 150, healthyThreshold: 2, unhealthyThreshold: 2, ...over };
}

export function failoverRecord(name: string, over: Partial<DnsFailoverRecord> = {}): DnsFailoverRecord {
  return {
    name,
    ttl: 10,
    primary: { address: '192.0.2.10', check: check('http://127.0.0.1:9/healthz') },
    secondary: { address: '198.51.100.20', check: null },
    ...over,
  };
}

export function snapshot(over: Partial<DnsZoneSnapshot> = {}): DnsZoneSnapshot {
  return {
    domain: DOMAIN,
    serial: 100,
    ttl: 30,
    addresses: { v4: ['127.0.0.1'], v6: ['::1'] },
    hosts: [`prod.acme.${DOMAIN}`, `test.acme.${DOMAIN}`],
    failover: [],
    ...over,
  };
}

export interface DigResult {
  readonly status: string;
  readonly flags: readonly string[];
  /** Lines of the answer section as `name ttl class type data`, whitespace collapsed. */
  readonly answers: readonly string[];
  readonly authority: readonly string[];
  readonly additional: readonly string[];
  readonly raw: string;
}

/** Runs `dig @127.0.0.1 -p PORT ARGS +norec` and parses status, flags and sections. */
export function dig(port: number, ...args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+norec', '+time=3', '+tries=2', ...args], { timeout: 20_000 }, (err, stdout) => {
      if (err && stdout === '') return reject(err);
      const raw = String(stdout);
      const status = /status: (\w+)/.exec(raw)?.[1] ?? 'NONE';
      const flags = (/;; flags: ([a-z ]+);/.exec(raw)?.[1] ?? '').trim().split(/\s+/);
      const section = (title: string): string[] => {
        const start = raw.indexOf(`;; ${title} SECTION:\n`);
        if (start < 0) return [];
        const rest = raw.slice(start).split('\n').slice(1);
        const end = rest.findIndex((l) => l.trim() === '');
        return rest.slice(0, end < 0 ? rest.length : end).map((l) => l.replace(/\s+/g, ' ').trim());
      };
      resolve({ status, flags, answers: section('ANSWER'), authority: section('AUTHORITY'), additional: section('ADDITIONAL'), raw });
    });
  });
}
