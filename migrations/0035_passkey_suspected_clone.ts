import type { Kysely } from 'kysely';

/**
 * A passkey whose signature counter went backwards on a correctly signed assertion
 * (WebAuthn L3 §6.1.1) proves a second copy of its private key: `suspected_clone_at` is
 * when Sesame saw it, and from then on the passkey signs in nowhere (neither copy can be
 * told from the other) until its owner deletes it. Null for every other passkey. The same
 * for the passkeys of passkey API apps.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['credentials', 'passkey_tenant_credentials']) {
    await db.schema.alterTable(table).addColumn('suspected_clone_at', 'timestamptz').execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['credentials', 'passkey_tenant_credentials']) {
    await db.schema.alterTable(table).dropColumn('suspected_clone_at').execute();
  }
}
