/** Reads the bearer token from its file (first line, at least 16 characters). */
import { readFile } from 'node:fs/promises';
import { InputError } from '@lanes/spec';
import { Secret } from './secret.js';

export async function readToken(file: string): Promise<Secret> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`--token-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); give the file holding the cluster's token`, 'token-file');
  }
  const token = text.split('\n')[0]?.trim() ?? '';
  if (token.length < 16) throw new InputError(`--token-file: ${file} holds no token of at least 16 characters`, 'token-file');
  return new Secret(token);
}
