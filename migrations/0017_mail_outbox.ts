import { type Kysely, sql } from 'kysely';

/**
 * `mail_outbox`: every mail Sesame sends is a row first, written in the transaction that
 * decides to send it (an invite, a recovery link, a notice), then sent by a worker with
 * retries, so a mail server that is down loses nothing and blocks no request.
 * `next_attempt_at` is null once the row is done (sent, or given up with `last_error`); the
 * partial index holds only what is still to send. The bodies may hold a one-time link, so
 * they are emptied once the row is done; subject, recipient and template stay for admins.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('mail_outbox')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('template', 'text', (c) => c.notNull())
    .addColumn('to_address', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('text_body', 'text')
    .addColumn('html_body', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.defaultTo(sql`now()`))
    .addColumn('last_error', 'text')
    .addColumn('sent_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`
    create index mail_outbox_due on mail_outbox (next_attempt_at)
    where next_attempt_at is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('mail_outbox').ifExists().execute();
}
