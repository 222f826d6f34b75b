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

/** A tenant as stored, with its origins as an array. */
export interface StoredTenant {
  id: string;
  name: string;
  rpId: string;
  origins: string[];
  apiKeyHash: string;
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

function toStored(row: PasskeyTenantRow): StoredTenant {
  return {
    id: row.id,
    name: row.name,
    rpId: row.rp_id,
    origins: row.origins as unknown as string[],
    apiKeyHash: row.api_key_hash,
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
      .executeTakeFirstOrThrow();
    return toStored(row);
  },

  async findById(db: Db, id: string): Promise<StoredTenant | undefined> {
    // A malformed id reads as "no such tenant", not as a database error.
    if (!UUID.test(id)) return undefined;
    const row = await db.selectFrom('passkey_tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toStored(row) : undefined;
  },

  /**
   * Holds the tenant's row until the transaction ends, so two key rotations of one tenant
   * take turns; false when there is no such tenant.
   */
  async lock(db: Db, id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const row = await db
      .selectFrom('passkey_tenants')
      .select('id')
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    return row !== undefined;
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
      .executeTakeFirst();
    return row ? toStored(row) : undefined;
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
