import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { Db } from '../db/connect.js';
import {
  type GrantRenewal,
  type OidcModelRow,
  oidcModelsQueries,
  type StoreCondition,
} from '../db/queries/oidcModels.js';

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
 * "Measured on 2026-12-04, 17:00–17:55"). The renewal of the grant the code is issued under
 * (grantRenewal.ts), when it has one, goes in the same statement.
 *
 * What a held write promises is what a write promises: nothing reaches the app (the redirect
 * with the code) before it has committed; when it fails, the request fails instead
 * ({@link holdWritesDuring}). Within the request, the adapter sends what is held before any
 * other statement on `oidc_models` (a lookup of a held row, a consumption, a revocation), so
 * the provider reads its own writes and they keep their order.
 */
export class HeldWrites {
  readonly #db: Db;
  /** What the first store must also do, and find done, to store anything (see {@link storeWritesIf}). */
  #condition: StoreCondition | undefined;
  /** The row the first store must find, or delete if it deletes it ({@link requireRowOfFirstStore}). */
  #requiredRow: { model: string; id: string; json: string | undefined } | undefined;
  /** Why nothing may be stored any more: the condition was not met, or its statement failed. */
  #refused: Error | undefined;
  #changes = new Map<string, HeldChange>();
  /** Changes being stored now, by key: still held until their statement has committed. */
  #storing = new Map<string, HeldChange>();
  /** Renewals of grants that held codes are issued under, by grant id; `done` runs once committed. */
  #renewals = new Map<string, { renewal: GrantRenewal; done: () => void }>();
  /** Renewals being stored now, by grant id. */
  #renewing = new Map<string, { renewal: GrantRenewal; done: () => void }>();
  /** Whether a store has run (a condition set later would not cover what it stored). */
  #storedOnce = false;
  /** The last flush: flushes run one after another, so two statements never race. */
  #flushed: Promise<void> = Promise.resolve();

  constructor(db: Db, condition?: StoreCondition) {
    this.#db = db;
    this.#condition = condition;
  }

