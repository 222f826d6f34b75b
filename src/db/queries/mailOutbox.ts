import { type NotNull, sql, type UpdateObject } from 'kysely';
import type { Db } from '../connect.js';
import type { Database } from '../schema.js';
import { claimDueRows, deleteDoneRowsBefore } from './outboxRows.js';

/** A composed mail to queue. */
export interface NewMail {
  /** Its row's id when chosen before (its sealed bodies are bound to it); else the database draws one. */
  id?: string;
  template: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The SHA-256 of the one-time link the mail carries, if it carries one. */
  linkHash?: string;
}

/** A mail claimed for an attempt; `attempts` already counts this one. */
export interface ClaimedMail {
  id: string;
  template: string;
  to_address: string;
  subject: string;
  text_body: string | null;
  html_body: string | null;
  attempts: number;
  created_at: Date;
  link_hash: string | null;
}

/** A mail as admins see it in the outbox: everything but its bodies. */
export interface OutboxEntry {
  id: string;
  template: string;
  to_address: string;
  subject: string;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  sent_at: Date | null;
  created_at: Date;
}

export const mailOutboxQueries = {
  async enqueue(db: Db, mail: NewMail): Promise<string> {
    const row = await db
      .insertInto('mail_outbox')
      .values({
        ...(mail.id !== undefined && { id: mail.id }),
        template: mail.template,
        to_address: mail.to,
        subject: mail.subject,
        text_body: mail.text,
        html_body: mail.html,
        link_hash: mail.linkHash ?? null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  },

  /** Claims up to `limit` due rows for this instance (see claimDueRows: SKIP LOCKED and a lease). */
  claimDue(db: Db, limit: number, leaseSeconds: number): Promise<ClaimedMail[]> {
    return claimDueRows<ClaimedMail>(
      db,
      'mail_outbox',
      [
        'id',
        'template',
        'to_address',
        'subject',
        'text_body',
        'html_body',
        'attempts',
        'created_at',
        'link_hash',
      ],
      limit,
      leaseSeconds,
    );
  },

  /**
   * The bodies of every mail that still has them (queued, retrying, or being sent), held
   * until the transaction commits: KEY_ENCRYPTION_SECRET seals them (`sesame keys reseal`).
   */
  listBodiesForUpdate(db: Db): Promise<{ id: string; text_body: string; html_body: string }[]> {
    return db
      .selectFrom('mail_outbox')
      .select(['id', 'text_body', 'html_body'])
      .where('text_body', 'is not', null)
      .where('html_body', 'is not', null)
      .$narrowType<{ text_body: NotNull; html_body: NotNull }>()
      .forUpdate()
      .execute();
  },

  /** Writes a mail's bodies anew (sealed otherwise), if they are still the ones read. */
  async replaceBodies(
    db: Db,
    mail: { id: string; text_body: string; html_body: string },
    bodies: { text: string; html: string },
  ): Promise<boolean> {
    const result = await db
      .updateTable('mail_outbox')
      .set({ text_body: bodies.text, html_body: bodies.html })
      .where('id', '=', mail.id)
      .where('text_body', '=', mail.text_body)
      .where('html_body', '=', mail.html_body)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  /**
   * Marks a mail sent and empties its bodies (they may hold a one-time link), if the claim
   * `attempt` (its `attempts` when claimed) still holds it: once another instance claimed
   * it, the row is that attempt's to record.
   * @returns whether the claim still held the mail.
   */
  markSent(db: Db, id: string, attempt: number): Promise<boolean> {
    return updateClaimed(db, id, attempt, {
      sent_at: sql`now()`,
      next_attempt_at: null,
      last_error: null,
      text_body: null,
      html_body: null,
    });
  },

  /**
   * Records a failed attempt, if the claim `attempt` still holds the mail (see markSent);
   * `retryAt` null gives the mail up (the row stays, with the error, without its bodies).
   * @returns whether the claim still held the mail.
   */
  markFailed(db: Db, id: string, attempt: number, error: string, retryAt: Date | null): Promise<boolean> {
    return updateClaimed(db, id, attempt, {
      last_error: error.slice(0, 1000),
      next_attempt_at: retryAt,
      ...(retryAt === null && { text_body: null, html_body: null }),
    });
  },

  /**
   * One page of mails for admins, newest first (never their bodies): those after the mail
   * `after` in that order, narrowed to one state when `state` is given. `unsent` is every
   * mail still to send (queued or retrying), which the outbox's partial index serves.
   */
  async page(
    db: Db,
    options: { state?: 'unsent' | 'sent' | 'given_up'; after?: string; limit: number },
  ): Promise<OutboxEntry[]> {
    let query = db
      .selectFrom('mail_outbox')
      .select([
        'id',
        'template',
        'to_address',
        'subject',
        'attempts',
        'next_attempt_at',
        'last_error',
        'sent_at',
        'created_at',
      ]);
    if (options.state === 'unsent') query = query.where('next_attempt_at', 'is not', null);
    if (options.state === 'sent') query = query.where('sent_at', 'is not', null);
    if (options.state === 'given_up')
      query = query.where('next_attempt_at', 'is', null).where('sent_at', 'is', null);
    if (options.after) {
      // Row comparison: created_at alone may tie, and a JavaScript Date would drop its microseconds.
      query = query.where(
        sql<boolean>`(created_at, id) < (select created_at, id from mail_outbox where id = ${options.after})`,
      );
    }
    return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit).execute();
  },

  /** Removes mails done (sent or given up) for longer than `days`. */
  deleteDoneBefore(db: Db, days: number): Promise<number> {
    return deleteDoneRowsBefore(db, 'mail_outbox', days);
  },
};

/** Updates mail `id` if the claim `attempt` still holds it (no later claim, not sent); returns whether it did. */
async function updateClaimed(
  db: Db,
  id: string,
  attempt: number,
  values: UpdateObject<Database, 'mail_outbox'>,
): Promise<boolean> {
  const result = await db
    .updateTable('mail_outbox')
    .set(values)
    .where('id', '=', id)
    .where('attempts', '=', attempt)
    .where('sent_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
