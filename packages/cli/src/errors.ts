/**
 * The CLI's failures and how they are shown: always one line `lanes: <message>` on stderr
 * and an exit code (2 for usage errors, 1 for everything else), never a stack trace.
 */
import { isLanesError } from '@lanes/spec';

/** A failure the user should read; `exitCode` is 1 unless it is a usage error. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** The command line itself is wrong: unknown command or flag, missing or invalid argument. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** Turns anything thrown into the one line and exit code the user sees. */
export function renderError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof CliError) return { message: oneLine(err.message), exitCode: err.exitCode };
  // Names and values validated locally with @lanes/spec: the arguments were wrong.
  if (isLanesError(err) && err.code === 'LANES_ERR_INPUT') return { message: oneLine(err.message), exitCode: 2 };
  if (err instanceof Error) return { message: oneLine(err.message || err.name), exitCode: 1 };
  return { message: oneLine(String(err)), exitCode: 1 };
}

export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
