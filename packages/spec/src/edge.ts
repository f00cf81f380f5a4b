/**
 * Access control and edge behaviour of one environment (`EdgeSettings`, on the wire in
 * protocol.ts): the defaults, and the one parser the API, the CLI and the gateway share, so
 * that a value one of them accepts is accepted by all. Values come either in the wire form
 * (numbers, objects) or as text a person types:
 *
 * - CIDRs: `10.0.0.0/8`, `2001:db8::/32`, or a bare address for one host; host bits must be
 *   zero (a typo such as `10.0.0.1/8` would otherwise silently cover a whole /8);
 * - rates: `100/s`, `6000/m`, `10/h`, with an optional burst after a comma (`50/s,100`);
 *   without one the burst is one second's worth (at least 1);
 * - sizes: `10mb`, `512kb`, `1gb` or a number of bytes; k/m/g/t are powers of 1024;
 * - HSTS max-age: `1y` (365 days), `26w`, `180d`, `12h`, a number of seconds, or `off`.
 *
 * Errors are InputErrors naming the field and the value. Pure: no I/O, no Node modules.
 */
import { z } from 'zod';
import { InputError } from './errors.js';
import type { EdgeSettings, RateLimit } from './protocol.js';

/** No access control, no rate limits, the gateway's own size and connection limits, no redirect, no HSTS. */
export const DEFAULT_EDGE: EdgeSettings = Object.freeze({
  allow: Object.freeze([]),
  deny: Object.freeze([]),
  clientRate: null,
  environmentRate: null,
  maxBodyBytes: null,
  maxConnectionsPerClient: null,
  httpsRedirect: false,
  hstsMaxAgeS: null,
});

/** Entries per allow or deny list. */
export const MAX_EDGE_CIDRS = 1000;
/** Largest rate, in requests per second. */
export const MAX_RATE_RPS = 1_000_000;
/** Largest burst of a rate limit. */
export const MAX_RATE_BURST = 10_000_000;
/** Largest body limit (1 TiB). */
export const MAX_BODY_BYTES = 2 ** 40;
/** Largest per-client connection limit. */
export const MAX_CONNECTIONS_PER_CLIENT = 1_000_000;
/** Largest HSTS max-age (about 68 years; browsers cap it far lower anyway). */
export const MAX_HSTS_MAX_AGE_S = 2 ** 31 - 1;

