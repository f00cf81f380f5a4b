/**
 * Destinations an egress allow-list may never name: link-local (169.254.0.0/16, where
 * cloud metadata services answer at 169.254.169.254), loopback (127.0.0.0/8) and the
 * platform's own network. An entry inside one of them is refused with a 400 naming it;
 * a wider entry (0.0.0.0/0:443, 10.0.0.0/8) stays allowed, because the forward chain
 * rejects these destinations before the egress chain is consulted.
 */
import { InputError } from '@lanes/spec';

interface Range {
  readonly base: number;
  readonly length: number;
}

function parseRange(text: string): Range | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const length = Number(m[5]);
  if (octets.some((o) => o > 255) || length > 32) return null;
  return { base: octets.reduce((acc, o) => acc * 256 + o, 0), length };
}

/** True when every address of `inner` is in `outer`. */
function within(inner: Range, outer: Range): boolean {
  const size = 2 ** (32 - outer.length);
  return inner.length >= outer.length && inner.base >= outer.base && inner.base < outer.base + size;
}

const FORBIDDEN: readonly { readonly cidr: string; readonly what: string }[] = [
  { cidr: '169.254.0.0/16', what: 'link-local (169.254.0.0/16, where cloud metadata services answer)' },
  { cidr: '127.0.0.0/8', what: 'loopback (127.0.0.0/8)' },
];

/**
 * Throws an InputError naming the first entry that lies inside link-local, loopback or the
 * platform network. `entries` are already parsed ("CIDR" text, optional port); `field`
 * prefixes the entry's index in the message (`egress.2`).
 */
export function checkEgressDestinations(entries: readonly { readonly cidr: string; readonly port: number | null }[] | null, platformCidr: string, field = 'egress'): void {
  if (entries === null) return;
  const forbidden = [...FORBIDDEN, { cidr: platformCidr, what: `the platform's own network (${platformCidr})` }];
  entries.forEach((e, i) => {
    const range = parseRange(e.cidr);
    if (range === null) return;
    for (const f of forbidden) {
      const outer = parseRange(f.cidr);
      if (outer !== null && within(range, outer)) {
        const shown = `${e.cidr}${e.port === null ? '' : `:${e.port}`}`;
        throw new InputError(`${field}.${i}: ${JSON.stringify(shown)} is inside ${f.what}; instances may never reach it, so it cannot be allowed`, `${field}.${i}`);
      }
    }
  });
}
