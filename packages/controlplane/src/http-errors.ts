/**
 * The one place where domain errors become HTTP answers (application/problem+json).
 * Anything that is not a LanesError is a 500 whose details stay in the log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { InputError, isLanesError, type ErrorCode } from '@lanes/spec';
import type { z } from 'zod';

const STATUS: Record<ErrorCode, number> = {
  LANES_ERR_INPUT: 400,
  LANES_ERR_UNAUTHENTICATED: 401,
  LANES_ERR_NOT_ALLOWED: 403,
  LANES_ERR_NOT_FOUND: 404,
  LANES_ERR_CONFLICT: 409,
  LANES_ERR_TOO_LARGE: 413,
  LANES_ERR_UNAVAILABLE: 503,
};

const TITLE: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  type: 'about:blank';
  title: string;
  status: number;
  code: string;
  detail: string;
  field?: string;
}

export function problemOf(err: unknown): Problem {
  if (isLanesError(err)) {
    const status = STATUS[err.code];
    const p: Problem = { type: 'about:blank', title: TITLE[status] ?? 'Error', status, code: err.code, detail: err.message };
    if (err instanceof InputError && err.field !== undefined) p.field = err.field;
    return p;
  }
  const fe = err as Partial<FastifyError> | null;
  // Fastify's own client errors: bad JSON, body too large, wrong content type.
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const status = fe.statusCode;
    const code = status === 413 ? 'LANES_ERR_TOO_LARGE' : 'LANES_ERR_INPUT';
    return { type: 'about:blank', title: TITLE[status] ?? 'Bad Request', status, code, detail: `body: ${fe.message ?? 'invalid request'}` };
  }
  return { type: 'about:blank', title: 'Internal Server Error', status: 500, code: 'LANES_ERR_INTERNAL', detail: 'internal error; see the control plane log' };
}

export function sendProblem(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const p = problemOf(err);
  if (p.status >= 500) req.log.error({ err }, 'request failed');
  void reply.code(p.status).type('application/problem+json').send(p);
}

/** Parses a request body with a zod schema; the first issue becomes an InputError naming its field. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what = 'body'): T {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : what;
  let msg = issue?.message ?? 'invalid';
  if (issue?.code === 'invalid_type') msg = issue.input === undefined ? 'is required' : `expected ${issue.expected}, got ${issue.input === null ? 'null' : typeof issue.input}`;
  if (issue?.code === 'unrecognized_keys') msg = `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  throw new InputError(`${field}: ${msg}`, field);
}
