/**
 * Where commands write. Commands never touch process.stdout/stderr directly, so tests can
 * run them in-process and see exactly what a user would.
 */
export interface Io {
  /** Writes text to stdout as is (add the newline yourself, or use `line`). */
  write(text: string): void;
  /** Writes one line to stdout. */
  line(text?: string): void;
  /** Writes one line to stderr. */
  err(text: string): void;
}

export function processIo(): Io {
  return {
    write: (text) => void process.stdout.write(text),
    line: (text = '') => void process.stdout.write(`${text}\n`),
    err: (text) => void process.stderr.write(`${text}\n`),
  };
}

/** An Io that collects output, for tests. */
export function memoryIo(): Io & { readonly stdout: string[]; readonly stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    write: (text) => void stdout.push(text),
    line: (text = '') => void stdout.push(`${text}\n`),
    err: (text) => void stderr.push(`${text}\n`),
    text: () => stdout.join(''),
  };
}
