import type { Db } from './connect.js';
import { rateLimitHitsQueries, type WindowHits } from './queries/rateLimitHits.js';

/** What a {@link HitCounter} says about a key after counting a hit, or when asked. */
export interface HitVerdict {
  /** Whether the key is still within its limit. */
  allowed: boolean;
  /** When refused: milliseconds until the key's window ends. */
  msBeforeNext: number;
}

/**
 * Counts hits per key in fixed windows (a window starts with a key's first hit) and says
 * when a key is over its limit. Limiters name their keys apart (`ip:...`, `client-auth:...`).
 */
export interface HitCounter {
  /** Counts one hit on `key`; refused once more than `limit` fell in the window. */
  hit(key: string, limit: number, windowSeconds: number): Promise<HitVerdict>;
  /** Whether `key` has already used up `limit` hits in its window, without counting one. */
  check(key: string, limit: number): Promise<HitVerdict>;
  /** Forgets windows that ended. */
  sweep(): Promise<number>;
}

const ALLOWED: HitVerdict = { allowed: true, msBeforeNext: 0 };

/**
 * Keys known to be over their limit, until their window ends: a refused client keeps being
 * refused without a database round trip. Capped, so a flood of addresses cannot fill memory.
 */
class BlockedKeys {
  #until = new Map<string, number>();

  constructor(private readonly maxEntries = 10_000) {}

  msLeft(key: string): number {
    const until = this.#until.get(key);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left > 0) return left;
    this.#until.delete(key);
    return 0;
  }

  block(key: string, ms: number): void {
    if (this.#until.size >= this.maxEntries) this.#until.delete(this.#until.keys().next().value!);
    this.#until.set(key, Date.now() + ms);
  }
}

function verdict(window: WindowHits | undefined, limit: number, consumed: boolean): HitVerdict {
  if (!window) return ALLOWED;
  const over = consumed ? window.hits > limit : window.hits >= limit;
  return over ? { allowed: false, msBeforeNext: Math.max(1, window.msLeft) } : ALLOWED;
}

/**
 * Of a limit, the share an instance takes from the shared count at once: a twentieth (30 of
 * the default 600 a minute), and single hits for limits under 40.
 */
export const LEASE_SHARE = 20;

/** Hits this instance has taken from a key's shared count and not yet used: counts `next` to `last` of its window. */
interface Lease {
  next: number;
  last: number;
  endsAt: number;
}

/**
 * Counters in Postgres, shared by every instance on the database (migration 0009), with the
 * refused keys remembered in process as a fast front.
 *
 * A large limit is counted in leases: an instance adds a {@link LEASE_SHARE}th of the limit
 * to the shared count in one statement and hands those hits out from memory, so a person's
 * authorize, options and verify cost one statement instead of three. Each instance may hold
 * a lease not yet used up, so a key can be refused up to that many hits per instance early,
 * never late. Small limits (failed client authentications, sign-up attempts) count every hit.
 */
export class PostgresHitCounter implements HitCounter {
  #blocked = new BlockedKeys();
  #leases = new Map<string, Lease>();
  /** A lease being taken, per key: requests of that key wait for it rather than take their own. */
  #taking = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly maxLeases = 10_000,
  ) {}

