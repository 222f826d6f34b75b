import type { Db } from './connect.js';
import {
  type ChallengeWithRow,
  type GrantRenewal,
  type OidcModelRow,
  oidcModelsQueries,
} from './queries/oidcModels.js';

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface Pending {
  row: OidcModelRow;
  /** Challenges to store with the row (every write's, when the row was written twice meanwhile). */
  challenges?: ChallengeWithRow[];
  /** Grants a code among the rows renews, stored with it (every write's, as challenges). */
  renewals?: GrantRenewal[];
  waiters: Waiter[];
}

/**
 * Group commit for the provider's writes. Every token, code, session and interaction the
 * provider saves is an upsert into `oidc_models`, and under load most of a write's cost is
 * the statement and its commit, not the row: a client_credentials token is one row, one
 * round trip and one WAL flush. Writes that arrive while a batch is being written wait for
 * the next one, which stores them all in one statement.
 *
 * - Nothing waits on a timer: with no batch in flight a write goes out at the end of the
 *   current turn of the event loop, so a quiet server answers as fast as with one statement
 *   per write, and batches grow only as fast as writes queue up.
 * - Each caller's promise settles when the batch holding its row has committed, so a read
 *   that follows (the token endpoint reading the code it just saved) sees the row.
 * - One batch at a time keeps two writes of the same instance in the order they were made;
 *   within a batch the later payload replaces the earlier one.
 * - A batch that fails is retried row by row, so a row Postgres refuses fails only the
 *   request that made it.
 */
export class GroupedUpserts {
  readonly #db: Db;
  readonly #maxRows: number;
  #pending = new Map<string, Pending>();
  #writing = false;
  #scheduled = false;
  /** Statements that committed so far (each a batch of one or more rows), and the rows in them. */
  batches = 0;
  /** Rows committed so far; `rows / batches` is how much the grouping saves. */
  rows = 0;

  /** `maxRows` bounds a statement's size: 7 parameters a row, well under Postgres' 65,535. */
  constructor(db: Db, maxRows = 500) {
    this.#db = db;
    this.#maxRows = maxRows;
  }

  /**
   * Stores the row (insert or replace by model and id), and `challenge` and `renewal` (of the
   * grant a code is issued under) with it in the same statement; resolves once all are committed.
   */
  upsert(row: OidcModelRow, challenge?: ChallengeWithRow, renewal?: GrantRenewal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const key = `${row.model}\u0000${row.id}`;
      const queued = this.#pending.get(key);
      if (queued) {
        queued.row = row;
        queued.waiters.push({ resolve, reject });
        if (challenge && queued.challenges) queued.challenges.push(challenge);
        else if (challenge) queued.challenges = [challenge];
        if (renewal && queued.renewals) queued.renewals.push(renewal);
        else if (renewal) queued.renewals = [renewal];
      } else {
        this.#pending.set(key, {
          row,
          waiters: [{ resolve, reject }],
          ...(challenge && { challenges: [challenge] }),
          ...(renewal && { renewals: [renewal] }),
        });
      }
      this.#schedule();
    });
  }

  #schedule() {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: requests parsed in the same I/O phase join one batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain() {
    this.#writing = true;
    try {
      while (this.#pending.size > 0) {
        const batch: Pending[] = [];
        for (const [key, pending] of this.#pending) {
          batch.push(pending);
          this.#pending.delete(key);
          if (batch.length === this.#maxRows) break;
        }
        await this.#write(batch);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #write(batch: Pending[]) {
    try {
      // Most batches carry no challenge (tokens) and no renewal: no array per row for them.
      const challenges: ChallengeWithRow[] = [];
      const renewals: GrantRenewal[] = [];
      for (const pending of batch) {
        if (pending.challenges) challenges.push(...pending.challenges);
        if (pending.renewals) renewals.push(...pending.renewals);
      }
      await oidcModelsQueries.upsertRows(
        this.#db,
        batch.map((p) => p.row),
        challenges,
        renewals,
      );
      this.batches += 1;
      this.rows += batch.length;
      for (const { waiters } of batch) for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      if (batch.length === 1) {
        for (const waiter of batch[0]!.waiters) waiter.reject(error);
        return;
      }
      // One bad row must not fail its neighbours: each row again, on its own.
      await Promise.all(batch.map((pending) => this.#write([pending])));
    }
  }
}
