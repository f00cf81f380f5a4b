/**
 * Helpers for the managed-database scenarios: the database's status through the API, a wait
 * for a settled cluster, a Jepsen-style writer, plain queries and the primary-only check.
 */
import pg from 'pg';
import { request } from 'undici';
import { sleep, waitFor } from '@lanes/testkit';
import type { TestPlatform } from './platform.js';

export interface Member {
  name: string;
  role: string;
  zone: string;
  instance: string;
  pid: number | null;
  state: string;
  healthy: boolean;
  lagBytes: number | null;
  checkUrl: string | null;
  message: string;
}

export interface DbStatus {
  name: string;
  url: string;
  tcp: { address: string; port: number } | null;
  primary: string | null;
  variables: string[];
  members: Member[];
  backup: { last: { id: string } | null };
  failovers: { term: number; primary: string; at: string }[];
}

export async function dbStatus(p: TestPlatform, ref: string, name: string): Promise<DbStatus> {
  const [tenant, env] = ref.split('/');
  const r = await p.api<DbStatus>('GET', `/v1/tenants/${tenant}/environments/${env}/databases/${name}`);
  if (r.status !== 200) throw new Error(`db status ${ref} ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function dbUrl(p: TestPlatform, ref: string, name: string): Promise<string> {
  const [tenant, env] = ref.split('/');
  const r = await p.api<{ url: string }>('GET', `/v1/tenants/${tenant}/environments/${env}/databases/${name}/url`);
  if (r.status !== 200) throw new Error(`db url ${ref} ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.url;
}

/**
 * Waits for a primary (other than `not`), a standby it names synchronous, and the arbiter;
 * with `single`, for a lone primary.
 */
export function dbSettled(p: TestPlatform, ref: string, name: string, opts: { not?: string | undefined; single?: boolean; timeoutMs?: number } = {}): Promise<DbStatus> {
  return waitFor(
    `database ${name} of ${ref} settled${opts.not ? ` on a primary other than ${opts.not}` : ''}`,
    async () => {
      const s = await dbStatus(p, ref, name);
      const primary = s.members.find((m) => m.role === 'primary');
      if (!primary || (opts.not && primary.name === opts.not)) return false;
      if (opts.single) return s;
      const standby = s.members.find((m) => m.role === 'standby');
      const arbiter = s.members.find((m) => m.role === 'arbiter');
      if (!standby || !arbiter) return false;
      return primary.message.includes(`${standby.name} synchronous`) ? s : false;
    },
    { timeoutMs: opts.timeoutMs ?? 90_000, intervalMs: 250 },
  );
}

/**
 * A client that writes one row per transaction as fast as it can, records every id the
 * database acknowledged, and reconnects (same URL) after any error: the Jepsen-style check
 * is that every acknowledged id is there afterwards.
 */
export class Writer {
  readonly acked: number[] = [];
  /** Which PostgreSQL port acknowledged each id, and when (ms since start): for the report of a loss. */
  readonly ackedBy = new Map<number, { port: number; at: number }>();
  readonly #t0 = Date.now();
  errors = 0;
  lastError = '';
  #next: number;
  #stop = false;
  #done: Promise<void> | null = null;

  constructor(
    readonly url: string,
    readonly table = 'writes',
    first = 1,
  ) {
    this.#next = first;
  }

  start(): this {
    this.#done = this.#run();
    return this;
  }

  async #run(): Promise<void> {
    while (!this.#stop) {
      const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 2000, query_timeout: 3000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        while (!this.#stop) {
          const id = this.#next++;
          const r = await c.query<{ port: number }>(`insert into ${this.table} (id) values ($1) returning inet_server_port() as port`, [id]);
          this.acked.push(id);
          this.ackedBy.set(id, { port: r.rows[0]?.port ?? 0, at: Date.now() - this.#t0 });
        }
      } catch (err) {
        this.errors += 1;
        this.lastError = err instanceof Error ? err.message : String(err);
        await sleep(50);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  /** Resolves once `n` more writes have been acknowledged (after whatever broke). */
  async resumed(n: number, timeoutMs: number): Promise<void> {
    const target = this.acked.length + n;
    await waitFor(`${n} more acknowledged writes`, () => this.acked.length >= target, { timeoutMs, intervalMs: 50 }).catch((err: Error) => {
      throw new Error(`${err.message}: ${this.acked.length} acknowledged, ${this.errors} errors, the last: ${this.lastError || 'none'}`);
    });
  }

  /** The acknowledged ids missing from the table now, each with the port that acknowledged it and when. */
  async lost(url = this.url): Promise<string[]> {
    if (!this.#stop) throw new Error('stop the writer first: ids acknowledged after the check would look lost');
    const rows = await query<{ id: string }>(url, `select id from ${this.table}`);
    const present = new Set(rows.map((r) => Number(r.id)));
    return this.acked.filter((id) => !present.has(id)).map((id) => `${id} (acknowledged by port ${this.ackedBy.get(id)?.port} at +${this.ackedBy.get(id)?.at} ms)`);
  }
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** GET of a member's primary-only check: `{ status, text }`, status 0 when nothing answers. */
export async function mirrorStatus(url: string): Promise<{ status: number; text: string }> {
  try {
    const r = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
    return { status: r.statusCode, text: (await r.body.text()).trim() };
  } catch {
    return { status: 0, text: '' };
  }
}