  async hit(key: string, limit: number, windowSeconds: number): Promise<HitVerdict> {
    const blockedMs = this.#blocked.msLeft(key);
    if (blockedMs) return { allowed: false, msBeforeNext: blockedMs };
    const share = Math.floor(limit / LEASE_SHARE);
    if (share <= 1) {
      return this.#remember(
        key,
        verdict(await rateLimitHitsQueries.hit(this.db, key, windowSeconds), limit, true),
      );
    }
    for (;;) {
      const now = Date.now();
      const lease = this.#leases.get(key);
      if (lease && lease.endsAt > now && lease.next <= lease.last) {
        const hits = lease.next++;
        return this.#remember(key, verdict({ hits, msLeft: lease.endsAt - now }, limit, true));
      }
      let taking = this.#taking.get(key);
      if (!taking) {
        taking = this.#takeLease(key, share, windowSeconds).finally(() => this.#taking.delete(key));
        this.#taking.set(key, taking);
      }
      await taking;
    }
  }

  async #takeLease(key: string, share: number, windowSeconds: number): Promise<void> {
    const { hits, msLeft } = await rateLimitHitsQueries.hit(this.db, key, windowSeconds, share);
    this.#leases.delete(key);
    // A flood of fresh addresses must not grow memory without bound: the oldest lease goes.
    if (this.#leases.size >= this.maxLeases) this.#leases.delete(this.#leases.keys().next().value!);
    this.#leases.set(key, { next: hits - share + 1, last: hits, endsAt: Date.now() + msLeft });
  }

  async check(key: string, limit: number): Promise<HitVerdict> {
    const blockedMs = this.#blocked.msLeft(key);
    if (blockedMs) return { allowed: false, msBeforeNext: blockedMs };
    return this.#remember(key, verdict(await rateLimitHitsQueries.find(this.db, key), limit, false));
  }

  sweep(): Promise<number> {
    return rateLimitHitsQueries.deleteExpired(this.db);
  }

  #remember(key: string, result: HitVerdict): HitVerdict {
    if (!result.allowed) this.#blocked.block(key, result.msBeforeNext);
    return result;
  }
}

/** Counters in this process: enough for the embedded database, which one process owns. */
export class MemoryHitCounter implements HitCounter {
  #windows = new Map<string, { hits: number; endsAt: number }>();

  constructor(private readonly maxKeys = MEMORY_HIT_KEYS) {}

  async hit(key: string, limit: number, windowSeconds: number): Promise<HitVerdict> {
    const window = this.hitNow(key, windowSeconds);
    return verdict({ hits: window.hits, msLeft: window.endsAt - Date.now() }, limit, true);
  }

  async check(key: string, limit: number): Promise<HitVerdict> {
    const hits = this.hitsNow(key);
    return hits === 0
      ? ALLOWED
      : verdict({ hits, msLeft: this.#windows.get(key)!.endsAt - Date.now() }, limit, false);
  }

  /**
   * Counts a hit of `key` at once, in a window of `windowSeconds` that starts with the first
   * hit; answers the window. Synchronous, for a caller that must check and count with no turn
   * of the event loop between (clientAuthBackoff.ts).
   */
  hitNow(key: string, windowSeconds: number): { hits: number; endsAt: number } {
    const now = Date.now();
    let window = this.#windows.get(key);
    if (!window || window.endsAt <= now) {
      if (!window && this.#windows.size >= this.maxKeys) this.#makeRoom();
      window = { hits: 0, endsAt: now + windowSeconds * 1000 };
      this.#windows.set(key, window);
    }
    window.hits += 1;
    return window;
  }

  /** The hits of `key` in its current window (0 when it has none), at once. */
  hitsNow(key: string): number {
    const window = this.#windows.get(key);
    return window && window.endsAt > Date.now() ? window.hits : 0;
  }

  async sweep(): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const [key, window] of this.#windows) {
      if (window.endsAt <= now) {
        this.#windows.delete(key);
        removed += 1;
      }
    }
    return removed;
  }

  /** How many keys are counted now (tests). */
  get size(): number {
    return this.#windows.size;
  }

  /**
   * A flood of fresh keys between two sweeps must not grow memory without bound. The ended
   * windows go first; if live ones still fill the map, the oldest keys go until a tenth of
   * it is free, so the next full walk is that many new keys away. It was a sweep of ended
   * windows only, on every hit past the cap: with live windows the map grew on, and every
   * request walked all of it (1.6 ms each at 150,000 keys).
   */
  #makeRoom(): void {
    void this.sweep();
    const target = Math.floor(this.maxKeys * 0.9);
    for (const key of this.#windows.keys()) {
      if (this.#windows.size <= target) break;
      this.#windows.delete(key);
    }
  }
}

/** Keys the embedded database's in-memory counter holds at most (~100 bytes each). */
export const MEMORY_HIT_KEYS = 100_000;
