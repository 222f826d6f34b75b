import type { Kysely } from 'kysely';

/**
 * Passkey API credentials registered through `mfa/registration` are second factors, not
 * passkeys: Hanko marks them `is_mfa` and keeps them out of the normal login.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('passkey_tenant_credentials')
    .addColumn('is_mfa', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('passkey_tenant_credentials').dropColumn('is_mfa').execute();
}
