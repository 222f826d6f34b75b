import { type Kysely, sql } from 'kysely';

/**
 * Finds a person's grants to one app: when they sign in from a new browser, the consent
 * they gave in another one is found here and reused instead of asked again (see
 * loadExistingGrant in src/oidc/provider.ts). It also serves listing and revoking an
 * account's grants. Partial: only Grant rows are looked up this way.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create index oidc_models_grants_by_account_client
    on oidc_models ((payload->>'accountId'), (payload->>'clientId'))
    where model = 'Grant'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists oidc_models_grants_by_account_client`.execute(db);
}
