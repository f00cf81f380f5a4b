/**
 * A fan-out of the latest value per key to long-lived NDJSON streams (supervisor and
 * gateway watches). A value is sent only when it differs from the last one sent, and a new
 * subscriber gets the current value at once: level-triggered, so a dropped stream loses
 * nothing that a reconnect does not restore.
 */
export type Send = (line: string) => void;

export class Hub<T> {
  readonly #latest = new Map<string, { json: string; value: T }>();
  readonly #subs = new Map<string, Set<Send>>();

  /** Publishes `value` under `key`; returns true when it changed. */
  publish(key: string, value: T, encode: (v: T) => string, sameAs: (v: T) => string = (v) => JSON.stringify(v)): boolean {
    const json = sameAs(value);
    const prev = this.#latest.get(key);
    if (prev && prev.json === json) return false;
    this.#latest.set(key, { json, value });
    const line = encode(value);
    for (const send of this.#subs.get(key) ?? []) send(line);
    return true;
  }

  latest(key: string): T | undefined {
    return this.#latest.get(key)?.value;
  }

  subscribe(key: string, send: Send, encode: (v: T) => string): () => void {
    let set = this.#subs.get(key);
    if (!set) {
      set = new Set();
      this.#subs.set(key, set);
    }
    set.add(send);
    const cur = this.#latest.get(key);
    if (cur) send(encode(cur.value));
    return () => set.delete(send);
  }

  subscribers(key: string): number {
    return this.#subs.get(key)?.size ?? 0;
  }
}
