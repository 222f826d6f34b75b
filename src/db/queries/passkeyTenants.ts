import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type {
  CeremonySettings,
  TenantSettings,
  TenantSettingsChange,
} from '../../passkeyApi/tenantSettings.js';
import type { Db } from '../connect.js';
import type { PasskeyTenantsTable } from '../schema.js';

export type PasskeyTenantRow = Selectable<PasskeyTenantsTable>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A tenant's id as the database stores it and every reader names it: a uuid in lower case.
 * What a tenant's keys are sealed for and its challenges bound to (sealContext,
 * tenantChallengeBinding) take only this, so an id as someone typed it (the CLI and the admin
 * API take any case) cannot seal or bind under another spelling. Only a row read here makes one.
 */
export type TenantId = string & { readonly __tenantIdAsStored: unique symbol };

/** A tenant as stored, with its origins as an array. */
export interface StoredTenant {
  id: TenantId;
  name: string;
  rpId: string;
  origins: string[];
  apiKeyHash: string;
  /** SHA-256 of the key a rotation replaced, while it still works (by the database's clock); else null. */
  previousApiKeyHash: string | null;
  /** WebAuthn settings of its passkey and second-factor ceremonies. */
  settings: TenantSettings;
  createdAt: Date;
}

/** The columns stored under one prefix; the database's check constraints keep them to the enums. */
function ceremonySettings(row: PasskeyTenantRow, prefix: 'webauthn' | 'mfa'): CeremonySettings {
  return {
    userVerification: row[`${prefix}_user_verification`] as CeremonySettings['userVerification'],
    attachment: row[`${prefix}_attachment`] as CeremonySettings['attachment'],
    residentKey: row[`${prefix}_resident_key`] as CeremonySettings['residentKey'],
    attestation: row[`${prefix}_attestation`] as CeremonySettings['attestation'],
    timeoutMs: row[`${prefix}_timeout_ms`],
  };
}

/**
 * The replaced API key's hash while it still works, else null: the database's clock decides,
 * so every instance stops taking it at the same moment. Selected beside the row's columns.
 */
const previousKeyHashNow = sql<
  string | null
>`case when previous_api_key_expires_at > now() then previous_api_key_hash end`.as('previous_key_hash_now');

function toStored(row: PasskeyTenantRow & { previous_key_hash_now: string | null }): StoredTenant {
  return {
    id: row.id as TenantId,
    name: row.name,
    rpId: row.rp_id,
    origins: row.origins as unknown as string[],
    apiKeyHash: row.api_key_hash,
    previousApiKeyHash: row.previous_key_hash_now,
    settings: { webauthn: ceremonySettings(row, 'webauthn'), mfa: ceremonySettings(row, 'mfa') },
    createdAt: row.created_at,
  };
}

/** The columns a change of one ceremony's settings sets; left-out settings are not touched. */
function settingsColumns(prefix: 'webauthn' | 'mfa', change: Partial<CeremonySettings>) {
  const columns: Record<string, string | number> = {};
  if (change.userVerification !== undefined) columns[`${prefix}_user_verification`] = change.userVerification;
  if (change.attachment !== undefined) columns[`${prefix}_attachment`] = change.attachment;
  if (change.residentKey !== undefined) columns[`${prefix}_resident_key`] = change.residentKey;
  if (change.attestation !== undefined) columns[`${prefix}_attestation`] = change.attestation;
  if (change.timeoutMs !== undefined) columns[`${prefix}_timeout_ms`] = change.timeoutMs;
  return columns;
}

export const passkeyTenantsQueries = {
  async insert(
    db: Db,
    tenant: Pick<StoredTenant, 'name' | 'rpId' | 'origins' | 'apiKeyHash'>,
  ): Promise<StoredTenant> {
    const row = await db
      .insertInto('passkey_tenants')
      .values({
        name: tenant.name,
        rp_id: tenant.rpId,
        origins: JSON.stringify(tenant.origins),
        api_key_hash: tenant.apiKeyHash,
      })
      .returningAll()
      .returning(previousKeyHashNow)
      .executeTakeFirstOrThrow();
    return toStored(row);
  },

  async findById(db: Db, id: string): Promise<StoredTenant | undefined> {
    // A malformed id reads as "no such tenant", not as a database error.
    if (!UUID.test(id)) return undefined;
    const row = await db
      .selectFrom('passkey_tenants')
      .selectAll()
      .select(previousKeyHashNow)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toStored(row) : undefined;
  },

  /**
   * Holds the tenant's row until the transaction ends, so two key rotations of one tenant
   * take turns; its id as stored (whatever case `id` is in), or undefined when there is no
   * such tenant.
   */
  async lock(db: Db, id: string): Promise<TenantId | undefined> {
    if (!UUID.test(id)) return undefined;
    const row = await db
      .selectFrom('passkey_tenants')
      .select('id')
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    return row?.id as TenantId | undefined;
  },

  async list(db: Db): Promise<StoredTenant[]> {
    const rows = await db
      .selectFrom('passkey_tenants')
      .selectAll()
      .select(previousKeyHashNow)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toStored);
  },

  /**
   * Replaces the tenant's API key hash. With `keepPreviousForSeconds` over 0 the key it
   * replaces keeps working that long (an earlier key still in its overlap stops at once);
   * with 0 nothing but the new key works. Returns when the previous key stops working (null
   * when it stopped at once) and the tenant's id as stored, or undefined when there is no such
   * tenant.
   */
  async replaceApiKeyHash(
    db: Db,
    id: string,
    apiKeyHash: string,
    keepPreviousForSeconds: number,
  ): Promise<{ tenantId: TenantId; previousKeyExpiresAt: Date | null } | undefined> {
    if (!UUID.test(id)) return undefined;
    const keep = keepPreviousForSeconds > 0;
    // The right-hand sides read the row as it was: the previous key is the one replaced here.
    const row = await db
      .updateTable('passkey_tenants')
      .set({
        api_key_hash: apiKeyHash,
        previous_api_key_hash: keep ? sql<string>`api_key_hash` : null,
        previous_api_key_expires_at: keep
          ? sql<Date>`now() + make_interval(secs => ${keepPreviousForSeconds})`
          : null,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .returning(['id', 'previous_api_key_expires_at'])
      .executeTakeFirst();
    return row && { tenantId: row.id as TenantId, previousKeyExpiresAt: row.previous_api_key_expires_at };
  },

  /**
   * Changes the given name, origins and WebAuthn settings of the tenant (the rest stay, even
   * when another change runs at once); undefined when there is no such tenant.
   */
  async changeSettings(db: Db, id: string, change: TenantSettingsChange): Promise<StoredTenant | undefined> {
    if (!UUID.test(id)) return undefined;
    const row = await db
      .updateTable('passkey_tenants')
      .set({
        ...(change.name !== undefined && { name: change.name }),
        ...(change.origins !== undefined && { origins: JSON.stringify(change.origins) }),
        ...settingsColumns('webauthn', change.webauthn ?? {}),
        ...settingsColumns('mfa', change.mfa ?? {}),
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .returningAll()
      .returning(previousKeyHashNow)
      .executeTakeFirst();
    return row ? toStored(row) : undefined;
  },

  /**
   * Deletes the tenant with its users and passkeys (cascade) and its pending challenges.
   * Run it in a transaction, so the challenges never go without the tenant.
   */
  async delete(db: Db, id: TenantId, challengeBinding: string): Promise<boolean> {
    await db.deleteFrom('webauthn_challenges').where('binding', '=', challengeBinding).execute();
    const result = await db.deleteFrom('passkey_tenants').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
