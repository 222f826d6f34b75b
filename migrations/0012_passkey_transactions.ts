import { type Kysely, sql } from 'kysely';

/**
 * Transactions of the passkey API (Hanko's `transaction/*`): an app asks its user to sign a
 * payment or an action with a passkey. A transaction is recorded when it is initialized, so
 * its id (unique within the tenant, as in Hanko) can never be used twice; its data is the
 * JSON text the challenge commits to. Deleting the user or the tenant deletes them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('passkey_tenant_transactions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('identifier', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('passkey_tenant_transactions_identifier', ['tenant_id', 'identifier'])
    .addForeignKeyConstraint(
      'passkey_tenant_transactions_user_fkey',
      ['tenant_id', 'user_id'],
      'passkey_tenant_users',
      ['tenant_id', 'user_id'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('passkey_tenant_transactions_user')
    .on('passkey_tenant_transactions')
    .columns(['tenant_id', 'user_id', 'created_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('passkey_tenant_transactions').ifExists().execute();
}
