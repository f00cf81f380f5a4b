/**
 * The gateway's loggers. The process log is pino JSON on stdout; its serializers are
 * allow-lists, so a request or an error can be logged without leaking headers such as
 * Authorization or Cookie. The access log (access-log.ts) writes pino-shaped JSON lines to
 * a file in 64 KiB batches of its own.
 */
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger } from 'pino';

interface RequestLike {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers?: { readonly host?: string | undefined } | undefined;
}

/** Only method, path (without the query, which may hold secrets) and host. */
export function requestSerializer(req: RequestLike): Record<string, string | undefined> {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return { method: req.method, path: q === -1 ? url : url.slice(0, q), host: req.headers?.host };
}

/** Only the error's type, code and message (and the stack at debug level is not needed). */
export function errorSerializer(err: unknown): Record<string, string | undefined> {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  return { type: err.name, code, message: err.message };
}

export const serializers = Object.freeze({ req: requestSerializer, err: errorSerializer });

/** The process logger (stdout by default). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid, name: 'gateway' }, serializers, timestamp: pino.stdTimeFunctions.isoTime };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/** A logger that drops everything (library default). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
