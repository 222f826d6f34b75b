import type { ModelPayload } from '../db/queries/oidcModels.js';
import { RowCache, type RowChangeListener } from '../db/rowCache.js';

/**
 * Tokens, grants, sessions and codes, kept in process. A resource server introspects the same
 * access token on every API call; every login reads its code at the token step, its grant at
 * the token and the userinfo step, its session (by uid: is the token still bound to it?) at
 * both, and its access token at userinfo. Each of those was a round trip to Postgres; here
 * they are one lookup in a Map. What this process stores it keeps as it writes it
 * (write-through), so a code is read from memory by the instance that issued it.
 *
 * Kept in step like the other row caches: migration 0023 announces every update and delete
 * of a live token, grant or session (`oidc_models:<model>:<key>`), so a token revoked, a grant
 * changed or a session ended on any instance is forgotten on every other within the time a
 * notice takes; this instance forgets at once what it deletes or consumes itself. A code or
 * token issued elsewhere may be newer than the session and grant held here: the request that
 * brings it reads those from the database (newerThanCache.ts). Codes are
 * not announced: a code used or revoked elsewhere may still be found here, but its use is the
 * consume statement's, which then finds nothing to consume and refuses it as a replay
 * (adapter.ts). Interactions are not cached: they change at every login step, and announcing
 * each change cost more than the reads it saved (bench/README.md). While notices are not
 * arriving (behind a transaction pooler) nothing is served from here.
 *
 * Entries hold the stored JSON, so every request gets its own copy to change (oidc-provider
 * adds scopes to a grant in place), and expire with the row. Access and client_credentials
 * tokens, which the provider only reads once found, are kept parsed and frozen from their
 * first lookup on, and each lookup copies only their top level: a resource server
 * introspects one token on every API call.
 */
const CACHED_MODELS = new Set(['AccessToken', 'ClientCredentials', 'Grant', 'Session', 'AuthorizationCode']);

/** Models whose found payload the provider never changes, only reads (a revocation deletes the row). */
const READ_ONLY_MODELS = new Set(['AccessToken', 'ClientCredentials']);

/**
 * The models a token value is looked up as at once (introspection and revocation without a
 * hint ask for it as all three). Their values are random and hashed to one stored id, so a
 * value cached as one of them is none of the others.
 */
const TOKEN_MODELS = new Set(['AccessToken', 'ClientCredentials', 'RefreshToken']);

/** One of `json` and `payload`. */
interface Entry {
  model: string;
  /** The stored JSON: parsed anew for every lookup. */
  json?: string;
  /** A read-only model's payload once it has been looked up, frozen: copied for every lookup. */
  payload?: ModelPayload;
  expiresAtMs: number;
}

/**
 * The key an entry is kept under: a token's stored id (one key for the three token kinds),
 * else `<model>:<stored id>`. Stored ids are base64url (no colon), so the two never meet.
 */
function keyOf(model: string, storedId: string): string {
  return TOKEN_MODELS.has(model) ? storedId : `${model}:${storedId}`;
}

/** When a found payload stops being valid (its `exp`), or undefined when it says nothing. */
function expiryOf(payload: ModelPayload): number | undefined {
  return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
}

export class ModelCache implements RowChangeListener {
  readonly #rows: RowCache<Entry>;

  /** @param maxEntries beyond this many the least recently used goes (~1 kB each). */
  constructor(maxEntries = 5_000) {
    this.#rows = new RowCache(maxEntries);
  }

