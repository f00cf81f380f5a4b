/**
 * Which zones are alive: a zone is ready while its supervisor reports within the grace
 * period. Kept in memory (heartbeats arrive every second); the supervisor's address and
 * URL are also persisted in the store.
 */
export interface ZoneInfo {
  readonly name: string;
  readonly state: 'ready' | 'unavailable';
  readonly address: string | null;
  readonly agentUrl: string | null;
  readonly lastSeenAt: string | null;
}

export class ZoneRegistry {
  readonly #lastSeen = new Map<string, number>();
  readonly #info = new Map<string, { address: string; agentUrl: string }>();
  readonly #zones: readonly string[];
  readonly #graceMs: number;

  constructor(zones: readonly string[], graceMs: number) {
    this.#zones = zones;
    this.#graceMs = graceMs;
  }

  get names(): readonly string[] {
    return this.#zones;
  }

  has(zone: string): boolean {
    return this.#zones.includes(zone);
  }

  /** Records a heartbeat; returns true when the zone just became ready. */
  seen(zone: string, address: string, agentUrl: string, now = Date.now()): boolean {
    const wasReady = this.isReady(zone, now);
    this.#lastSeen.set(zone, now);
    this.#info.set(zone, { address, agentUrl });
    return !wasReady;
  }

  isReady(zone: string, now = Date.now()): boolean {
    const t = this.#lastSeen.get(zone);
    return t !== undefined && now - t <= this.#graceMs;
  }

  /** Ready zones in platform order. */
  ready(now = Date.now()): string[] {
    return this.#zones.filter((z) => this.isReady(z, now));
  }

  agentUrl(zone: string): string | null {
    return this.#info.get(zone)?.agentUrl ?? null;
  }

  list(now = Date.now()): ZoneInfo[] {
    return this.#zones.map((name) => {
      const t = this.#lastSeen.get(name);
      const info = this.#info.get(name);
      return {
        name,
        state: this.isReady(name, now) ? 'ready' : 'unavailable',
        address: info?.address ?? null,
        agentUrl: info?.agentUrl ?? null,
        lastSeenAt: t === undefined ? null : new Date(t).toISOString(),
      };
    });
  }
}
