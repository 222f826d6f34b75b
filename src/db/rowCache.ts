import type { Logger } from '../logger.js';
import { rowChangeListenerUp } from '../metrics.js';
import type { ListenHandlers, Subscription } from './notifications.js';

/**
 * Rows kept in process so the provider's hot path (every authorize, token, userinfo and
 * introspection request reads its client, and most read the account) skips a database
 * round trip.
 *
 * It is correct only while every change reaches it: the cached tables announce each
 * committed change (migration 0004), and the server calls {@link invalidate} on each notice.
 * So the cache fails closed: it serves nothing until {@link goLive} (the subscription is
 * listening), and it empties and stops serving on {@link goDark} (the connection dropped,
 * notices may be lost) until the next goLive.
 *
 * A lookup that was already on its way to the database when its row's change arrived may
 * return the old row; the generation counter keeps such a result out of the cache. Changes of
 * other rows do not: under load, notices of other rows arrive every few milliseconds, and a
 * global check would keep most answers out.
 */
/** Something kept in step with an announced table: a {@link RowCache}, or anything else built from its rows. */
export interface RowChangeListener {
  /** The row with this key changed (or is new, or is gone). */
  invalidate(key: string): void;
  /** Every change from now on will be announced. */
  goLive(): void;
  /** Changes may go unannounced until the next goLive. */
  goDark(): void;
}

/** A kept row and when it last went to the end of the recency order. */
interface Kept<T> {
  row: T;
  movedAt: number;
}

export class RowCache<T extends object> implements RowChangeListener {
  /** Insertion order is recency order: the oldest goes first. */
  #entries = new Map<string, Kept<T>>();
  /** Counts moves to the end of {@link #entries} (each remember, and each hit that moves its entry). */
  #moves = 0;
  /** A hit moves its entry to the end once it is this many moves from it, not before. */
  readonly #moveAfter: number;
  #live = false;
  /** Counts announced changes. */
  #generation = 0;
  /** The generation of each recently changed key, oldest first; at most `recentChanges`. */
  #changedAt = new Map<string, number>();
  /** Before this generation, changes are no longer told apart by key (all-row changes, or forgotten ones). */
  #settledBefore = 0;

  /**
   * @param maxEntries beyond this many rows the least recently used one is dropped.
   * @param recentChanges how many changed keys are told apart: a lookup that started before
   *   the oldest of them is not kept (at thousands of notices a second, one over a second old).
   */
  constructor(
    private readonly maxEntries: number,
    private readonly recentChanges = 4_096,
  ) {
    this.#moveAfter = Math.ceil(maxEntries / 2);
  }

  /**
   * The cached row, or `load()`'s answer (cached when it exists and nothing changed
   * meanwhile); with `fresh`, `load()`'s answer whatever is cached.
   */
  // Not async: a hit, the common case on every token request (its client, its account), is
  // answered without an async function's turns.
  find(key: string, load: () => Promise<T | undefined>, fresh = false): Promise<T | undefined> {
    const hit = fresh ? undefined : this.peek(key);
    return hit ? Promise.resolve(hit) : this.#load(key, load, fresh);
  }