  /** Whether a change of this row is held or being stored (the adapter stores it before reading the row). */
  holds(model: string, id: string): boolean {
    const key = keyOf(model, id);
    if (this.#changes.has(key) || this.#storing.has(key)) return true;
    return model === 'Grant' && (this.#renewals.has(id) || this.#renewing.has(id));
  }

  /** Whether anything is held or being stored. */
  get busy(): boolean {
    return (
      this.#changes.size > 0 || this.#storing.size > 0 || this.#renewals.size > 0 || this.#renewing.size > 0
    );
  }

  /** Whether {@link requireRowOfFirstStore} may still set a condition: none is set, and nothing was stored or held yet. */
  get acceptsCondition(): boolean {
    return !this.#condition && !this.#requiredRow && !this.#refused && !this.#storedOnce && !this.busy;
  }

  /**
   * Makes the first store that stores anything also require the row `id` of `model` to be
   * stored (exactly as `json`, when given), as {@link storeWritesIf} requires its condition:
   * all of the request's writes, or none. If that store deletes the row, what it requires is
   * that its own deletion deletes it: of two requests that both read the row and delete it,
   * exactly one stores anything. Only while {@link acceptsCondition}.
   */
  requireRowOfFirstStore(model: string, id: string, json?: string): void {
    if (!this.acceptsCondition) throw new Error('a condition must come before any write is held or stored');
    this.#requiredRow = { model, id, json };
  }

  upsert(row: OidcModelRow, done: () => void): void {
    this.#hold(row.model, row.id, { row, done });
  }

  destroy(model: string, id: string, done: (key: string | undefined) => void): void {
    this.#hold(model, id, { model, id, done });
  }

  /** Holds the renewal of the grant a held code is issued under (grantRenewal.ts), stored with it. */
  renew(renewal: GrantRenewal, done: () => void): void {
    this.#renewals.set(renewal.id, { renewal, done });
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
    if (this.#refused) throw this.#refused;
    this.#storedOnce = true;
    // A required row guards what is stored; with nothing held there is nothing to guard yet.
    if (this.#changes.size === 0 && this.#renewals.size === 0 && !this.#condition) return;
    this.#storing = this.#changes;
    this.#changes = new Map();
    this.#renewing = this.#renewals;
    this.#renewals = new Map();
    const renewals = [...this.#renewing.values()];
    const changes = [...this.#storing.values()];
    const rows: OidcModelRow[] = [];
    const gone: { model: string; id: string }[] = [];
    const required = this.#requiredRow;
    this.#requiredRow = undefined;
    let deletesRequired = false;
    for (const change of changes) {
      if ('row' in change) rows.push(change.row);
      else if (required && change.model === required.model && change.id === required.id)
        deletesRequired = true;
      else gone.push({ model: change.model, id: change.id });
    }
    // The required row's deletion is the condition itself, answered with the other deletions.
    const condition = required
      ? oidcModelsQueries.rowRequired(required.model, required.id, required.json, deletesRequired)
      : this.#condition;
    try {
      const renewed = renewals.map(({ renewal }) => renewal);
      const deleted = condition
        ? await this.#storeIf(condition, gone, rows, renewed)
        : await oidcModelsQueries.destroyAndUpsert(this.#db, gone, rows, renewed);
      const keys = new Map(deleted.map(({ model, id, key }) => [keyOf(model, id), key]));
      for (const change of changes) {
        if ('row' in change) change.done();
        else change.done(keys.get(keyOf(change.model, change.id)));
      }
      for (const { done } of renewals) done();
    } finally {
      this.#storing = new Map();
      this.#renewing = new Map();
    }
  }

  /** Stores with the condition; from then on, stores go without it, or not at all if it failed. */
  async #storeIf(
    condition: StoreCondition,
    gone: { model: string; id: string }[],
    rows: OidcModelRow[],
    renewals: GrantRenewal[],
  ) {
    let deleted: Awaited<ReturnType<typeof oidcModelsQueries.destroyAndUpsertIf>>;
    try {
      deleted = await oidcModelsQueries.destroyAndUpsertIf(this.#db, condition, gone, rows, renewals);
    } catch (error) {
      this.#refused = error as Error;
      throw error;
    }
    if (!deleted) {
      this.#refused = new ConditionNotMet();
      throw this.#refused;
    }
    this.#condition = undefined;
    return deleted;
  }
}

/** Thrown by a store whose condition was not met: nothing held was stored. */
export class ConditionNotMet extends Error {
  constructor() {
    super('the condition for storing the held writes was not met');
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

/**
 * Runs `work`, Sesame's own handling of the request being served, with the provider's writes
 * held, then stores them in one statement together with `condition`, and only if the
 * condition is met: both or neither. A sign-in records its passkey's use (the counter that
 * catches a cloned authenticator) and saves the interaction that says who signed in in one
 * round trip; the use of an assertion that lost a race to a newer one saves nothing.
 * @returns whether the condition was met; when it was not, nothing of `work`'s writes was stored.
 * @throws what `work` or the statement threw: then nothing was stored either.
 */
export async function storeWritesIf(
  db: Db,
  condition: StoreCondition,
  work: () => Promise<void>,
): Promise<boolean> {
  const request = providerRequests.getStore();
  if (!request || typeof request !== 'object' || heldFor.has(request)) {
    throw new Error('storeWritesIf runs within a request that holds no writes yet');
  }
  const held = new HeldWrites(db, condition);
  heldFor.set(request, held);
  try {
    await work();
    await held.flush();
    return true;
  } catch (error) {
    if (error instanceof ConditionNotMet) return false;
    throw error;
  } finally {
    heldFor.delete(request);
  }
}

/** A token request's code consumption, once the adapter holds it ({@link holdConsumption}). */
interface HeldConsumption {
  writes: HeldWrites;
  /** What a replay does beyond storing nothing: revoke what the code's first use issued. */
  onReplay: () => Promise<void>;
}

/** The token requests being served, by Koa context, and the consumption each holds, once it does. */
const consumptions = new WeakMap<object, { held?: HeldConsumption }>();

/**
 * Called by the adapter as the provider consumes a code at the token endpoint: within
 * {@link storeConsumptionWithTokens}, the consumption is held, and every write of the request
 * after it is held too and stored with it in one statement, only if the consumption is met.
 * A redemption stored the consumption (a synchronous commit) and then the access token, each
 * a round trip; now one does both.
 * @returns whether it was held; if not, the caller consumes as usual.
 */
export function holdConsumption(db: Db, consumption: StoreCondition, onReplay: () => Promise<void>): boolean {
  const request = providerRequests.getStore();
  if (!request || typeof request !== 'object') return false;
  const slot = consumptions.get(request);
  if (!slot || slot.held || heldFor.has(request)) return false;
  const writes = new HeldWrites(db, consumption);
  slot.held = { writes, onReplay };
  heldFor.set(request, writes);
  return true;
}

/**
 * Runs `work`, the provider's handling of the token request whose Koa context is `ctx`, so
 * that a code it consumes is consumed by the statement that stores the tokens it issues
 * ({@link holdConsumption}), once the response is prepared and before it leaves. Whatever
 * happened after the consumption, it is stored: a redemption that failed after it (a wrong
 * resource, say) has still used the code up, as before. An access token for a resource
 * server is a JWT, stored nowhere: then the consumption is stored alone.
 * @returns `replayed` when the code was found used already (another request won the race):
 * nothing held was stored, `onReplay` has run, and the prepared response must not leave.
 * @throws what storing threw: the response must not leave either.
 */
export async function storeConsumptionWithTokens(
  ctx: object,
  work: () => Promise<void>,
): Promise<'stored' | 'replayed'> {
  const slot: { held?: HeldConsumption } = {};
  consumptions.set(ctx, slot);
  // A refusal of the handler's after the consumption (a wrong resource, say) is thrown on once
  // the consumption is stored: the code is used up all the same, and a replay still revokes.
  let refusal: { error: unknown } | undefined;
  try {
    await work();
  } catch (error) {
    refusal = { error };
  } finally {
    consumptions.delete(ctx);
    if (slot.held) heldFor.delete(ctx);
  }
  let outcome: 'stored' | 'replayed' = 'stored';
  if (slot.held) {
    try {
      await slot.held.writes.flush();
    } catch (error) {
      if (error instanceof ConditionNotMet) {
        await slot.held.onReplay();
        outcome = 'replayed';
      } else if (!refusal) throw error;
    }
  }
  if (refusal) throw refusal.error;
  return outcome;
}
