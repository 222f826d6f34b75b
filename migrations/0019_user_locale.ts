import type { Kysely } from 'kysely';

/**
 * The language a person picked on their account page for Sesame's pages (a code of
 * src/i18n/locales.ts); null: follow the app's ui_locales and the browser. No CHECK on the
 * codes, so adding a language needs no migration; the account page accepts only known ones.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').addColumn('locale', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('locale').execute();
}
