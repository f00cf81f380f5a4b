/**
 * Tokens: generated at first start, stored hashed in the admin database, the plaintext
 * only in files of mode 0600 under LANES_HOME. A Secret prints as [redacted].
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile, rename } from 'node:fs/promises';

export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret([redacted])';
  }
}

export function newToken(prefix: string): Secret {
  return new Secret(`${prefix}_${randomBytes(32).toString('base64url')}`);
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

export async function writeSecretFile(file: string, secret: Secret): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${secret.reveal()}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function readSecretFile(file: string): Promise<Secret | null> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text ? new Secret(text) : null;
  } catch {
    return null;
  }
}
