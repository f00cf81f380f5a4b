/** Shared by the CLI's tests: run `lanes` in-process and check a usage error's shape. */
import assert from 'node:assert/strict';
import type { CliConfig } from './home.js';
import { memoryIo } from './io.js';
import { run } from './main.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(config: CliConfig, argv: readonly string[]): Promise<CliRun> {
  const io = memoryIo();
  const code = await run([...argv], io, config);
  return { code, stdout: io.text(), stderr: io.stderr.join('') };
}

/** Exit 2, nothing on stdout, exactly one line on stderr matching `expected`. */
export function assertUsageError(r: CliRun, expected: RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.match(r.stderr, /^lanes: [^\n]+\n$/, 'exactly one line on stderr');
  assert.match(r.stderr, expected);
}
