import { type Kysely, sql } from 'kysely';

/**
 * The first-run setup link (`ISSUER/setup/<token>`), which creates the first administrator.
 * A table of its own rather than a purpose of `one_time_tokens`: a setup link names no email
 * and no account, and keeping it apart means no code path for invites or recovery can ever
 * accept one. Only the token's SHA-256 is stored. At most one row is live: each start that
 * finds no administrator replaces it, and using it deletes it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('setup_links')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('setup_links').ifExists().execute();
}