/** A value failed its rule; the message names the value, the caller adds the field. */
class Bad extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Runs a value check and turns its failure into an InputError naming `field`. */
function checked<T>(field: string, value: unknown, check: (v: unknown) => T): T {
  try {
    return check(value);
  } catch (err) {
    if (err instanceof Bad) throw new InputError(`${field}: ${err.message}`, field);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// Addresses and CIDR blocks

/** An IP address as numbers: 4 octets (IPv4) or 8 groups of 16 bits (IPv6). */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly parts: readonly number[];
}

/** A CIDR block; `text` is its normalized spelling (IPv6 compressed, lower case). */
export interface CidrBlock extends IpAddress {
  readonly prefix: number;
  readonly text: string;
}

const OCTET_RE = /^(0|[1-9]\d{0,2})$/;
const GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4(text: string): number[] | null {
  const items = text.split('.');
  if (items.length !== 4) return null;
  const out: number[] = [];
  for (const item of items) {
    // Leading zeros are refused: some parsers read them as octal.
    if (!OCTET_RE.test(item)) return null;
    const n = Number(item);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function parseGroups(text: string, v4Tail: boolean): number[] | null {
  if (text === '') return [];
  const items = text.split(':');
  const out: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i] ?? '';
    if (v4Tail && i === items.length - 1 && item.includes('.')) {
      const v4 = parseIpv4(item);
      if (v4 === null) return null;
      out.push((v4[0] ?? 0) * 256 + (v4[1] ?? 0), (v4[2] ?? 0) * 256 + (v4[3] ?? 0));
    } else {
      if (!GROUP_RE.test(item)) return null;
      out.push(parseInt(item, 16));
    }
  }
  return out;
}

function parseIpv6(text: string): number[] | null {
  if (text.length < 2 || text.length > 45) return null;
  const gap = text.indexOf('::');
  if (gap === -1) {
    const groups = parseGroups(text, true);
    return groups !== null && groups.length === 8 ? groups : null;
  }
  if (text.indexOf('::', gap + 1) !== -1) return null;
  const head = parseGroups(text.slice(0, gap), false);
  const tail = parseGroups(text.slice(gap + 2), true);
  if (head === null || tail === null || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Parses an IPv4 or IPv6 address (no zone id, no brackets); null when it is not one. */
export function parseIpAddress(text: string): IpAddress | null {
  if (text.includes(':')) {
    const parts = parseIpv6(text);
    return parts === null ? null : { family: 6, parts };
  }
  const parts = parseIpv4(text);
  return parts === null ? null : { family: 4, parts };
}

/** The canonical spelling (RFC 5952 for IPv6: lower case, the longest zero run as `::`). */
export function formatIpAddress(ip: IpAddress): string {
  if (ip.family === 4) return ip.parts.join('.');
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (ip.parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && ip.parts[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = ip.parts.map((p) => p.toString(16));
  if (bestAt === -1) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

function cidrBlock(value: unknown): CidrBlock {
  if (typeof value !== 'string') throw new Bad(`${show(value)} is not a CIDR; use e.g. 203.0.113.0/24 or 2001:db8::/32`);
  const slash = value.indexOf('/');
  const addrText = slash === -1 ? value : value.slice(0, slash);
  const ip = parseIpAddress(addrText);
  if (ip === null) throw new Bad(`${show(value)} is not a CIDR; use e.g. 203.0.113.0/24 or 2001:db8::/32`);
  const bits = ip.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash !== -1) {
    const lenText = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) throw new Bad(`${show(value)} has no valid prefix length; use /0 to /${bits}`);
    prefix = Number(lenText);
  }
  const width = ip.family === 4 ? 8 : 16;
  const network = ip.parts.map((part, i) => {
    const keep = Math.max(0, Math.min(width, prefix - i * width));
    const mask = keep === 0 ? 0 : ((2 ** width - 1) >>> (width - keep)) << (width - keep);
    return part & mask;
  });
  if (network.some((p, i) => p !== ip.parts[i])) {
    const fixed = formatIpAddress({ family: ip.family, parts: network });
    throw new Bad(`${show(value)} has host bits set; use ${fixed}/${prefix}`);
  }
  const text = `${formatIpAddress(ip)}/${prefix}`;
  return { family: ip.family, parts: ip.parts, prefix, text };
}

/** Parses one CIDR block ("10.0.0.0/8", "2001:db8::/32", or a bare address meaning one host). */
export function parseCidrBlock(field: string, value: unknown): CidrBlock {
  return checked(field, value, cidrBlock);
}

function cidrList(value: unknown, field: string): string[] {
  let items: readonly unknown[];
  if (typeof value === 'string') {
    const text = value.trim();
    items = text === '' || text === 'none' ? [] : text.split(',').map((s) => s.trim());
  } else if (Array.isArray(value)) {
    items = value;
  } else {
    throw new InputError(`${field}: ${show(value)} is not a list of CIDRs; use e.g. ["203.0.113.0/24"] or [] for none`, field);
  }
  if (items.length > MAX_EDGE_CIDRS) throw new InputError(`${field}: ${items.length} entries; use at most ${MAX_EDGE_CIDRS}`, field);
  const out: string[] = [];
  items.forEach((item, i) => {
    const text = parseCidrBlock(`${field}.${i}`, item).text;
    if (!out.includes(text)) out.push(text);
  });
  return out;
}

/**
 * A list of CIDR blocks, normalized and without duplicates: an array, or text with commas
 * ("203.0.113.0/24,10.0.0.0/8"; "none" or "" for an empty list).
 */
export function parseCidrList(field: string, value: unknown): string[] {
  return cidrList(value, field);
}

// ---------------------------------------------------------------------------------------
// Rates, sizes, ages

const RATE_RE = /^(\d+(?:\.\d+)?)\/(s|m|h)(?:,(\d+))?$/;
const PER_UNIT_S = { s: 1, m: 60, h: 3600 } as const;

function defaultBurst(rps: number): number {
  return Math.min(MAX_RATE_BURST, Math.max(1, Math.ceil(rps)));
}

function rateLimit(value: unknown): RateLimit | null {
  if (value === null || value === 'off' || value === 'none') return null;
  let rps: number;
  let burst: unknown;
  if (typeof value === 'string') {
    const m = RATE_RE.exec(value.replace(/\s+/g, '').toLowerCase());
    if (m === null) throw new Bad(`${show(value)} is not a rate; use e.g. 100/s, 6000/m or 50/s,100 (with a burst of 100), or off`);
    rps = Number(m[1]) / PER_UNIT_S[m[2] as keyof typeof PER_UNIT_S];
    burst = m[3] === undefined ? undefined : Number(m[3]);
  } else if (isRecord(value)) {
    const r = value;
    const extra = Object.keys(r).filter((k) => k !== 'rps' && k !== 'burst');
    if (extra.length > 0) throw new Bad(`${show(value)} has unknown key ${JSON.stringify(extra[0])}; use { "rps", "burst" }`);
    if (typeof r['rps'] !== 'number') throw new Bad(`${show(value)} has no rps; use { "rps": 100, "burst": 200 } or "100/s"`);
    rps = r['rps'];
    burst = r['burst'];
  } else {
    throw new Bad(`${show(value)} is not a rate; use e.g. "100/s", { "rps": 100, "burst": 200 } or null`);
  }
  if (!Number.isFinite(rps) || rps <= 0 || rps > MAX_RATE_RPS) {
    throw new Bad(`${show(value)} is out of range; the rate must be above 0 and at most ${MAX_RATE_RPS}/s`);
  }
  if (burst === undefined) return { rps, burst: defaultBurst(rps) };
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > MAX_RATE_BURST) {
    throw new Bad(`${show(value)} has burst ${show(burst)}; use a whole number 1-${MAX_RATE_BURST}`);
  }
  return { rps, burst };
}

/**
 * A token-bucket rate: "100/s", "6000/m", "10/h", optionally ",BURST"; or the wire form
 * `{ rps, burst }`; null or "off" for none.
 */
export function parseRateLimit(field: string, value: unknown): RateLimit | null {
  return checked(field, value, rateLimit);
}

const SIZE_RE = /^(\d+(?:\.\d+)?)(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?$/;
const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

function byteSize(value: unknown): number | null {
  if (value === null || value === 'default') return null;
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const m = SIZE_RE.exec(value.replace(/\s+/g, '').toLowerCase());
    if (m === null) throw new Bad(`${show(value)} is not a size; use e.g. 10mb, 512kb, 1gb or a number of bytes`);
    bytes = Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').charAt(0)] ?? 1));
  } else {
    throw new Bad(`${show(value)} is not a size; use e.g. "10mb" or a number of bytes`);
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_BODY_BYTES) {
    throw new Bad(`${show(value)} is out of range; use 0 to ${MAX_BODY_BYTES} bytes (1tb)`);
  }
  return bytes;
}

/** A size in bytes: "10mb", "512kb", "1gb" (powers of 1024), a number of bytes; null or "default" for the gateway's default. */
export function parseByteSize(field: string, value: unknown): number | null {
  return checked(field, value, byteSize);
}

function connectionLimit(value: unknown): number | null {
  if (value === null || value === 'default') return null;
  const n = typeof value === 'string' && /^\d{1,7}$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CONNECTIONS_PER_CLIENT) {
    throw new Bad(`${show(value)} is not a connection limit; use a whole number 1-${MAX_CONNECTIONS_PER_CLIENT}, or default`);
  }
  return n;
}

/** Open connections per client: a whole number; null or "default" for the gateway's default. */
export function parseConnectionLimit(field: string, value: unknown): number | null {
  return checked(field, value, connectionLimit);
}

const AGE_RE = /^(\d+)(s|h|d|w|y)?$/;
const AGE_UNITS_S = { s: 1, h: 3600, d: 86_400, w: 7 * 86_400, y: 365 * 86_400 } as const;

function hstsMaxAge(value: unknown): number | null {
  if (value === null || value === 'off') return null;
  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else if (typeof value === 'string') {
    const m = AGE_RE.exec(value.trim().toLowerCase());
    if (m === null) throw new Bad(`${show(value)} is not an HSTS max-age; use e.g. 1y, 26w, 180d, a number of seconds, or off`);
    seconds = Number(m[1]) * AGE_UNITS_S[(m[2] ?? 's') as keyof typeof AGE_UNITS_S];
  } else {
    throw new Bad(`${show(value)} is not an HSTS max-age; use e.g. "1y", a number of seconds, or null`);
  }
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_HSTS_MAX_AGE_S) {
    throw new Bad(`${show(value)} is out of range; use 0 to ${MAX_HSTS_MAX_AGE_S} seconds`);
  }
  return seconds;
}

/** Strict-Transport-Security max-age in seconds: "1y", "180d", seconds; null or "off" for no header. */
export function parseHstsMaxAge(field: string, value: unknown): number | null {
  return checked(field, value, hstsMaxAge);
}

function onOff(value: unknown): boolean {
  if (value === true || value === 'on' || value === 'true') return true;
  if (value === false || value === 'off' || value === 'false') return false;
  throw new Bad(`${show(value)} is not on or off`);
}

/** A switch: true/false, or "on"/"off". */
export function parseOnOff(field: string, value: unknown): boolean {
  return checked(field, value, onOff);
}

// ---------------------------------------------------------------------------------------
// Whole settings

type EdgeKey = keyof EdgeSettings;

/** Each field's check; a list field gets its own path for the index of a bad entry. */
const FIELD_CHECKS: { readonly [K in EdgeKey]: (field: string, value: unknown) => EdgeSettings[K] } = {
  allow: parseCidrList,
  deny: parseCidrList,
  clientRate: parseRateLimit,
  environmentRate: parseRateLimit,
  maxBodyBytes: parseByteSize,
  maxConnectionsPerClient: parseConnectionLimit,
  httpsRedirect: parseOnOff,
  hstsMaxAgeS: parseHstsMaxAge,
};

const EDGE_KEYS: readonly EdgeKey[] = ['allow', 'deny', 'clientRate', 'environmentRate', 'maxBodyBytes', 'maxConnectionsPerClient', 'httpsRedirect', 'hstsMaxAgeS'];

/** The shape only (an object of known keys); the values are checked by FIELD_CHECKS. */
const shape = z.strictObject({
  allow: z.unknown().optional(),
  deny: z.unknown().optional(),
  clientRate: z.unknown().optional(),
  environmentRate: z.unknown().optional(),
  maxBodyBytes: z.unknown().optional(),
  maxConnectionsPerClient: z.unknown().optional(),
  httpsRedirect: z.unknown().optional(),
  hstsMaxAgeS: z.unknown().optional(),
});

type EdgePatch = { -readonly [K in EdgeKey]?: EdgeSettings[K] };

function setChecked<K extends EdgeKey>(out: EdgePatch, key: K, field: string, value: unknown): void {
  if (value !== undefined) out[key] = FIELD_CHECKS[key](field, value);
}

function prefixed(field: string, key: string): string {
  return field === '' ? key : `${field}.${key}`;
}

/**
 * Parses a partial settings object: only the fields present, each checked and normalized.
 * Unknown keys are refused (a misspelt field must not be silently ignored).
 */
export function parseEdgePatch(value: unknown, field = ''): Partial<EdgeSettings> {
  const r = shape.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      throw new InputError(`${prefixed(field, key)}: unknown setting; use one of ${EDGE_KEYS.join(', ')}`, prefixed(field, key));
    }
    throw new InputError(`${field === '' ? 'edge' : field}: ${show(value)} is not an object of edge settings`, field === '' ? 'edge' : field);
  }
  const out: EdgePatch = {};
  for (const key of EDGE_KEYS) setChecked(out, key, prefixed(field, key), r.data[key]);
  return out;
}

