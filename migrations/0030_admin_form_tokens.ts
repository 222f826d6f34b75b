import type { Kysely } from 'kysely';

/**
 * Single-use tokens of the admin forms that mint a secret once (register a client or a
 * passkey API app, rotate their secret or key, create an admin API key). The page that shows
 * the form stores one, bound to the admin's session and to what the form does; its POST
 * spends it in the transaction that does the work, so a reload, a double click or a
 * resubmitted form does the work once, on any instance. Only the token's SHA-256 is stored;
 * a spent token stays until it expires, so a repeat is told it was done, not that it expired.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('admin_form_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('session_uid', 'text', (c) => c.notNull())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('spent_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('admin_form_tokens_expires_at')
    .on('admin_form_tokens')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('admin_form_tokens').ifExists().execute();
}
