import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { GroupedFinds } from '../db/groupedFinds.js';
import type { GroupedUpserts } from '../db/groupedUpserts.js';
import { clientsQueries } from '../db/queries/clients.js';
import { modelRow, type OidcModelRow, oidcModelsQueries } from '../db/queries/oidcModels.js';
import type { ClientRow } from '../db/schema.js';
import { isNulCharacterError } from '../http/errors.js';
import { challengeExpiresAt } from '../webauthn/challenge.js';
import { riderOnRead } from './challengeOnRead.js';
import { applicationType } from './clients.js';
import { grantRenewalFor } from './grantRenewal.js';
import { type GrantSaveGuard, takeGrantSaveGuard } from './grantSaves.js';
import { heldWrites, holdConsumption } from './heldWrites.js';
import { broughtIn, cachedUser, mustReadFresh } from './newerThanCache.js';
import { accountOf, isAccountBound, isRevoked } from './revocation.js';
import type { RowCaches } from './rowCaches.js';
import { payloadAsSaved, storedId, storedJson } from './storedIds.js';
import { EXPIRED_KEPT_SECONDS } from './ttl.js';

/**
 * The client metadata oidc-provider sees for a stored client. `client_secret` holds the
 * SHA-256 of the secret: the provider compares presented secrets through the hook in
 * provider.ts, and no HMAC algorithm is enabled that would need the plain value.
 */
export function clientMetadata(row: ClientRow): AdapterPayload {
  const grantTypes = row.grant_types as unknown as string[];
  const uris = {
    redirect_uris: row.redirect_uris as unknown as string[],
    post_logout_redirect_uris: row.post_logout_redirect_uris as unknown as string[],
  };
  return {
    client_id: row.client_id,
    client_name: row.name,
    ...uris,
    // oidc-provider accepts custom-scheme redirect URIs only from native apps (RFC 8252 §7.1),
    // and any loopback port only for them (§7.3).
    application_type: applicationType(uris, row.is_public),
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: row.is_public ? 'none' : 'client_secret_basic',
    // Every ID token says when the person last proved their passkey (OIDC Core §2).
    require_auth_time: true,
    ...(row.is_public ? {} : { client_secret: row.secret_hash ?? '' }),
    ...(row.logo_uri ? { logo_uri: row.logo_uri } : {}),
    // RFC 9126 §6: the provider then refuses this client's plain authorization requests.
    require_pushed_authorization_requests: row.require_pushed_authorization_requests,
    // Back-Channel Logout 1.0 §2.2: no app is registered as requiring a `sid` in its logout
    // tokens, as Sesame sends some by `sub` alone (§2.4: every sign-in of the person at the
    // app ends), where no browser session names the app: a device's sign-in (RFC 8628), whose
    // tokens name no session, and a sign-in that outlived its browser session (offline_access)
    // when all of the person's end (disabled or deleted by an admin, the app's Revoke on the
    // account page). A browser session's sign-out names its `sid`, which the app's ID tokens
    // carry too (provider.ts, includeSid), so the app ends that session only.
    ...(row.backchannel_logout_uri && {
      backchannel_logout_uri: row.backchannel_logout_uri,
      backchannel_logout_session_required: false,
    }),
    first_party: row.first_party,
    // May introspect other clients' access tokens (introspection.ts, createIntrospectionPolicy).
    introspect_tokens: row.introspect_tokens,
  };
}

/** A session that holds nothing: no account signed in, no app authorized, no logout under way. */
function isEmptySession(payload: AdapterPayload): boolean {
  return (
    !payload.accountId &&
    !payload.state &&
    Object.keys((payload.authorizations as object | undefined) ?? {}).length === 0
  );
}

/**
 * Models whose `consume` is the single use of a grant source: a second use is a replay, and
 * what the first use issued goes too (RFC 6749 §4.1.2, RFC 9700 §4.2.4 and §4.14.2).
 */
