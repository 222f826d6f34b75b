import { type Kysely, sql } from 'kysely';

/**
 * Which clients may get a client_credentials token for each API, and with which of its
 * scopes: `{ "<client_id>": ["read", ...] }`. Until this migration any client with the
 * client_credentials grant got a token for any registered API with every one of its scopes;
 * no person consents to a machine's token, so an admin now grants each one (`sesame
 * resources allow-client`). A change is a change of the `resources` row, which its trigger
 * (migration 0014) already announces to every server.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table resources add column machine_clients jsonb not null default '{}'::jsonb`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table resources drop column if exists machine_clients`.execute(db);
}
