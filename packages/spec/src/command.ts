/**
 * Splits a manifest `command` into an argv array. There is no shell: quotes group words,
 * a backslash escapes the next character, and nothing is expanded, so a command can never
 * smuggle in a pipe, a redirect or a variable.
 */
import { InputError } from './errors.js';

export function splitCommand(command: string, field = 'command'): string[] {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) word += command[++i];
      else word += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      word += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) argv.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new InputError(`${field}: unterminated ${quote} quote in ${JSON.stringify(command)}`, field);
  if (inWord) argv.push(word);
  if (argv.length === 0) throw new InputError(`${field}: the command is empty`, field);
  if (argv.some((a) => a.includes('\0'))) throw new InputError(`${field}: the command contains a NUL byte`, field);
  return argv;
}
