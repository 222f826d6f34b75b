import { type Kysely, sql } from 'kysely';

/**
 * Changes to app secrets are announced like clients' (migration 0004), by name: the cookie
 * keys live there, and a rotation (`sesame keys rotate-cookie-key`) must reach every running
 * server, which signs with the new key and stops verifying revoked ones at once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create trigger app_secrets_announce_change
    after insert or update or delete on app_secrets
    for each row execute function sesame_announce_row_change('name')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists app_secrets_announce_change on app_secrets`.execute(db);
}
