import type { Kysely } from 'kysely';

/**
 * A passkey API tenant's API key can be rotated with an overlap (`sesame passkey-api
 * rotate-key --keep-previous-for S`): the key it replaces keeps working until
 * `previous_api_key_expires_at`, stored as a SHA-256 like the current one, so the app's
 * servers can take the new key one by one. The database's clock decides when it expires,
 * so every instance refuses it from the same moment. Null when there is no overlap.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('passkey_tenants')
    .addColumn('previous_api_key_hash', 'text')
    .addColumn('previous_api_key_expires_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('passkey_tenants')
    .dropColumn('previous_api_key_hash')
    .dropColumn('previous_api_key_expires_at')
    .execute();
}
