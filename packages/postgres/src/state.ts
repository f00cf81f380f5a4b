/**
 * The records the keeper and the arbiter keep on disk: what they granted (term, holder,
 * synchronous standby) and, for a member, what it won, released or is a candidate for and
 * what its data last was. Written whole, atomically and fsynced before a grant is answered;
 * validated on load. Promises are not kept (a monotonic clock does not survive a restart):
 * after a restart every party assumes a full lease is still promised.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { UnavailableError } from '@lanes/spec';
import { writeOwnedFile } from './pgexec.js';

const name = z.string().min(1).max(63);

const record = z.object({
  term: z.number().int().min(0),
  holder: name.nullable(),
  syncStandby: name.nullable(),
});
export type PartyRecord = z.infer<typeof record>;

const historyEntry = z.object({
  /** ISO time. */
  at: z.string(),
  term: z.number().int(),
  primary: name,
  /** The sentence that explains it (the promotion's, or how this member learned of it). */
  reason: z.string().max(500),
});
export type FailoverEvent = z.infer<typeof historyEntry>;

const keeperState = z.object({
  version: z.literal(1),
  record,
  wonTerm: z.number().int().min(0),
  releasedTerm: z.number().int().min(0),
  candidacy: z.object({ term: z.number().int().min(1), previousHolder: name.nullable() }).nullable(),
  dataWasPrimary: z.boolean(),
  /** The roles and database exist (created after the first start of a new cluster). */
  bootstrapped: z.boolean(),
  syncNames: name.nullable(),
  syncClaim: name.nullable(),
  history: z.array(historyEntry).max(100),
});
export type KeeperState = z.infer<typeof keeperState>;

export const INITIAL_KEEPER_STATE: KeeperState = Object.freeze({
  version: 1,
  record: { term: 0, holder: null, syncStandby: null },
  wonTerm: 0,
  releasedTerm: 0,
  candidacy: null,
  dataWasPrimary: false,
  bootstrapped: false,
  syncNames: null,
  syncClaim: null,
  history: [],
}) as KeeperState;

const arbiterState = z.object({ version: z.literal(1), record });
export type ArbiterState = z.infer<typeof arbiterState>;

async function load<T>(file: string, schema: z.ZodType<T>, initial: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return initial;
    throw err;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new UnavailableError(`${file} is not a valid state file (${parsed.error.issues[0]?.message ?? 'invalid'}); restore it or move it away to start with no record`);
  }
  return parsed.data;
}

export const loadKeeperState = (file: string): Promise<KeeperState> => load(file, keeperState, INITIAL_KEEPER_STATE);
export const loadArbiterState = (file: string): Promise<ArbiterState> => load(file, arbiterState, { version: 1, record: { term: 0, holder: null, syncStandby: null } });

/** Serialises writes of one state file: each write waits for the one before. */
export class StateFile<T> {
  readonly #file: string;
  #chain: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.#file = file;
  }

  save(state: T): Promise<void> {
    const text = `${JSON.stringify(state, null, 2)}\n`;
    const next = this.#chain.then(() => writeOwnedFile(this.#file, text, null, 0o600));
    this.#chain = next.catch(() => undefined);
    return next;
  }
}