  /**
   * The stored payload of a model instance by its stored id, from memory or from `load` (whose
   * answer is kept); with `fresh`, from `load` (newerThanCache.ts).
   */
  find(model: string, storedId: string, load: () => Promise<ModelPayload | undefined>, fresh = false) {
    if (!ModelCache.#looksUp(model)) return load();
    return this.#find(model, keyOf(model, storedId), load, fresh);
  }

  /**
   * What memory alone says of a model instance, without waiting: its stored payload (the
   * caller's own copy, as {@link find} gives), null when its stored id is held by a token of
   * another kind (so it is not one of these), or undefined when only {@link find} can say.
   */
  cached(model: string, storedId: string): ModelPayload | null | undefined {
    return ModelCache.#looksUp(model) ? this.#cached(model, keyOf(model, storedId)) : undefined;
  }

  /**
   * Sessions are kept by uid (findSession): one looked up by id is read from the database, as
   * is any model neither kept nor looked up beside a kept one.
   */
  static #looksUp(model: string): boolean {
    return model !== 'Session' && (CACHED_MODELS.has(model) || TOKEN_MODELS.has(model));
  }

  /** A session by its uid, as the provider checks a token is still bound to it; with `fresh`, from `load`. */
  findSession(uid: string, load: () => Promise<ModelPayload | undefined>, fresh = false) {
    return this.#find('Session', keyOf('Session', uid), load, fresh);
  }

  async #find(
    model: string,
    key: string,
    load: () => Promise<ModelPayload | undefined>,
    fresh: boolean,
  ): Promise<ModelPayload | undefined> {
    const cached = fresh ? undefined : this.#cached(model, key);
    if (cached !== undefined) return cached ?? undefined;
    const generation = this.#rows.generation;
    const found = await load();
    // Read anew and gone: what memory held is gone too.
    if (fresh && !found) this.#rows.invalidate(key);
    const expiresAtMs = found && expiryOf(found);
    if (found && expiresAtMs && CACHED_MODELS.has(model)) {
      // A read-only model's nested values are frozen with the kept copy: this caller's too.
      const kept = READ_ONLY_MODELS.has(model) ? { payload: { ...found } } : { json: JSON.stringify(found) };
      this.#rows.remember(key, { model, ...kept, expiresAtMs }, generation);
    }
    return found;
  }

  #cached(model: string, key: string): ModelPayload | null | undefined {
    const hit = this.#rows.peek(key);
    if (!hit || hit.expiresAtMs <= Date.now()) return undefined;
    if (hit.model !== model) return TOKEN_MODELS.has(model) && TOKEN_MODELS.has(hit.model) ? null : undefined;
    if (hit.payload) return { ...hit.payload };
    const payload = JSON.parse(hit.json!) as ModelPayload;
    if (!READ_ONLY_MODELS.has(model)) return payload;
    // Kept parsed (and frozen) from now on, in place of the JSON. Nothing ran since the entry
    // was read, so it is still what is stored, at the current generation.
    this.#rows.remember(key, { model, payload, expiresAtMs: hit.expiresAtMs }, this.#rows.generation);
    return { ...payload };
  }

  /** Read before a write whose row {@link remember} may keep. */
  get generation(): number {
    return this.#rows.generation;
  }

  /**
   * This process just stored the row (`json` as written; a session under its uid), unless a
   * change was announced since `generation`.
   */
  remember(model: string, storedId: string, json: string, expiresAt: Date | null, generation: number): void {
    if (!CACHED_MODELS.has(model) || !expiresAt) return;
    this.#rows.remember(
      keyOf(model, storedId),
      { model, json, expiresAtMs: expiresAt.getTime() },
      generation,
    );
  }

  /** This process deleted or changed the row: forget it now, before its notice arrives. */
  forget(model: string, storedId: string): void {
    if (CACHED_MODELS.has(model)) this.#rows.invalidate(keyOf(model, storedId));
  }

  /** Many rows changed here at once (an account's or a client's tokens went): forget every one. */
  forgetAll(): void {
    this.#rows.invalidateAll();
  }

  /** A notice: `<model>:<stored id>` (a session's uid). */
  invalidate(notice: string): void {
    const colon = notice.indexOf(':');
    this.forget(notice.slice(0, colon), notice.slice(colon + 1));
  }

  goLive(): void {
    this.#rows.goLive();
  }

  goDark(): void {
    this.#rows.goDark();
  }

  get size(): number {
    return this.#rows.size;
  }
}
