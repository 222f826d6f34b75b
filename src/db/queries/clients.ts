import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { ClientRow } from '../schema.js';

/** What an admin sets on a client; the id and secret hash are Sesame's to make. */
export interface ClientFields {
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: string[];
  isPublic: boolean;
  firstParty: boolean;
  /** May introspect access tokens issued to other clients. */
  introspectTokens: boolean;
  logoUri: string | null;
  requirePushedAuthorizationRequests: boolean;
  backchannelLogoutUri: string | null;
}

export const clientsQueries = {
  async insert(
    db: Db,
    clientId: string,
    secretHash: string | null,
    fields: ClientFields,
  ): Promise<ClientRow> {
    return db
      .insertInto('clients')
      .values({
        client_id: clientId,
        name: fields.name,
        secret_hash: secretHash,
        redirect_uris: JSON.stringify(fields.redirectUris),
        post_logout_redirect_uris: JSON.stringify(fields.postLogoutRedirectUris),
        grant_types: JSON.stringify(fields.grantTypes),
        is_public: fields.isPublic,
        first_party: fields.firstParty,
        introspect_tokens: fields.introspectTokens,
        logo_uri: fields.logoUri,
        require_pushed_authorization_requests: fields.requirePushedAuthorizationRequests,
        backchannel_logout_uri: fields.backchannelLogoutUri,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  async find(db: Db, clientId: string): Promise<ClientRow | undefined> {
    return db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  },

  async list(db: Db): Promise<ClientRow[]> {
    return db.selectFrom('clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
  },

  async update(db: Db, clientId: string, fields: Partial<ClientFields>): Promise<ClientRow | undefined> {
    return db
      .updateTable('clients')
      .set({
        ...(fields.name !== undefined && { name: fields.name }),
        ...(fields.redirectUris && { redirect_uris: JSON.stringify(fields.redirectUris) }),
        ...(fields.postLogoutRedirectUris && {
          post_logout_redirect_uris: JSON.stringify(fields.postLogoutRedirectUris),
        }),
        ...(fields.grantTypes && { grant_types: JSON.stringify(fields.grantTypes) }),
        ...(fields.firstParty !== undefined && { first_party: fields.firstParty }),
        ...(fields.introspectTokens !== undefined && { introspect_tokens: fields.introspectTokens }),
        ...(fields.logoUri !== undefined && { logo_uri: fields.logoUri }),
        ...(fields.requirePushedAuthorizationRequests !== undefined && {
          require_pushed_authorization_requests: fields.requirePushedAuthorizationRequests,
        }),
        ...(fields.backchannelLogoutUri !== undefined && {
          backchannel_logout_uri: fields.backchannelLogoutUri,
        }),
        updated_at: sql<Date>`now()`,
      })
      .where('client_id', '=', clientId)
      .returningAll()
      .executeTakeFirst();
  },

  async setSecretHash(db: Db, clientId: string, secretHash: string): Promise<boolean> {
    const result = await db
      .updateTable('clients')
      .set({ secret_hash: secretHash, updated_at: sql<Date>`now()` })
      .where('client_id', '=', clientId)
      .where('is_public', '=', false)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  async delete(db: Db, clientId: string): Promise<boolean> {
    const result = await db.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
