import type { Logger } from '../logger.js';
import type { RowChangeListener } from './rowCache.js';

/** setTimeout's longest delay (about 24.8 days); a later change is re-checked then. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Fire a little after a key's activation, so the database clock has passed it too. */
const TIMER_MARGIN_MS = 250;
/**
 * While row notices may be lost (behind a transaction pooler without DATABASE_DIRECT_URL, or
 * while the listener reconnects), how often the keys are read again: a rotation, or a key
 * revoked as exposed, reaches this instance within this long. A read that failed is tried
 * again as often.
 */
export const KEYS_POLL_WHILE_DARK_MS = 2_000;

/**
 * Keeps what a server built from announced rows (the provider from the signing keys, the
 * cookie signer from the cookie keys) in step with them. A subclass's `apply` reads the rows,
 * applies them, and says in how many ms they change by themselves (a pending key starts
 * signing, a retired key's grace ends). It runs on each notice of a change, at that moment,
 * and every {@link KEYS_POLL_WHILE_DARK_MS} while notices may be lost; reloads queue behind
 * each other so the newest state always wins, and one that failed is tried again as soon.
 */
export abstract class RowReloader implements RowChangeListener {
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #reloads = 0;
  #poll: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The last reload failed: the next is {@link KEYS_POLL_WHILE_DARK_MS} away, and its success is logged. */
  #failing = false;

  readonly #log: Logger;
  readonly #what: string;

  /**
   * @param what names the rows in the log ("signing keys").
   * @param nextChangeInMs when the rows already applied change by themselves.
   */
  constructor(log: Logger, what: string, nextChangeInMs: number | undefined) {
    this.#log = log;
    this.#what = what;
    this.#schedule(nextChangeInMs);
    // Like the row caches, it trusts no notice until the listener is live (goLive).
    this.goDark();
  }

  /** Reads the rows and applies them; resolves to the ms until they change by themselves. */
  protected abstract apply(): Promise<number | undefined>;

  /** Reads the rows again; resolves once this reload (and those queued before it) ran. */
  reload(): Promise<void> {
    this.#reloads++;
    this.#reloading = this.#reloading.then(() => this.#reloadNow()).finally(() => this.#reloads--);
    return this.#reloading;
  }

  async #reloadNow(): Promise<void> {
    if (this.#stopped) return;
    try {
      const nextChangeInMs = await this.apply();
      if (this.#failing) this.#log.info(`${this.#what} read again`);
      this.#failing = false;
      this.#schedule(nextChangeInMs);
    } catch (error) {
      // Keep serving with the rows we have, and try again soon: the notice that asked for this
      // reload (a key revoked as exposed, say) is not sent again. It was a minute, during which
      // a revoked key went on signing after a pooler restart of a few seconds.
      if (!this.#failing)
        this.#log.warn(`cannot reload ${this.#what}; trying again every 2 s`, {
          error: (error as Error).message,
        });
      this.#failing = true;
      this.#schedule(KEYS_POLL_WHILE_DARK_MS - TIMER_MARGIN_MS);
    }
  }

  #schedule(inMs: number | undefined): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (inMs === undefined || this.#stopped) return;
    this.#timer = setTimeout(() => void this.reload(), Math.min(inMs + TIMER_MARGIN_MS, MAX_TIMER_MS));
    this.#timer.unref();
  }

  /** An announced row changed. */
  invalidate(_key?: string): void {
    void this.reload();
  }

  /** Notices resume: one may have been missed while they were down. */
  goLive(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    void this.reload();
  }

  /** Notices may be lost: the rows are read every {@link KEYS_POLL_WHILE_DARK_MS} until goLive. */
  goDark(): void {
    if (this.#poll || this.#stopped) return;
    this.#poll = setInterval(() => {
      if (this.#reloads === 0) void this.reload();
    }, KEYS_POLL_WHILE_DARK_MS);
    this.#poll.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
  }
}
