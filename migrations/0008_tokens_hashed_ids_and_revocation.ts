import { type Kysely, sql } from 'kysely';

/**
 * Two changes to how the provider's storage keeps what it issued.
 *
 * 1. `oidc_models.id` holds the SHA-256 (base64url) of a bearer value — an access or refresh
 *    token, a code, a session cookie's id, an interaction id — never the value itself, and
 *    no payload keeps it (`jti` is left out; the adapter puts it back from the id it is asked
 *    for). A database dump then holds nothing a client or a browser could present. Grants
 *    keep their ids: a grant id is a reference, never presented as a credential (see
 *    src/oidc/storedIds.ts). Existing rows are MIGRATED, not dropped: their ids are rehashed
 *    and their `jti` removed here, so nobody is signed out and issued tokens keep working.
 *
 * 2. `users.sessions_ended_at` and `users.tokens_revoked_at`: the instant before which every
 *    browser sign-in (sessions, interactions, codes), respectively every grant, code and
 *    token, of the account counts as revoked, whatever a request still in flight saves
 *    afterwards. Set by "sign out everywhere" (sessions) and by disable, delete and the
 *    takeover of an account by its email's owner (both).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update oidc_models
    set id = translate(rtrim(encode(sha256(convert_to(id, 'UTF8')), 'base64'), '='), '+/', '-_'),
        payload = payload - 'jti'
    where model not in ('Grant', 'Client')`.execute(db);
  await db.schema
    .alterTable('users')
    .addColumn('sessions_ended_at', 'timestamptz')
    .addColumn('tokens_revoked_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .dropColumn('sessions_ended_at')
    .dropColumn('tokens_revoked_at')
    .execute();
  // Hashes cannot be turned back into the values: what was issued under them is dropped.
  await sql`delete from oidc_models where model not in ('Grant', 'Client')`.execute(db);
}