  async #load(key: string, load: () => Promise<T | undefined>, fresh = false): Promise<T | undefined> {
    const generation = this.#generation;
    const loaded = await load();
    // Unknown keys are not cached: anyone can send those, and they must not fill memory.
    if (loaded) this.remember(key, loaded, generation);
    // Read anew and gone: what memory held is gone too.
    else if (fresh) this.invalidate(key);
    return loaded;
  }

  /**
   * The cached row, if the cache is live and holds it. A hit keeps the row among the most
   * recently used half: one that is not goes to the end. Moving it on every hit made a hot
   * row slow to find: a Map keeps each deleted entry in its key's hash chain until it next
   * rehashes, so one token introspected over and over left thousands of them to walk through
   * (5 µs per lookup at 5,000 rows; bench/README.md, 2026-12-03 evening).
   */
  peek(key: string): T | undefined {
    if (!this.#live) return undefined;
    const kept = this.#entries.get(key);
    if (!kept) return undefined;
    if (this.#moves - kept.movedAt >= this.#moveAfter) {
      this.#entries.delete(key);
      kept.movedAt = ++this.#moves;
      this.#entries.set(key, kept);
    }
    return kept.row;
  }

  /** Counts announced changes: read it before a read or write whose answer {@link remember} may keep. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Keeps `row` as what is stored under `key`, unless a change of that row (or of every row)
   * was announced since `generation` was read, as the row may then be older than what is
   * stored, or the cache is dark.
   */
  remember(key: string, row: T, generation: number): void {
    if (!this.#live || generation < this.#settledBefore) return;
    if ((this.#changedAt.get(key) ?? -1) > generation) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    // Shared by every request from now on: nobody may change it.
    this.#entries.set(key, { row: deepFreeze(row), movedAt: ++this.#moves });
  }

  /** A row changed (or was deleted): its next lookup goes to the database. */
  invalidate(key: string): void {
    this.#generation += 1;
    this.#entries.delete(key);
    this.#changedAt.delete(key);
    this.#changedAt.set(key, this.#generation);
    if (this.#changedAt.size > this.recentChanges) {
      const [oldest, at] = this.#changedAt.entries().next().value!;
      this.#changedAt.delete(oldest);
      this.#settledBefore = at;
    }
  }

  /** Something many rows are built from changed: every next lookup goes to the database. */
  invalidateAll(): void {
    this.#generation += 1;
    this.#settledBefore = this.#generation;
    this.#changedAt.clear();
    this.#entries.clear();
  }

  /** Every change from now on will be announced: start serving from memory. */
  goLive(): void {
    this.invalidateAll();
    this.#live = true;
  }

  /** Changes may go unannounced: forget everything and read through until goLive. */
  goDark(): void {
    this.#live = false;
    this.invalidateAll();
  }

  get live(): boolean {
    return this.#live;
  }

  get size(): number {
    return this.#entries.size;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** The channel migration 0004's triggers announce changes on, as `<table>:<key>`. */
export const ROW_CHANGES_CHANNEL = 'sesame_row_changes';

/**
 * While notices are not arriving, the warning is repeated this often (each failed reconnect
 * in between is logged at debug), so an outage that lasts is not one line far back in the log.
 */
export const WARN_AGAIN_AFTER_MS = 10 * 60_000;

/**
 * Keeps caches of announced tables in step with the database: each notice invalidates its
 * row; all go live together when the subscription listens, and dark when it is lost.
 * @param caches the listener of each table, by table name.
 */
export function keepCachesInStep(
  listen: (channel: string, handlers: ListenHandlers) => Promise<Subscription>,
  caches: Record<string, RowChangeListener>,
  log: Logger,
  warnAgainAfterMs = WARN_AGAIN_AFTER_MS,
): Promise<Subscription> {
  const all = Object.values(caches);
  // When the notices stopped arriving, and when that was last warned of; unset while they arrive.
  let lostAt: number | undefined;
  let warnedAt = 0;
  let unsentWarnedAt = Number.NEGATIVE_INFINITY;
  rowChangeListenerUp.set(0);
  return listen(ROW_CHANGES_CHANNEL, {
    onNotice(payload) {
      const colon = payload.indexOf(':');
      const cache = caches[payload.slice(0, colon)];
      if (!cache) return;
      cache.invalidate(payload.slice(colon + 1));
    },
    onLive() {
      for (const cache of all) cache.goLive();
      rowChangeListenerUp.set(1);
      if (lostAt !== undefined) log.info('row change notifications resumed; caching rows again');
      else log.debug('row caches live');
      lostAt = undefined;
    },
    onLost(error) {
      for (const cache of all) cache.goDark();
      rowChangeListenerUp.set(0);
      const now = Date.now();
      if (lostAt === undefined) {
        lostAt = warnedAt = now;
        log.warn('row change notifications lost; reading every row from the database until they resume', {
          error: error.message,
        });
      } else if (now - warnedAt >= warnAgainAfterMs) {
        warnedAt = now;
        log.warn('row change notifications still not arriving; reading every row from the database', {
          error: error.message,
          minutes: Math.round((now - lostAt) / 60_000),
        });
      } else log.debug('row change notifications still not arriving', { error: error.message });
    },
    onPingUnsent(error) {
      // The caches stay; a pool too busy to send a ping for long is worth a line now and then.
      const now = Date.now();
      if (now - unsentWarnedAt < warnAgainAfterMs) {
        log.debug('row change ping not sent through the pool', { error: error.message });
        return;
      }
      unsentWarnedAt = now;
      log.warn('row change ping not sent through the pool; the caches stay', { error: error.message });
    },
  });
}
