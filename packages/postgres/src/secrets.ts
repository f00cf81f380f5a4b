/**
 * The cluster's passwords, one file each (mode 0600) in the secrets directory: the
 * superuser's, the replication user's and the application user's. The member that creates
 * the cluster generates missing ones; every other member must be given the same files (the
 * control plane generates them per database). Values are `Secret`s and are never logged.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError, UnavailableError } from '@lanes/spec';
import { Secret } from './secret.js';

export const SECRET_FILES = { superuser: 'superuser-password', replication: 'replication-password', app: 'app-password' } as const;
export type SecretName = keyof typeof SECRET_FILES;

export interface ClusterSecrets {
  readonly superuser: Secret;
  readonly replication: Secret;
  readonly app: Secret;
}

/** A random password: 32 characters of base64url (192 bits). */
export function generatePassword(): Secret {
  return new Secret(randomBytes(24).toString('base64url'));
}

async function readSecret(file: string): Promise<Secret | null> {
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (value.length === 0) throw new UnavailableError(`${file} is empty; it must hold the password`);
    return new Secret(value);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads the cluster's passwords; with `generate`, creates the missing ones first. */
export async function loadSecrets(dir: string, generate: boolean): Promise<ClusterSecrets> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const out: Partial<Record<SecretName, Secret>> = {};
  for (const [key, fileName] of Object.entries(SECRET_FILES) as [SecretName, string][]) {
    const file = path.join(dir, fileName);
    let secret = await readSecret(file);
    if (secret === null) {
      if (!generate) throw new NotFoundError(`${file} is missing; every member needs the cluster's passwords: copy the secrets directory of the member that created the cluster`);
      secret = generatePassword();
      await writeFile(file, `${secret.reveal()}\n`, { mode: 0o600, flag: 'wx' });
    }
    await chmod(file, 0o600);
    out[key] = secret;
  }
  const { superuser, replication, app } = out;
  if (!superuser || !replication || !app) throw new UnavailableError('cluster passwords incomplete');
  return { superuser, replication, app };
}

/** A libpq password file for the superuser and the replication user (`:` and `\\` escaped). */
export function renderPassfile(s: ClusterSecrets, superuser: string, replicationUser: string): string {
  const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(replicationUser)}:${esc(s.replication.reveal())}\n*:*:*:${esc(superuser)}:${esc(s.superuser.reveal())}\n`;
}
