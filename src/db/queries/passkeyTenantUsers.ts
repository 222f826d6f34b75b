import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { PasskeyTenantUsersTable } from '../schema.js';

export type TenantUser = Selectable<PasskeyTenantUsersTable>;

/** Users of a passkey API tenant; every query is scoped by the tenant. */
export const passkeyTenantUsersQueries = {
  /** Creates the user or updates its names and icon: the app is the source of truth for them. */
  async upsert(
    db: Db,
    user: Pick<TenantUser, 'tenant_id' | 'user_id' | 'username' | 'display_name' | 'icon'>,
  ): Promise<void> {
    await db
      .insertInto('passkey_tenant_users')
      .values(user)
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'user_id']).doUpdateSet({
          username: user.username,
          display_name: user.display_name,
          icon: user.icon,
          updated_at: sql<Date>`now()`,
        }),
      )
      .execute();
  },

  async find(db: Db, tenantId: string, userId: string): Promise<TenantUser | undefined> {
    return db
      .selectFrom('passkey_tenant_users')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
  },

  /**
   * Erases the user: its row, with its passkeys, MFA credentials and transactions (they
   * cascade), and the challenges still pending for it in the tenant (`challengeBinding`),
   * whose data names it. Run it in a transaction, so no challenge outlives the user.
   * False when the tenant has no such user.
   */
  async delete(db: Db, tenantId: string, userId: string, challengeBinding: string): Promise<boolean> {
    await db
      .deleteFrom('webauthn_challenges')
      .where('binding', '=', challengeBinding)
      .where(sql<string>`data->>'userId'`, '=', userId)
      .execute();
    const result = await db
      .deleteFrom('passkey_tenant_users')
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  },

  async count(db: Db, tenantId: string): Promise<number> {
    const row = await db
      .selectFrom('passkey_tenant_users')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  },
};
