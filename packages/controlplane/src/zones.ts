/**
 * Which zones are alive: a zone is ready while its supervisor reports within the grace
 * period. Kept in memory (heartbeats arrive every second); the supervisor's address and
 * URL are also persisted in the store.
 */
export interface ZoneInfo {
  readonly name: string;
  /**
   * ready: reporting; awaiting: not heard from since the control plane started, still within
   * the start grace (its instances keep counting); readmitting: back from an outage, fenced;
   * unavailable: silent past the grace; down: cut off by `lanes zone down`.
   */
  readonly state: 'ready' | 'awaiting' | 'readmitting' | 'unavailable' | 'down';
  readonly address: string | null;
  readonly agentUrl: string | null;
  readonly lastSeenAt: string | null;
}

export class ZoneRegistry {
  readonly #lastSeen = new Map<string, number>();
  readonly #info = new Map<string, { address: string; agentUrl: string }>();
  readonly #zones: readonly string[];
  readonly #graceMs: number;
  readonly #down = new Set<string>();
  readonly #startedAt: number;
  readonly #startGraceMs: number;
  readonly #readmitMs: number;
  /** Zones back from an outage, fenced until then: their instances take no traffic and count for nothing. */
  readonly #fencedUntil = new Map<string, number>();

  /**
   * @param startGraceMs how long after a control-plane start a zone not yet heard from still
   *   counts as alive: the heartbeat grace plus the supervisors' longest reconnect delay (5 s),
   *   so a restarted control plane waits for supervisors to find it again instead of
   *   rescheduling healthy instances (static stability).
   */
  constructor(zones: readonly string[], graceMs: number, now = Date.now(), readmitMs = 2000, startGraceMs = graceMs + 5000) {
    this.#zones = zones;
    this.#graceMs = graceMs;
    this.#startedAt = now;
    this.#readmitMs = readmitMs;
    this.#startGraceMs = Math.max(graceMs, startGraceMs);
  }

  /** Not heard from since the control plane started, and still within the start grace. */
  isAwaiting(zone: string, now = Date.now()): boolean {
    return !this.#down.has(zone) && !this.#lastSeen.has(zone) && now - this.#startedAt <= this.#startGraceMs;
  }

  /** A zone back from an outage is re-admitted only after it has reported for this long. */
  #fence(zone: string, now: number): void {
    this.#fencedUntil.set(zone, now + this.#readmitMs);
  }

  isFenced(zone: string, now = Date.now()): boolean {
    const until = this.#fencedUntil.get(zone);
    return until !== undefined && now < until;
  }

  /** Marks a zone administratively down (a simulated outage) or up again; true when it changed. */
  setDown(zone: string, down: boolean): boolean {
    const was = this.#down.has(zone);
    if (down) this.#down.add(zone);
    else this.#down.delete(zone);
    if (was && !down) this.#fence(zone, Date.now());
    return was !== down;
  }

  isDown(zone: string): boolean {
    return this.#down.has(zone);
  }

  /**
   * Whether instances of the zone may take traffic: not down, and reporting — or, right
   * after a control-plane start, not yet heard from within the grace (static stability:
   * a restart of the control plane must not empty the routing table).
   */
  routable(zone: string, now = Date.now()): boolean {
    if (this.#down.has(zone)) return false;
    if (this.isReady(zone, now)) return !this.isFenced(zone, now);
    return this.isAwaiting(zone, now);
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
    // Back after being silent: whatever its instances did meanwhile, they wait to be re-admitted.
    if (!wasReady && this.#lastSeen.has(zone) && !this.#down.has(zone)) this.#fence(zone, now);
    this.#lastSeen.set(zone, now);
    this.#info.set(zone, { address, agentUrl });
    return !wasReady;
  }

  isReady(zone: string, now = Date.now()): boolean {
    if (this.#down.has(zone)) return false;
    const t = this.#lastSeen.get(zone);
    return t !== undefined && now - t <= this.#graceMs;
  }

  /** Ready zones in platform order. */
  ready(now = Date.now()): string[] {
    return this.#zones.filter((z) => this.isReady(z, now));
  }

  /**
   * Zones whose instances count: ready and not fenced after an outage, or awaited right after
   * a control-plane start (their last known state stands until they report or the start
   * grace runs out).
   */
  live(now = Date.now()): string[] {
    return this.#zones.filter((z) => (this.isReady(z, now) && !this.isFenced(z, now)) || this.isAwaiting(z, now));
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
        state: this.#down.has(name)
          ? 'down'
          : this.isAwaiting(name, now)
            ? 'awaiting'
            : !this.isReady(name, now)
              ? 'unavailable'
              : this.isFenced(name, now)
                ? 'readmitting'
                : 'ready',
        address: info?.address ?? null,
        agentUrl: info?.agentUrl ?? null,
        lastSeenAt: t === undefined ? null : new Date(t).toISOString(),
      };
    });
  }
}
