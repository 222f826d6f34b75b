import { type Kysely, sql } from 'kysely';

/**
 * Hardening for apps that ask for it:
 * - `clients.require_pushed_authorization_requests`: the client's authorization requests
 *   must come through the pushed authorization request endpoint (RFC 9126 §6), so their
 *   parameters never travel in a browser's address bar.
 * - `clients.backchannel_logout_uri`: where Sesame posts a logout token when a person signs
 *   out (OpenID Connect Back-Channel Logout 1.0).
 * - `resources`: APIs registered as resource servers (RFC 8707). An access token requested
 *   for one is a JWT (RFC 9068) the API verifies with the JWKS alone. Servers cache these
 *   rows, so each change is announced like a client's (migration 0004), keyed by identifier.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('clients')
    .addColumn('require_pushed_authorization_requests', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('backchannel_logout_uri', 'text')
    .execute();
  await db.schema
    .createTable('resources')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('identifier', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`
    create trigger resources_announce_change
    after insert or update or delete on resources
    for each row execute function sesame_announce_row_change('identifier')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('resources').ifExists().execute();
  await db.schema
    .alterTable('clients')
    .dropColumn('require_pushed_authorization_requests')
    .dropColumn('backchannel_logout_uri')
    .execute();
}
