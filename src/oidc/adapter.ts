import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import type { GroupedUpserts } from '../db/groupedUpserts.js';
import { clientsQueries } from '../db/queries/clients.js';
import { modelRow, oidcModelsQueries } from '../db/queries/oidcModels.js';
import type { ClientRow } from '../db/schema.js';
import { isNulCharacterError } from '../http/errors.js';
import { applicationType } from './clients.js';
import type { RowCaches } from './rowCaches.js';

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
    first_party: row.first_party,
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
 * Builds the adapter class oidc-provider instantiates once per model. Every model lives in
 * the one `oidc_models` table; clients come from the `clients` table that admins manage,
 * through the change-notified client cache. Writes go through `writes`, which groups the
 * writes of concurrent requests into one statement.
 */
export function createAdapter(
  db: Db,
  caches: Pick<RowCaches, 'clients'>,
  writes: GroupedUpserts,
): new (
  model: string,
) => Adapter {
  const loadClient = async (id: string) => {
    const row = await clientsQueries.find(db, id);
    return row ? clientMetadata(row) : undefined;
  };

  // Postgres cannot hold U+0000, so no stored id contains one: such a lookup (client_id=%00,
  // token=%00) finds nothing, and the provider answers as for any unknown id, not with a 500.
  const storable = (id: string) => !id.includes('\u0000');

  return class PostgresAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are managed through the clients table');
      // oidc-provider saves a fresh, empty session at the end of every request that brought
      // the cookie of a session no longer stored, refused requests included. An empty
      // session means the same as none, so it is not stored: one row per request otherwise.
      if (this.model === 'Session' && isEmptySession(payload)) return this.destroy(id);
      try {
        await writes.upsert(modelRow(this.model, id, payload as Record<string, unknown>, expiresIn));
      } catch (error) {
        // A request parameter with U+0000 (state=a%00b) reaches the stored interaction.
        if (isNulCharacterError(error))
          throw new errors.InvalidRequest('parameters must not contain NUL characters');
        throw error;
      }
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!storable(id)) return undefined;
      if (this.model === 'Client') return caches.clients.find(id, () => loadClient(id));
      return (await oidcModelsQueries.find(db, this.model, id)) as AdapterPayload | undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!storable(uid)) return undefined;
      return (await oidcModelsQueries.findByUid(db, this.model, uid)) as AdapterPayload | undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (!storable(userCode)) return undefined;
      return (await oidcModelsQueries.findByUserCode(db, this.model, userCode)) as AdapterPayload | undefined;
    }

    async consume(id: string): Promise<void> {
      await oidcModelsQueries.consume(db, this.model, id);
    }

    async destroy(id: string): Promise<void> {
      await oidcModelsQueries.destroy(db, this.model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await oidcModelsQueries.revokeByGrantId(db, grantId);
    }
  };
}
