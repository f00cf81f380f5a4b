/**
 * Hand-written checks for what reaches the supervisor from outside (the watch stream and
 * state.json): every value that becomes a path, an argv or an environment variable is
 * checked here first. Errors are one line and name the field.
 */
import { InputError } from '@lanes/spec';
import type { DesiredInstance, HealthCheckSpec } from '@lanes/spec';

/** Instance ids become directory names: no '/', no leading '.', bounded length. */
const INSTANCE_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkInstanceId(field: string, value: unknown): string {
  if (typeof value !== 'string' || !INSTANCE_ID_RE.test(value)) {
    throw new InputError(`${field}: ${describe(value)} is not a valid instance id; use 1-128 characters A-Z, a-z, 0-9, '_', '.', '-', not starting with '.' or '-'`, field);
  }
  return value;
}

function str(field: string, value: unknown, maxLength = 256): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength || value.includes('\0')) {
    throw new InputError(`${field}: ${describe(value)} should be a non-empty string of at most ${maxLength} characters`, field);
  }
  return value;
}

function int(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InputError(`${field}: ${describe(value)} should be an integer from ${min} to ${max}`, field);
  }
  return value;
}

function health(field: string, value: unknown): HealthCheckSpec | null {
  if (value === null) return null;
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object or null`, field);
  const path = str(`${field}.path`, value['path'], 1024);
  if (!path.startsWith('/')) throw new InputError(`${field}.path: ${describe(path)} should start with '/'`, `${field}.path`);
  return {
    path,
    intervalMs: int(`${field}.intervalMs`, value['intervalMs'], 10, 3_600_000),
    timeoutMs: int(`${field}.timeoutMs`, value['timeoutMs'], 10, 600_000),
    healthyThreshold: int(`${field}.healthyThreshold`, value['healthyThreshold'], 1, 100),
    unhealthyThreshold: int(`${field}.unhealthyThreshold`, value['unhealthyThreshold'], 1, 100),
  };
}

/** Checks one desired instance; `field` is its path in the message, e.g. `instances[3]`. */
export function parseDesiredInstance(field: string, value: unknown): DesiredInstance {
  if (!isRecord(value)) throw new InputError(`${field}: ${describe(value)} should be an object`, field);
  const argvRaw = value['argv'];
  if (!Array.isArray(argvRaw) || argvRaw.length === 0 || argvRaw.length > 1024) {
    throw new InputError(`${field}.argv: ${describe(argvRaw)} should be a non-empty array of strings`, `${field}.argv`);
  }
  const argv = argvRaw.map((a, i) => {
    if (typeof a !== 'string' || a.includes('\0') || a.length > 65_536) {
      throw new InputError(`${field}.argv[${i}]: ${describe(a)} should be a string without NUL`, `${field}.argv[${i}]`);
    }
    return a;
  });
  if (argv[0] === '') throw new InputError(`${field}.argv[0]: "" should name a program`, `${field}.argv[0]`);
  const envRaw = value['env'];
  if (!isRecord(envRaw)) throw new InputError(`${field}.env: ${describe(envRaw)} should be an object of strings`, `${field}.env`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envRaw)) {
    if (!ENV_NAME_RE.test(k)) throw new InputError(`${field}.env: ${describe(k)} is not a valid variable name`, `${field}.env.${k}`);
    if (typeof v !== 'string' || v.includes('\0')) throw new InputError(`${field}.env.${k}: ${describe(v)} should be a string without NUL`, `${field}.env.${k}`);
    env[k] = v;
  }
  const port = value['port'];
  const listens = value['listens'];
  if (typeof listens !== 'boolean') throw new InputError(`${field}.listens: ${describe(listens)} should be true or false`, `${field}.listens`);
  return {
    id: checkInstanceId(`${field}.id`, value['id']),
    tenant: str(`${field}.tenant`, value['tenant']),
    environment: str(`${field}.environment`, value['environment']),
    service: str(`${field}.service`, value['service']),
    release: str(`${field}.release`, value['release']),
    argv,
    env,
    port: port === null ? null : int(`${field}.port`, port, 1, 65_535),
    listens,
    health: health(`${field}.health`, value['health'] ?? null),
    stopGraceMs: int(`${field}.stopGraceMs`, value['stopGraceMs'], 0, 3_600_000),
  };
}

/** Checks a desired list: each entry, and that no id appears twice. */
export function parseDesiredList(field: string, value: unknown): DesiredInstance[] {
  if (!Array.isArray(value)) throw new InputError(`${field}: ${describe(value)} should be an array`, field);
  const list = value.map((v, i) => parseDesiredInstance(`${field}[${i}]`, v));
  const seen = new Set<string>();
  for (const [i, d] of list.entries()) {
    if (seen.has(d.id)) throw new InputError(`${field}[${i}].id: ${describe(d.id)} appears twice`, `${field}[${i}].id`);
    seen.add(d.id);
  }
  return list;
}

export { isRecord };