const SINGLE_USE_GRANT_SOURCES = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/**
 * Builds the adapter class oidc-provider instantiates once per model. Every model lives in
 * the one `oidc_models` table; clients come from the `clients` table that admins manage,
 * through the change-notified client cache. Writes go through `writes`, which groups the
 * writes of concurrent requests into one statement.
 *
 * - Ids are stored hashed and payloads without them (storedIds.ts): a dump holds no bearer.
 * - An instance of an account whose sign-ins or tokens were revoked after it started reads
 *   as not found (revocation.ts), through the change-notified user cache.
 * - A device code expired within EXPIRED_KEPT_SECONDS.DeviceCode is still found: every lookup of one in
 *   the provider checks `isExpired` first and answers `expired_token` or "That code has
 *   expired"; it is never stored again, and the statements that consume or stamp it read
 *   only live rows. Every other model's expired instances read as not found.
 * - A code or rotated refresh token is consumed by one request only; the loser of a race,
 *   like any replay, revokes the grant.
 */
export function createAdapter(
  db: Db,
  caches: Pick<RowCaches, 'clients' | 'users' | 'models'> & Partial<Pick<RowCaches, 'freshSignIns'>>,
  writes: GroupedUpserts,
  finds: GroupedFinds = new GroupedFinds(db),
): new (
  model: string,
) => Adapter {
  const loadClient = async (id: string) => {
    const row = await clientsQueries.find(db, id);
    return row ? clientMetadata(row) : undefined;
  };

  /** `payload`, unless its account's revocations apply to it. Not async: a token found in memory meets no await here. */
  function unlessRevoked(
    model: string,
    payload: AdapterPayload | undefined,
  ): Promise<AdapterPayload | undefined> {
    const accountId = payload && isAccountBound(model) ? accountOf(model, payload) : undefined;
    if (!accountId) return Promise.resolve(payload);
    return cachedUser(caches.users, db, accountId).then((user) =>
      isRevoked(model, payload!, user) ? undefined : payload,
    );
  }

  const { models, freshSignIns } = caches;

  /** Deletes every code and token issued under the grant (not the grant); this instance forgets them at once. */
  async function revokeByGrantId(grantId: string) {
    await storeHeld();
    for (const row of await oidcModelsQueries.revokeByGrantId(db, grantId)) models.forget(row.model, row.key);
  }

  async function destroy(model: string, id: string) {
    const held = heldWrites();
    if (held) return held.destroy(model, id, (key) => key && models.forget(model, key));
    const key = await oidcModelsQueries.destroy(db, model, id);
    if (key) models.forget(model, key);
  }

  /**
   * Stores what the request holds (heldWrites.ts) before a statement that reads or changes
   * `oidc_models` otherwise than by the key of an unheld row: it then sees them, in order.
   */
  function storeHeld(): Promise<void> | undefined {
    const held = heldWrites();
    return held?.busy ? held.flush() : undefined;
  }

  /**
   * A grant saved through saveGrantIf (grantSaves.ts): its own statement, not held with the
   * request's other writes, as the request goes on only if it was stored.
   * @returns whether it was stored; when not, this instance forgets the grant it had read.
   */
  async function storeGuardedGrant(row: OidcModelRow, guard: GrantSaveGuard, remember: () => void) {
    await storeHeld();
    const stored =
      'copyOf' in guard
        ? await oidcModelsQueries.insertCopyOfConsent(db, row, guard.copyOf)
        : await oidcModelsQueries.updateLiveGrant(db, row);
    if (stored) remember();
    else models.forget('Grant', row.id);
    return stored;
  }

  async function revokeGrant(grantId: string) {
    await revokeByGrantId(grantId);
    await destroy('Grant', grantId);
  }

  /**
   * Passes a row read from the database on, noting a code, token or finished interaction that
   * may be newer than what memory holds (newerThanCache.ts).
   */
  const seenIn =
    (model: string) =>
    <T extends object | undefined>(found: T): T => {
      broughtIn(model, found);
      return found;
    };

  // Postgres cannot hold U+0000, so no stored id contains one: such a lookup (client_id=%00,
  // token=%00) finds nothing, and the provider answers as for any unknown id, not with a 500.
  const storable = (id: string) => !id.includes('\u0000');

  return class PostgresAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are managed through the clients table');
      // An expired device code is read only to say that it expired: it is never stored again
      // (a lifetime of 0 would store it without one).
      if (expiresIn <= 0 && this.model === 'DeviceCode') return;
      // oidc-provider saves a fresh, empty session at the end of every request that brought
      // the cookie of a session no longer stored, refused requests included. An empty
      // session means the same as none, so it is not stored: one row per request otherwise.
      if (this.model === 'Session' && isEmptySession(payload)) return this.destroy(id);
      const json = storedJson(this.model, id, payload);
      const row = modelRow(this.model, storedId(this.model, id), payload, expiresIn, json);
      const generation = models.generation;
      // A session is cached by its uid, which the provider looks it up by.
      const key = this.model === 'Session' ? row.uid : row.id;
      const remember = () => {
        if (key) models.remember(this.model, key, row.payload, row.expires_at, generation);
      };
      const held = heldWrites();
      const guarded = this.model === 'Grant' ? takeGrantSaveGuard() : undefined;
      if (guarded) {
        guarded.stored = await storeGuardedGrant(row, guarded.guard, remember);
        return;
      }
      // What this process stores of an interaction, its next step here may read from memory
      // (freshSignIns.ts): at the login prompt with its login page's challenge, stored in the
      // same statement (not among a request's held writes), or with its result.
      const fresh =
        this.model === 'Interaction'
          ? freshSignIns?.begin(id, row.payload, payload, {
              withChallenge: !held,
              challengeExpiresAt: challengeExpiresAt(),
            })
          : undefined;
      // A code renews the grant it is issued under, in the statement that stores it.
      const renewal = this.model === 'AuthorizationCode' ? grantRenewalFor(payload) : undefined;
      // This instance reads the grant anew, as every other does on the change's notice.
      const renewed = renewal && (() => models.forget('Grant', renewal.id));
      // A payload Postgres refuses (below) is written now, so the request fails as it should.
      if (held && !row.payload.includes('\\u0000')) {
        if (renewal) held.renew(renewal, renewed!);
        return held.upsert(row, () => {
          remember();
          if (fresh) freshSignIns!.ready(id, fresh);
        });
      }
      try {
        if (held?.busy) await held.flush();
        await writes.upsert(row, fresh?.challenge, renewal);
        renewed?.();
        remember();
        if (fresh) freshSignIns!.ready(id, fresh);
      } catch (error) {
        if (fresh) freshSignIns!.forget(id);
        // A request parameter with U+0000 (state=a%00b) reaches the stored interaction.
        if (isNulCharacterError(error))
          throw new errors.InvalidRequest('parameters must not contain NUL characters');
        throw error;
      }
    }

    // Not async: what memory holds (a client, a token a resource server introspects on every
    // call) is answered without the turns of the database path.
    find(id: string): Promise<AdapterPayload | undefined> {
      if (!storable(id)) return Promise.resolve(undefined);
      if (this.model === 'Client') return caches.clients.find(id, () => loadClient(id));
      const { model } = this;
      const key = storedId(model, id);
      const held = heldWrites();
      if (held?.holds(model, key)) return held.flush().then(() => this.find(id));
      // The return to the authorization (`GET /auth/:uid`, the one request whose writes are
      // held with no condition of their own): its statement stores the session, grant and
      // code only if it deletes the interaction it read, so of two returns at once, on any
      // instances, one gets a code. On the instance that stored the interaction's result it is
      // read from memory, and must then still be stored exactly so.
      if (model === 'Interaction' && held?.acceptsCondition) {
        const finished = freshSignIns?.takeFinished(id);
        if (finished) {
          held.requireRowOfFirstStore(model, key, finished.json);
          return unlessRevoked(model, payloadAsSaved(model, id, finished.payload as AdapterPayload));
        }
        return this.#findStored(id, key).then((found) => {
          if (found && held.acceptsCondition) held.requireRowOfFirstStore(model, key);
          return found;
        });
      }
      return this.#findStored(id, key);
    }

    /** The instance as stored, read from the cache or the database. */
    #findStored(id: string, key: string): Promise<AdapterPayload | undefined> {
      const { model } = this;
      if (model === 'DeviceCode') {
        return oidcModelsQueries
          .findRecentlyExpired(db, model, 'id', key, EXPIRED_KEPT_SECONDS.DeviceCode)
          .then(seenIn(model))
          .then((found) => unlessRevoked(model, found && payloadAsSaved(model, id, found as AdapterPayload)));
      }
      // A sign-in's challenge stored or taken in the statement that reads its interaction (challengeOnRead.ts).
      const rider = model === 'Interaction' ? riderOnRead(key) : undefined;
      if (rider) {
        return rider
          .read(db, key)
          .then((found) => unlessRevoked(model, found && payloadAsSaved(model, id, found as AdapterPayload)));
      }
      const fresh = model === 'Grant' && mustReadFresh(`Grant:${key}`);
      const cached = fresh ? undefined : models.cached(model, key);
      if (cached === null) return Promise.resolve(undefined);
      if (cached) return unlessRevoked(model, payloadAsSaved(model, id, cached as AdapterPayload));
      return models
        .find(model, key, () => finds.find(model, key).then(seenIn(model)), fresh)
        .then(
          (stored) => stored && unlessRevoked(model, payloadAsSaved(model, id, stored as AdapterPayload)),
        );
    }

    /** Only sessions are looked up by uid; their uid is not a bearer and is stored as it is. */
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!storable(uid)) return undefined;
      await storeHeld();
      const load = () => oidcModelsQueries.findByUid(db, this.model, uid);
      const stored = await (this.model === 'Session'
        ? models.findSession(uid, load, mustReadFresh(`Session:${uid}`))
        : load());
      return unlessRevoked(this.model, stored as AdapterPayload | undefined);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (!storable(userCode)) return undefined;
      await storeHeld();
      const stored = await (this.model === 'DeviceCode'
        ? oidcModelsQueries.findRecentlyExpired(
            db,
            this.model,
            'user_code',
            userCode,
            EXPIRED_KEPT_SECONDS.DeviceCode,
          )
        : oidcModelsQueries.findByUserCode(db, this.model, userCode));
      return unlessRevoked(this.model, stored as AdapterPayload | undefined);
    }

    async consume(id: string): Promise<void> {
      const { model } = this;
      const key = storedId(model, id);
      // Another request used it first (both found it unused): this use is a replay.
      const revokeWhatItIssued = async () => {
        const grantId = await oidcModelsQueries.grantIdOf(db, model, key);
        if (grantId) await revokeGrant(grantId);
      };
      // A code redeemed at the token endpoint: consumed by the statement that stores the
      // tokens it gives, which then revokes on a replay (heldWrites.ts).
      if (
        model === 'AuthorizationCode' &&
        holdConsumption(db, oidcModelsQueries.consumptionOf(model, key), revokeWhatItIssued)
      ) {
        models.forget(model, key);
        return;
      }
      await storeHeld();
      const consumed = await oidcModelsQueries.consume(db, model, key);
      // The cached instance says it is unused: the next find reads that it is not.
      models.forget(model, key);
      if (consumed) return;
      if (!SINGLE_USE_GRANT_SOURCES.has(model)) return;
      await revokeWhatItIssued();
      throw new errors.InvalidGrant('grant already used');
    }

    async destroy(id: string): Promise<void> {
      if (this.model === 'Interaction') freshSignIns?.forget(id);
      await destroy(this.model, storedId(this.model, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeByGrantId(grantId);
    }
  };
}
