import type { Kysely } from 'kysely';

/**
 * The language of the page an account was made on (sign-up, an invite or the setup link),
 * for mails Sesame sends outside any request of the person (an administrator promoting them
 * or sending them a recovery link). Not `locale`: that one is the person's own choice and
 * outranks the browser's. Null for accounts made before.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').addColumn('signup_locale', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('signup_locale').execute();
}
