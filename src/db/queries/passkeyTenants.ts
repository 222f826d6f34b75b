import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { PasskeyTenantsTable } from '../schema.js';

export type PasskeyTenantRow = Selectable<PasskeyTenantsTable>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A tenant as stored, with its origins as an array. */
export interface StoredTenant {
  id: string;
  name: string;
  rpId: string;
  origins: string[];
  apiKeyHash: string;
  signingKid: string;
  /** The sealed private JWK (see sealAtRest). */
  signingKey: string;
  createdAt: Date;
}

function toStored(row: PasskeyTenantRow): StoredTenant {
  return {
    id: row.id,
    name: row.name,
    rpId: row.rp_id,
    origins: row.origins as unknown as string[],
    apiKeyHash: row.api_key_hash,
    signingKid: row.signing_kid,
    signingKey: row.signing_key,
    createdAt: row.created_at,
  };
}

export const passkeyTenantsQueries = {
  async insert(
    db: Db,
    tenant: Pick<StoredTenant, 'name' | 'rpId' | 'origins' | 'apiKeyHash' | 'signingKid' | 'signingKey'>,
  ): Promise<StoredTenant> {
    const row = await db
      .insertInto('passkey_tenants')
      .values({
        name: tenant.name,
        rp_id: tenant.rpId,
        origins: JSON.stringify(tenant.origins),
        api_key_hash: tenant.apiKeyHash,
        signing_kid: tenant.signingKid,
        signing_key: tenant.signingKey,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toStored(row);
  },

  async findById(db: Db, id: string): Promise<StoredTenant | undefined> {
    // A malformed id reads as "no such tenant", not as a database error.
    if (!UUID.test(id)) return undefined;
    const row = await db.selectFrom('passkey_tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toStored(row) : undefined;
  },

  async list(db: Db): Promise<StoredTenant[]> {
    const rows = await db
      .selectFrom('passkey_tenants')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toStored);
  },

  async setApiKeyHash(db: Db, id: string, apiKeyHash: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const result = await db
      .updateTable('passkey_tenants')
      .set({ api_key_hash: apiKeyHash, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  /**
   * Deletes the tenant with its users and passkeys (cascade) and its pending challenges.
   * Run it in a transaction, so the challenges never go without the tenant.
   */
  async delete(db: Db, id: string, challengeBinding: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    await db.deleteFrom('webauthn_challenges').where('binding', '=', challengeBinding).execute();
    const result = await db.deleteFrom('passkey_tenants').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
