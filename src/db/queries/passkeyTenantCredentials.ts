import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { PasskeyTenantCredentialsTable } from '../schema.js';

/** A passkey registered through the passkey API, with its counter as a number. */
export interface TenantCredential {
  tenantId: string;
  id: string;
  userId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  aaguid: string;
  attestationType: string;
  backupEligible: boolean;
  backupState: boolean;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** A second factor from `mfa/registration`: never offered or accepted at the normal login. */
  isMfa: boolean;
  /** When a copy of it was detected (migration 0035): a blocked passkey is accepted nowhere. */
  suspectedCloneAt: Date | null;
}

/** How `GET /credentials` pages through a tenant's passkeys (Hanko: newest first by default). */
export interface CredentialPage {
  userId?: string | undefined;
  page: number;
  perPage: number;
  order: 'asc' | 'desc';
}

function toCredential(row: Selectable<PasskeyTenantCredentialsTable>): TenantCredential {
  return {
    tenantId: row.tenant_id,
    id: row.id,
    userId: row.user_id,
    publicKey: row.public_key,
    counter: Number(row.counter),
    transports: row.transports as unknown as string[],
    aaguid: row.aaguid,
    attestationType: row.attestation_type,
    backupEligible: row.backup_eligible,
    backupState: row.backup_state,
    name: row.name,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    isMfa: row.is_mfa,
    suspectedCloneAt: row.suspected_clone_at,
  };
}

/** Passkeys of passkey API tenants; every query is scoped by the tenant. */
export const passkeyTenantCredentialsQueries = {
  /** Stores a new passkey; false when the tenant already has one with this id. */
  async insert(
    db: Db,
    c: Omit<TenantCredential, 'createdAt' | 'lastUsedAt' | 'isMfa' | 'suspectedCloneAt'> & {
      isMfa?: boolean;
    },
  ): Promise<boolean> {
    const result = await db
      .insertInto('passkey_tenant_credentials')
      .values({
        tenant_id: c.tenantId,
        id: c.id,
        user_id: c.userId,
        public_key: c.publicKey,
        counter: c.counter,
        transports: JSON.stringify(c.transports),
        aaguid: c.aaguid,
        attestation_type: c.attestationType,
        backup_eligible: c.backupEligible,
        backup_state: c.backupState,
        name: c.name,
        is_mfa: c.isMfa ?? false,
        // As Hanko does: a new passkey counts as used at its creation (its first ceremony).
        last_used_at: sql<Date>`now()`,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
      .executeTakeFirst();
    return BigInt(result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  },

  async find(db: Db, tenantId: string, id: string): Promise<TenantCredential | undefined> {
    const row = await db
      .selectFrom('passkey_tenant_credentials')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toCredential(row) : undefined;
  },

  async listForUser(db: Db, tenantId: string, userId: string): Promise<TenantCredential[]> {
    const rows = await db
      .selectFrom('passkey_tenant_credentials')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toCredential);
  },

  /** One page of the tenant's passkeys (one user's, with `userId`) and how many there are in all. */
  async page(
    db: Db,
    tenantId: string,
    options: CredentialPage,
  ): Promise<{ credentials: TenantCredential[]; total: number }> {
    let query = db.selectFrom('passkey_tenant_credentials').where('tenant_id', '=', tenantId);
    if (options.userId !== undefined) query = query.where('user_id', '=', options.userId);
    const [rows, count] = await Promise.all([
      query
        .selectAll()
        .orderBy('created_at', options.order)
        .orderBy('id', options.order)
        .limit(options.perPage)
        .offset((options.page - 1) * options.perPage)
        .execute(),
      query.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { credentials: rows.map(toCredential), total: Number(count.n) };
  },

  async count(db: Db, tenantId: string): Promise<number> {
    const row = await db
      .selectFrom('passkey_tenant_credentials')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  },

  /**
   * Records a verified assertion. The counter only moves forward: the WHERE clause makes a
   * concurrent older assertion lose instead of rolling the counter back, and one of a passkey
   * blocked meanwhile lose too.
   */
  async recordUse(
    db: Db,
    tenantId: string,
    id: string,
    counter: number,
    backupState: boolean,
  ): Promise<boolean> {
    const result = await db
      .updateTable('passkey_tenant_credentials')
      .set({ counter, backup_state: backupState, last_used_at: sql<Date>`now()` })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where((eb) => eb.or([eb('counter', '<', counter), eb('counter', '=', 0)]))
      .where('suspected_clone_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  /** Blocks a passkey a copy of which was detected (migration 0035); false when it was already blocked or is gone. */
  async blockAsClone(db: Db, tenantId: string, id: string): Promise<boolean> {
    const result = await db
      .updateTable('passkey_tenant_credentials')
      .set({ suspected_clone_at: sql<Date>`now()` })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where('suspected_clone_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  async rename(db: Db, tenantId: string, id: string, name: string): Promise<boolean> {
    const result = await db
      .updateTable('passkey_tenant_credentials')
      .set({ name })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  async delete(db: Db, tenantId: string, id: string): Promise<boolean> {
    const result = await db
      .deleteFrom('passkey_tenant_credentials')
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
