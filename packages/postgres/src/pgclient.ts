/**
 * The keeper's own connection to its PostgreSQL: the unix socket, the superuser, a timeout
 * on every query (client side and statement_timeout), reconnecting after any error. And the
 * one query that observes the server each tick.
 */
import pg from 'pg';
import type { ReplicaObservation } from './decide.js';
import type { Secret } from './secret.js';

export interface LocalConnection {
  readonly socketDir: string;
  readonly port: number;
  readonly user: string;
  readonly password: Secret;
  readonly database: string;
}

export class LocalClient {
  readonly #conn: LocalConnection;
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;

  constructor(conn: LocalConnection) {
    this.#conn = conn;
  }

  async #connect(timeoutMs: number): Promise<pg.Client> {
    if (this.#client !== null) return this.#client;
    if (this.#connecting !== null) return this.#connecting;
    const client = new pg.Client({
      host: this.#conn.socketDir,
      port: this.#conn.port,
      user: this.#conn.user,
      password: this.#conn.password.reveal(),
      database: this.#conn.database,
      connectionTimeoutMillis: timeoutMs,
      application_name: 'lanes-keeper',
      statement_timeout: timeoutMs,
    });
    client.on('error', () => {
      if (this.#client === client) this.#client = null;
    });
    this.#connecting = client
      .connect()
      .then(() => {
        this.#client = client;
        return client;
      })
      .finally(() => {
        this.#connecting = null;
      });
    return this.#connecting;
  }

  /** Runs one query; any failure closes the connection so that the next query reconnects. */
  async query<R extends pg.QueryResultRow>(text: string, values: readonly unknown[] = [], timeoutMs = 2_000): Promise<R[]> {
    const client = await this.#connect(timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        client.query<R>(text, [...values]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`query timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return result.rows;
    } catch (err) {
      this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    const c = this.#client;
    this.#client = null;
    if (c !== null) void c.end().catch(() => undefined);
  }
}

export interface ServerObservation {
  readonly inRecovery: boolean;
  readonly syncNames: string;
  readonly currentLsn: string | null;
  readonly receiveLsn: string | null;
  readonly replayLsn: string | null;
  /** pg_stat_wal_receiver.status on a standby (streaming, …), null when none. */
  readonly receiver: string | null;
  /** Seconds since the last replayed transaction's commit (standby), null when unknown. */
  readonly replayDelaySeconds: number | null;
  readonly replicas: readonly (ReplicaObservation & { readonly lagBytes: number | null })[];
}

const OBSERVE = `
select pg_is_in_recovery() as in_recovery,
       current_setting('synchronous_standby_names') as sync_names,
       case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as current_lsn,
       pg_last_wal_receive_lsn()::text as receive_lsn,
       pg_last_wal_replay_lsn()::text as replay_lsn,
       (select status from pg_stat_wal_receiver limit 1) as receiver,
       extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as replay_delay,
       coalesce((select json_agg(json_build_object(
                  'name', application_name, 'state', state, 'syncState', sync_state,
                  'lagBytes', case when pg_is_in_recovery() then null
                                   else pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) end))
                 from pg_stat_replication), '[]'::json) as replicas`;

interface ObserveRow {
  in_recovery: boolean;
  sync_names: string;
  current_lsn: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  receiver: string | null;
  replay_delay: number | null;
  replicas: unknown;
}

function replicasFrom(value: unknown): ServerObservation['replicas'] {
  if (!Array.isArray(value)) return [];
  const out: (ReplicaObservation & { lagBytes: number | null })[] = [];
  for (const r of value as unknown[]) {
    if (typeof r !== 'object' || r === null) continue;
    const o = r as Record<string, unknown>;
    out.push({
      name: typeof o['name'] === 'string' ? o['name'] : '',
      state: typeof o['state'] === 'string' ? o['state'] : '',
      syncState: typeof o['syncState'] === 'string' ? o['syncState'] : '',
      lagBytes: typeof o['lagBytes'] === 'number' ? o['lagBytes'] : typeof o['lagBytes'] === 'string' ? Number(o['lagBytes']) : null,
    });
  }
  return out;
}

export async function observeServer(client: LocalClient, timeoutMs: number): Promise<ServerObservation> {
  const [row] = await client.query<ObserveRow>(OBSERVE, [], timeoutMs);
  if (row === undefined) throw new Error('the observation query returned no row');
  return {
    inRecovery: row.in_recovery,
    syncNames: row.sync_names,
    currentLsn: row.current_lsn,
    receiveLsn: row.receive_lsn,
    replayLsn: row.replay_lsn,
    receiver: row.receiver,
    replayDelaySeconds: row.replay_delay,
    replicas: replicasFrom(row.replicas),
  };
}