/** Parses whole settings: fields left out take their defaults (DEFAULT_EDGE). Frozen. */
export function parseEdgeSettings(value: unknown, field = ''): EdgeSettings {
  return mergeEdge(DEFAULT_EDGE, parseEdgePatch(value, field));
}

/** `base` with the fields of `patch` replaced (whole fields: a list replaces the list). Frozen. */
export function mergeEdge(base: EdgeSettings, patch: Partial<EdgeSettings>): EdgeSettings {
  const merged = { ...base };
  for (const key of EDGE_KEYS) {
    if (patch[key] !== undefined) Object.assign(merged, { [key]: patch[key] });
  }
  return Object.freeze({
    ...merged,
    allow: Object.freeze([...merged.allow]),
    deny: Object.freeze([...merged.deny]),
    clientRate: merged.clientRate === null ? null : Object.freeze({ ...merged.clientRate }),
    environmentRate: merged.environmentRate === null ? null : Object.freeze({ ...merged.environmentRate }),
  });
}

/** True when the settings change nothing (the gateway then spends nothing on them). */
export function isDefaultEdge(edge: EdgeSettings): boolean {
  return (
    edge.allow.length === 0 &&
    edge.deny.length === 0 &&
    edge.clientRate === null &&
    edge.environmentRate === null &&
    edge.maxBodyBytes === null &&
    edge.maxConnectionsPerClient === null &&
    !edge.httpsRedirect &&
    edge.hstsMaxAgeS === null
  );
}

