import type { Selectable } from 'kysely';
import type { Db } from '../connect.js';
import type { PasskeyTenantTransactionsTable } from '../schema.js';

export type TenantTransaction = Selectable<PasskeyTenantTransactionsTable>;

/** Transactions of passkey API tenants; every query is scoped by the tenant. */
export const passkeyTenantTransactionsQueries = {
  /**
   * Records a new transaction; undefined when the tenant already has one with this
   * identifier (the unique constraint decides, so two concurrent requests cannot both win).
   */
  async insert(
    db: Db,
    t: Pick<TenantTransaction, 'tenant_id' | 'user_id' | 'identifier' | 'data'>,
  ): Promise<TenantTransaction | undefined> {
    return db
      .insertInto('passkey_tenant_transactions')
      .values(t)
      .onConflict((oc) => oc.columns(['tenant_id', 'identifier']).doNothing())
      .returningAll()
      .executeTakeFirst();
  },

  async findByIdentifier(
    db: Db,
    tenantId: string,
    identifier: string,
  ): Promise<TenantTransaction | undefined> {
    return db
      .selectFrom('passkey_tenant_transactions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('identifier', '=', identifier)
      .executeTakeFirst();
  },

  /** The user's transactions, oldest first. */
  async listForUser(db: Db, tenantId: string, userId: string): Promise<TenantTransaction[]> {
    return db
      .selectFrom('passkey_tenant_transactions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  },
};
