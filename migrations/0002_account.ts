import { type Kysely, sql } from 'kysely';

/**
 * Step-up records for the account page: when the person behind a provider session last
 * proved a passkey. Kept in the database, not in process memory, so every instance agrees.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('step_ups')
    .addColumn('session_uid', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('verified_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('step_ups_verified_at').on('step_ups').column('verified_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('step_ups').ifExists().execute();
}
