import { type Kysely, sql } from 'kysely';

/**
 * A client whose authentication failed too often in a window is refused on every instance
 * (src/oidc/clientAuthBackoff.ts). Each instance keeps, per client, that it was not locked
 * out when it last asked, so a client authenticating correctly costs no read of
 * `rate_limit_hits`; every failure counted for a client is announced as
 * `rate_limit_hits:client-auth:<client_id>`, and each instance then asks again. Only those
 * keys: the per-IP counts of the same table change on every limited request and nothing
 * caches them. Deletes are not announced: the sweep removes only ended windows, which
 * refuse nothing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create trigger rate_limit_hits_announce_client_auth
    after insert or update on rate_limit_hits
    for each row
    when (new.key like 'client-auth:%')
    execute function sesame_announce_row_change('key')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists rate_limit_hits_announce_client_auth on rate_limit_hits`.execute(db);
}
