import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { Db } from '../db/connect.js';
import { type OidcModelRow, oidcModelsQueries } from '../db/queries/oidcModels.js';

/** A row's key among the held changes. */
const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/** One held change of a row: its new content, or its deletion; `done` runs once it has committed. */
type HeldChange =
  | { row: OidcModelRow; done: () => void }
  | { model: string; id: string; done: (key: string | undefined) => void };

/**
 * The provider's writes of one request, held until the request's work is done and then
 * stored in one statement, before the response leaves. A login's return to `/auth/:uid`
 * deletes its interaction and saves a grant, a code and a session, one awaited write after
 * another: four round trips, and Postgres's work for each, where one does (bench/README.md,
 * "Measured on 2026-12-04, 17:00–17:55").
 *
 * What a held write promises is what a write promises: nothing reaches the app (the redirect
 * with the code) before it has committed; when it fails, the request fails instead
 * ({@link holdWritesDuring}). Within the request, the adapter sends what is held before any
 * other statement on `oidc_models` (a lookup of a held row, a consumption, a revocation), so
 * the provider reads its own writes and they keep their order.
 */
export class HeldWrites {
  readonly #db: Db;
  #changes = new Map<string, HeldChange>();
  /** Changes being stored now, by key: still held until their statement has committed. */
  #storing = new Map<string, HeldChange>();
  /** The last flush: flushes run one after another, so two statements never race. */
  #flushed: Promise<void> = Promise.resolve();

  constructor(db: Db) {
    this.#db = db;
  }

  /** Whether a change of this row is held or being stored (the adapter stores it before reading the row). */
  holds(model: string, id: string): boolean {
    const key = keyOf(model, id);
    return this.#changes.has(key) || this.#storing.has(key);
  }

  /** Whether anything is held or being stored. */
  get busy(): boolean {
    return this.#changes.size > 0 || this.#storing.size > 0;
  }

  upsert(row: OidcModelRow, done: () => void): void {
    this.#hold(row.model, row.id, { row, done });
  }

  destroy(model: string, id: string, done: (key: string | undefined) => void): void {
    this.#hold(model, id, { model, id, done });
  }

  #hold(model: string, id: string, change: HeldChange) {
    // A later change of the same row replaces the earlier one, as the later statement would.
    const key = keyOf(model, id);
    this.#changes.delete(key);
    this.#changes.set(key, change);
  }

  /**
   * Stores what is held, in one statement, after any flush under way; a change's `done` runs
   * once it has committed. Resolves when everything held when it was called is stored.
   */
  flush(): Promise<void> {
    const flushed = this.#flushed.then(() => this.#store());
    this.#flushed = flushed.catch(() => {});
    return flushed;
  }

  async #store(): Promise<void> {
    if (this.#changes.size === 0) return;
    this.#storing = this.#changes;
    this.#changes = new Map();
    const changes = [...this.#storing.values()];
    const rows: OidcModelRow[] = [];
    const gone: { model: string; id: string }[] = [];
    for (const change of changes) {
      if ('row' in change) rows.push(change.row);
      else gone.push({ model: change.model, id: change.id });
    }
    try {
      const deleted = await oidcModelsQueries.destroyAndUpsert(this.#db, gone, rows);
      const keys = new Map(deleted.map(({ model, id, key }) => [keyOf(model, id), key]));
      for (const change of changes) {
        if ('row' in change) change.done();
        else change.done(keys.get(keyOf(change.model, change.id)));
      }
    } finally {
      this.#storing = new Map();
    }
  }
}

/** The held writes of each provider request that holds them, by the request's Koa context. */
const heldFor = new WeakMap<object, HeldWrites>();

/** The writes held for the request being served, if it holds them. */
export function heldWrites(): HeldWrites | undefined {
  const request = providerRequests.getStore();
  return request && typeof request === 'object' ? heldFor.get(request) : undefined;
}

/**
 * Runs `work`, the provider's handling of the request whose Koa context is `ctx`, with the
 * provider's writes held, and stores them when it is done. The provider's own context is
 * what its AsyncLocalStorage holds while it serves the request, so the adapter finds them.
 * @throws what storing them threw: the response the provider prepared is then not sent.
 */
export async function holdWritesDuring(ctx: object, db: Db, work: () => Promise<void>): Promise<void> {
  const held = new HeldWrites(db);
  heldFor.set(ctx, held);
  try {
    await work();
  } finally {
    heldFor.delete(ctx);
    await held.flush();
  }
}
