import type { Kysely } from 'kysely';

/**
 * `mail_outbox.link_hash`: the SHA-256 of the one-time link a mail carries (an invite, a
 * recovery or a welcome link), as its own table stores it. A mail server that is down for
 * longer than a link lives would otherwise get a dead link to deliver once it is back: the
 * outbox gives such a mail up instead (src/mail/outbox.ts). Null for mails without a link
 * and for those queued before, which are sent as they were.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mail_outbox').addColumn('link_hash', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mail_outbox').dropColumn('link_hash').execute();
}
