import { type Kysely, sql } from 'kysely';

/**
 * Key rotation in two phases. A new signing key is published at once but signs only from
 * `activates_at`, so apps have fetched it into their cached JWKS before the first token it
 * signs reaches them; the key it replaces keeps signing until then (its `retired_at`).
 * Changes are announced on `sesame_row_changes` (0004) as `signing_keys:<kid>`, so every
 * running server publishes a new key without a restart.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('signing_keys')
    .addColumn('activates_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`update signing_keys set activates_at = created_at`.execute(db);
  await sql`
    create trigger signing_keys_announce_change
    after insert or update or delete on signing_keys
    for each row execute function sesame_announce_row_change('kid')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists signing_keys_announce_change on signing_keys`.execute(db);
  await db.schema.alterTable('signing_keys').dropColumn('activates_at').execute();
}
