/**
 * Names that reach paths, process environments, host names and (later) network
 * namespaces. They are validated once, here, before anything uses them.
 */
import { InputError } from './errors.js';

/** A DNS label, lower case, at most 30 characters so derived names stay short. */
const NAME_RE = /^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$/;
const ZONE_RE = /^[a-z][a-z0-9]{0,7}$/;

export function isValidName(value: string): boolean {
  return NAME_RE.test(value);
}

/** Throws an InputError naming `field` unless `value` is a valid resource name. */
export function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) {
    throw new InputError(
      `${field}: ${JSON.stringify(value)} is not a valid name; use 1-30 characters a-z, 0-9 and '-', starting with a letter and not ending with '-'`,
      field,
    );
  }
  return value;
}

export function checkZoneName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !ZONE_RE.test(value)) {
    throw new InputError(
      `${field}: ${JSON.stringify(value)} is not a valid zone name; use 1-8 characters a-z and 0-9, starting with a letter`,
      field,
    );
  }
  return value;
}

/** Parses `--zones a,b,c`. */
export function parseZones(value: string): string[] {
  const zones = value.split(',').map((z) => z.trim()).filter((z) => z.length > 0);
  if (zones.length === 0) throw new InputError('zones: at least one zone is needed, e.g. --zones a,b,c', 'zones');
  zones.forEach((z, i) => checkZoneName(`zones[${i}]`, z));
  if (new Set(zones).size !== zones.length) throw new InputError(`zones: ${JSON.stringify(value)} names a zone twice`, 'zones');
  return zones;
}

/** Parses `TENANT/ENV`, as the CLI takes it. */
export function parseEnvRef(value: string): { tenant: string; environment: string } {
  const parts = value.split('/');
  if (parts.length !== 2) {
    throw new InputError(`environment: ${JSON.stringify(value)} should be TENANT/ENV, e.g. acme/prod`, 'environment');
  }
  return { tenant: checkName('tenant', parts[0]), environment: checkName('environment', parts[1]) };
}

export const LANES = ['single', 'double'] as const;
export type Lane = (typeof LANES)[number];

export function checkLane(value: unknown): Lane {
  if (value === 'single' || value === 'double') return value;
  throw new InputError(`lane: ${JSON.stringify(value)} is not a lane; use single or double`, 'lane');
}

/** The host an environment is served at by the gateway: `<env>.<tenant>.<domain>`. */
export function environmentHost(environment: string, tenant: string, domain: string): string {
  return `${environment}.${tenant}.${domain}`;
}
