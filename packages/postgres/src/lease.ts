/**
 * The lease RPC on the wire: `POST /lease` with a request, answered with a grant or a
 * refusal and the party's record (what it granted: never a candidacy). Schemas for both
 * directions, the handler's parsing, and the client that asks one peer with a deadline.
 */
import { z } from 'zod';
import { InputError } from '@lanes/spec';
import type { LeaseRequest } from './decide.js';
import type { Secret } from './secret.js';
import type { PartyRecord } from './state.js';

const memberName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/);

export const leaseRequestSchema = z.object({
  kind: z.enum(['renew', 'elect', 'release']),
  term: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  holder: memberName,
  leaseMs: z.number().int().min(100).max(600_000),
  syncStandby: memberName.nullable(),
});

export const leaseAnswerSchema = z.object({
  granted: z.boolean(),
  reason: z.string().max(1000),
  record: z.object({ term: z.number().int().min(0), holder: memberName.nullable(), syncStandby: memberName.nullable() }),
});
export type LeaseAnswer = z.infer<typeof leaseAnswerSchema>;

/** Parses a request body; an InputError names the first offending field. */
export function parseLeaseRequest(body: unknown): LeaseRequest {
  const r = leaseRequestSchema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.join('.') || 'body';
    throw new InputError(`lease request: ${field}: ${issue?.message ?? 'invalid'}`, field);
  }
  return r.data;
}

export interface PeerEndpoint {
  readonly name: string;
  /** The peer's keeper or arbiter base URL. */
  readonly url: string;
}

export type PeerReply = { readonly peer: string; readonly answer: LeaseAnswer } | { readonly peer: string; readonly error: string };

/** Asks one peer; never rejects: a timeout, a refused connection or a bad answer is an `error`. */
export async function askPeer(peer: PeerEndpoint, req: LeaseRequest, token: Secret, timeoutMs: number): Promise<PeerReply> {
  try {
    const res = await fetch(`${peer.url}/lease`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token.reveal()}` },
      body: JSON.stringify(req),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status !== 200) return { peer: peer.name, error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
    const parsed = leaseAnswerSchema.safeParse(JSON.parse(text));
    if (!parsed.success) return { peer: peer.name, error: 'malformed answer' };
    return { peer: peer.name, answer: parsed.data };
  } catch (err) {
    return { peer: peer.name, error: err instanceof Error ? (err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err.message) : String(err) };
  }
}

export function recordOf(r: PartyRecord): PartyRecord {
  return { term: r.term, holder: r.holder, syncStandby: r.syncStandby };
}
