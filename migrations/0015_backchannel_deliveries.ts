import { type Kysely, sql } from 'kysely';

/**
 * `backchannel_deliveries`: the outbox of OpenID Connect Back-Channel Logout 1.0. A row per
 * logout token to post to one app, written in the transaction that signs the person out, so
 * a restart loses none. `next_attempt_at` is null once the row is done (delivered, or given
 * up with `last_error`); the partial index holds only what is still to send. `logout_token`
 * is null until the first attempt signs it (a sign-out by the CLI has no signing keys), then
 * every retry posts the same token.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('backchannel_deliveries')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('uri', 'text', (c) => c.notNull())
    .addColumn('sub', 'text', (c) => c.notNull())
    .addColumn('sid', 'text')
    .addColumn('logout_token', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.defaultTo(sql`now()`))
    .addColumn('last_error', 'text')
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`
    create index backchannel_deliveries_due on backchannel_deliveries (next_attempt_at)
    where next_attempt_at is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('backchannel_deliveries').ifExists().execute();
}