/** True when both settings say the same (whatever the order of their keys, e.g. read back from jsonb). */
export function sameEdge(a: EdgeSettings, b: EdgeSettings): boolean {
  const rate = (x: RateLimit | null, y: RateLimit | null): boolean => (x === null ? y === null : y !== null && x.rps === y.rps && x.burst === y.burst);
  const list = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    list(a.allow, b.allow) &&
    list(a.deny, b.deny) &&
    rate(a.clientRate, b.clientRate) &&
    rate(a.environmentRate, b.environmentRate) &&
    a.maxBodyBytes === b.maxBodyBytes &&
    a.maxConnectionsPerClient === b.maxConnectionsPerClient &&
    a.httpsRedirect === b.httpsRedirect &&
    a.hstsMaxAgeS === b.hstsMaxAgeS
  );
}

/** A structural check of stored settings (written by parseEdgeSettings, read back from the database). */
export function isEdgeSettings(value: unknown): value is EdgeSettings {
  if (!isRecord(value)) return false;
  const v = value;
  const strings = (x: unknown): boolean => Array.isArray(x) && x.every((s) => typeof s === 'string');
  const rate = (x: unknown): boolean => x === null || (isRecord(x) && typeof x['rps'] === 'number' && typeof x['burst'] === 'number');
  const nint = (x: unknown): boolean => x === null || (typeof x === 'number' && Number.isInteger(x));
  return (
    strings(v['allow']) &&
    strings(v['deny']) &&
    rate(v['clientRate']) &&
    rate(v['environmentRate']) &&
    nint(v['maxBodyBytes']) &&
    nint(v['maxConnectionsPerClient']) &&
    typeof v['httpsRedirect'] === 'boolean' &&
    nint(v['hstsMaxAgeS'])
  );
}

