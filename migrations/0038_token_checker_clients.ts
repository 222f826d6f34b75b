import { type Kysely, sql } from 'kysely';

/**
 * Which clients may introspect access tokens issued to other apps (RFC 7662 §4: the server
 * decides which protected resources may ask about which tokens). Until this migration every
 * confidential client could, so any registered app, a third party's included, could learn of
 * another app's token whose person it is, in which session, with what scope. A client that is
 * not marked now introspects its own tokens only; an API that checks the tokens of apps is
 * marked (`sesame clients update <id> --introspect-tokens`, the admin pages, the admin API's
 * `introspect_tokens`).
 *
 * New clients are not marked. Every client already registered as confidential is marked here,
 * so that an upgrade changes nothing for a running deployment: its APIs keep checking tokens.
 * An admin then clears the flag on each app that is no API (`--no-introspect-tokens`). A public
 * client never may (it cannot authenticate): the constraint refuses it. The change of each row
 * is announced to every server by the clients table's trigger (migration 0004).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table clients add column introspect_tokens boolean not null default false`.execute(db);
  await sql`update clients set introspect_tokens = true where not is_public`.execute(db);
  await sql`alter table clients add constraint clients_public_never_introspects check (not (is_public and introspect_tokens))`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table clients drop column if exists introspect_tokens`.execute(db);
}
