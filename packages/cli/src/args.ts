/**
 * Flag parsing for every command: node:util parseArgs in strict mode, with its errors
 * rewritten as one-line usage errors naming the command and the offending flag.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDurationMs } from '@lanes/spec';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>;

/**
 * Parses `argv` for `command` (e.g. "env create"). `--help`/`-h` is always accepted and
 * reported as `help: true` so every command can print its usage.
 */
export function parseCommandArgs<O extends Options>(
  command: string,
  argv: readonly string[],
  options: O,
): Parsed<O> & { readonly help: boolean } {
  const help = argv.some((a) => a === '--help' || a === '-h');
  const rest = argv.filter((a) => a !== '--help' && a !== '-h');
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options, allowPositionals: true, strict: true });
    return { values, positionals, help };
  } catch (err) {
    throw new UsageError(describeParseError(command, err));
  }
}

function describeParseError(command: string, err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const message = err instanceof Error ? err.message : String(err);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  const flag = quoted.split(' ')[0] ?? quoted;
  const hint = `run lanes ${command} --help`;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `${command}: unknown flag ${flag}; ${hint}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return message.includes('argument missing')
        ? `${command}: flag ${flag} needs a value; ${hint}`
        : `${command}: flag ${flag} does not take a value; ${hint}`;
    default:
      return `${command}: ${message.split('\n')[0] ?? message}; ${hint}`;
  }
}

/** Checks the number of positional arguments; `usage` is the command's synopsis. */
export function expectPositionals(command: string, positionals: readonly string[], min: number, max: number, usage: string): void {
  if (positionals.length < min) throw new UsageError(`${command}: missing argument; usage: ${usage}`);
  if (positionals.length > max) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals[max])}; usage: ${usage}`);
  }
}

/** `--timeout 120s`, `2m`, `500ms`, or a bare number of seconds. */
export function parseTimeoutMs(flag: string, value: string): number {
  const trimmed = value.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : durationOrNull(trimmed);
  if (ms === null || ms <= 0) throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a duration; use e.g. 120s, 2m or 90`);
  return ms;
}

function durationOrNull(value: string): number | null {
  try {
    return parseDurationMs(value);
  } catch {
    return null;
  }
}

/** A whole number in [min, max]; `what` names it in the message (a flag or an argument). */
export function parseIntArg(what: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${what}: ${JSON.stringify(value)} is not a whole number; use ${min}-${max}`);
  const n = Number(value.trim());
  if (n < min || n > max) throw new UsageError(`${what}: ${n} is out of range; use ${min}-${max}`);
  return n;
}
