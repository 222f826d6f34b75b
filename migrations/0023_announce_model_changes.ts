import { type Kysely, sql } from 'kysely';

/**
 * Access tokens, client_credentials tokens, grants and sessions are cached by every server
 * (src/oidc/modelCache.ts). Every update and delete of a live one is announced on the row
 * change channel as `oidc_models:<model>:<key>` (the stored id; a session's uid, by which the
 * provider looks sessions up to check a token is still bound to them), so a token revoked, a
 * grant changed or a session ended on one instance is forgotten on all. Inserts are not
 * announced (nothing caches a row it never found), nor is the sweep of expired rows (the
 * cache drops an entry when it expires). The WHEN clause keeps every other write of this
 * busy table free of the trigger: a notice costs Postgres more than a read (every notifying
 * commit takes one database-wide lock, held through its WAL flush), so models written on
 * every login are not announced. Authorization codes are cached but need no notice: their
 * single use is the consume statement's, which a stale copy cannot pass.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function sesame_announce_model_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify(
        'sesame_row_changes',
        'oidc_models:' || old.model || ':' || case when old.model = 'Session' then coalesce(old.uid, old.id) else old.id end
      );
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger oidc_models_announce_change
    after update or delete on oidc_models
    for each row
    when (old.model in ('AccessToken', 'ClientCredentials', 'Grant', 'Session')
      and (old.expires_at is null or old.expires_at > now()))
    execute function sesame_announce_model_change()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists oidc_models_announce_change on oidc_models`.execute(db);
  await sql`drop function if exists sesame_announce_model_change()`.execute(db);
}
