import { AsyncResource } from 'node:async_hooks';
import type { Logger } from './logger.js';

/** When and how often an outbox works through its rows. */
export interface OutboxTiming {
  /** How often an instance looks for due rows (work queued in this process wakes it at once). */
  pollMs: number;
  /** The wait after the 1st, 2nd, ... failed attempt; the last value repeats. */
  backoffMs: readonly number[];
  /** A row still failing this long after it was queued is given up. */
  giveUpAfterMs: number;
  /** How long a claimed row is this instance's; longer than an attempt can take (timeoutMs). */
  leaseMs: number;
  /** An attempt that takes longer has failed. */
  timeoutMs: number;
}

/** A row an outbox claimed: `attempts` already counts this one. */
export interface ClaimedRow {
  attempts: number;
  created_at: Date;
}

/** Rows one instance claims at a time. */
const BATCH = 20;

/**
 * The loop shared by Sesame's outboxes (back-channel logout tokens, mail): every `pollMs`,
 * and at once when woken, it claims due rows (each outbox's claim uses SKIP LOCKED and a
 * lease, so several instances on one database share the rows and never take each other's)
 * and attempts each. A subclass says how to claim and attempt; {@link retryAt} gives the
 * backoff. Nothing a request does waits for an attempt.
 */
export abstract class OutboxWorker<Row extends ClaimedRow> {
  protected readonly timing: OutboxTiming;
  #timer: NodeJS.Timeout | undefined;
  #work: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** The context the outbox was made in: a request that wakes it lends it none of its own (its client address). */
  readonly #scope = new AsyncResource('OutboxWorker');

  constructor(
    protected readonly log: Logger,
    /** The outboxes of this kind running in this process, for a wake-up after a commit. */
    private readonly running: Set<OutboxWorker<Row>>,
    timing: OutboxTiming,
  ) {
    // An attempt that outlived its lease could be claimed and made again by another instance.
    if (timing.timeoutMs >= timing.leaseMs)
      throw new Error('an outbox attempt must end before its lease does');
    this.timing = timing;
  }

  /** Claims up to `limit` due rows for `leaseSeconds`. */
  protected abstract claim(limit: number, leaseSeconds: number): Promise<Row[]>;

  /** Attempts one claimed row and records the outcome (done, retry at {@link retryAt}, or given up). */
  protected abstract attempt(row: Row): Promise<void>;

  /** A one-line name for the log ("mail outbox"). */
  protected abstract readonly name: string;

  start(): void {
    this.#stopped = false;
    this.running.add(this);
    this.#timer = setInterval(() => this.wake(), this.timing.pollMs);
    this.#timer.unref();
    this.wake();
  }

  /** Stops polling and waits for the attempts in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.running.delete(this);
    if (this.#timer) clearInterval(this.#timer);
    await this.#work;
  }

  /** Looks for due rows now (or right after the round under way). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#work) {
      this.#again = true;
      return;
    }
    this.#work = this.#scope
      .runInAsyncScope(() => this.#drain())
      .finally(() => {
        this.#work = undefined;
      });
  }

  /**
   * When a row that just failed is tried again: after the backoff for its attempts so far,
   * or undefined when that would be past giveUpAfterMs from its queuing (give it up).
   */
  protected retryAt(row: Row): Date | undefined {
    const { backoffMs, giveUpAfterMs } = this.timing;
    const waitMs = backoffMs[Math.min(row.attempts, backoffMs.length) - 1]!;
    const retryAt = new Date(Date.now() + waitMs);
    return retryAt.getTime() - new Date(row.created_at).getTime() > giveUpAfterMs ? undefined : retryAt;
  }

  async #drain(): Promise<void> {
    try {
      do {
        this.#again = false;
        while (!this.#stopped) {
          const claimed = await this.claim(BATCH, this.timing.leaseMs / 1000);
          // Every attempt of the batch ends before the round does, a failed one too: stop()
          // waits for the round, and the connections the others still use close after it.
          const outcomes = await Promise.allSettled(claimed.map((row) => this.attempt(row)));
          const failed = outcomes.find((outcome) => outcome.status === 'rejected');
          if (failed) throw failed.reason;
          if (claimed.length < BATCH) break;
        }
      } while (this.#again && !this.#stopped);
    } catch (error) {
      this.log.warn(`${this.name} failed`, { error: (error as Error).message });
    }
  }
}