// ---------------------------------------------------------------------------------------
// Display

function whole(x: number): boolean {
  return Math.abs(x - Math.round(x)) < 1e-9;
}

/** "100/s", "10/m" or "5/h", with the burst: "100/s (burst 200)". */
export function formatRateLimit(rate: RateLimit): string {
  let text: string;
  if (whole(rate.rps)) text = `${Math.round(rate.rps)}/s`;
  else if (whole(rate.rps * 60)) text = `${Math.round(rate.rps * 60)}/m`;
  else if (whole(rate.rps * 3600)) text = `${Math.round(rate.rps * 3600)}/h`;
  else text = `${Number(rate.rps.toFixed(3))}/s`;
  return `${text} (burst ${rate.burst})`;
}

/** "10mb", "512kb", "1gb" when exact, else the bytes ("1500b"). */
export function formatByteSize(bytes: number): string {
  for (const [unit, size] of [['tb', 1024 ** 4], ['gb', 1024 ** 3], ['mb', 1024 ** 2], ['kb', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}b`;
}

/** "1y", "26w", "180d", "12h" when exact, else seconds ("90s"). */
export function formatHstsMaxAge(seconds: number): string {
  for (const unit of ['y', 'w', 'd', 'h'] as const) {
    const size = AGE_UNITS_S[unit];
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** One phrase per setting that differs from the default, e.g. ["deny 10.0.0.0/8", "client rate 50/s (burst 50)"]. */
export function describeEdge(edge: EdgeSettings): string[] {
  const out: string[] = [];
  if (edge.allow.length > 0) out.push(`allow only ${edge.allow.join(', ')}`);
  if (edge.deny.length > 0) out.push(`deny ${edge.deny.join(', ')}`);
  if (edge.clientRate !== null) out.push(`client rate ${formatRateLimit(edge.clientRate)}`);
  if (edge.environmentRate !== null) out.push(`environment rate ${formatRateLimit(edge.environmentRate)}`);
  if (edge.maxBodyBytes !== null) out.push(`max body ${formatByteSize(edge.maxBodyBytes)}`);
  if (edge.maxConnectionsPerClient !== null) out.push(`max ${edge.maxConnectionsPerClient} connections per client`);
  if (edge.httpsRedirect) out.push('HTTP redirected to HTTPS');
  if (edge.hstsMaxAgeS !== null) out.push(`HSTS max-age ${formatHstsMaxAge(edge.hstsMaxAgeS)}`);
  return out;
}
