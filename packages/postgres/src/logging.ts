/**
 * The keeper's and arbiter's log: JSON lines in pino's shape (level number, time, pid,
 * name, msg, then fields) on stdout, constant messages with variables in fields. Errors are
 * reduced to type, code and message; `Secret` values print `[redacted]` through toJSON.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Readonly<Record<LogLevel | 'fatal', number>> = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  fatal(fields: object, msg: string): void;
}

/** Only an error's type, code and message: never a stack, never the request it came with. */
export function serializeError(err: unknown): Record<string, string | undefined> {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  return { type: err.name, code, message: err.message };
}

/** A logger named `name` writing lines at `level` and above to `write` (stdout by default). */
export function createLogger(name: string, level: LogLevel, write: (line: string) => void = (l) => void process.stdout.write(l)): Logger {
  const min = LEVELS[level];
  const emit = (at: keyof typeof LEVELS, fields: object, msg: string): void => {
    if (LEVELS[at] < min) return;
    const out: Record<string, unknown> = { level: LEVELS[at], time: new Date().toISOString(), pid: process.pid, name, msg };
    for (const [k, v] of Object.entries(fields)) out[k] = k === 'err' ? serializeError(v) : v;
    write(`${JSON.stringify(out)}\n`);
  };
  return {
    debug: (f, m) => emit('debug', f, m),
    info: (f, m) => emit('info', f, m),
    warn: (f, m) => emit('warn', f, m),
    error: (f, m) => emit('error', f, m),
    fatal: (f, m) => emit('fatal', f, m),
  };
}

export function silentLogger(): Logger {
  const none = (): void => undefined;
  return { debug: none, info: none, warn: none, error: none, fatal: none };
}
