import type { Db } from '../db/connect.js';
import { mailOutboxQueries, type OutboxEntry } from '../db/queries/mailOutbox.js';

/** Where a mail stands: still to send (queued, or retrying after a failure), sent, or given up. */
export type MailStatus = 'queued' | 'retrying' | 'sent' | 'given_up';

/** The states the outbox list can be narrowed to; `unsent` is queued and retrying together. */
export const MAIL_STATE_FILTERS = ['unsent', 'sent', 'given_up'] as const;
export type MailStateFilter = (typeof MAIL_STATE_FILTERS)[number];

/** At most this many mails per page, whoever asks. */
export const MAX_MAILS_PAGE = 500;

/** One mail of the outbox as admins see it: never its bodies, which hold one-time links. */
export interface MailView {
  id: string;
  template: string;
  to: string;
  subject: string;
  status: MailStatus;
  /** Attempts made so far, the one under way included. */
  attempts: number;
  /** When the next attempt is due, while the mail is retrying. */
  next_attempt_at: string | null;
  last_error: string | null;
  sent_at: string | null;
  queued_at: string;
}

export interface MailsPage {
  mails: MailView[];
  /** The cursor of the next page (pass it as `after`), when there is one. */
  next?: string;
}

const iso = (date: Date | null) => (date ? new Date(date).toISOString() : null);

function statusOf(row: OutboxEntry): MailStatus {
  if (row.sent_at) return 'sent';
  if (row.next_attempt_at === null) return 'given_up';
  // A mail whose first attempt is under way has no error yet: it is still queued.
  return row.last_error === null ? 'queued' : 'retrying';
}

function mailView(row: OutboxEntry): MailView {
  const status = statusOf(row);
  return {
    id: row.id,
    template: row.template,
    to: row.to_address,
    subject: row.subject,
    status,
    attempts: row.attempts,
    next_attempt_at: status === 'retrying' ? iso(row.next_attempt_at) : null,
    last_error: row.last_error,
    sent_at: iso(row.sent_at),
    queued_at: iso(row.created_at)!,
  };
}

/**
 * A page of the mail outbox, newest first: `state` narrows it to mails still to send, sent
 * or given up; `after` is the previous page's `next`.
 */
export async function listMails(
  db: Db,
  options: { state?: MailStateFilter; after?: string; limit?: number } = {},
): Promise<MailsPage> {
  const limit = Math.min(options.limit ?? MAX_MAILS_PAGE, MAX_MAILS_PAGE);
  // One row more than asked says whether there is a next page.
  const rows = await mailOutboxQueries.page(db, { ...options, limit: limit + 1 });
  const mails = rows.slice(0, limit).map(mailView);
  return rows.length > limit ? { mails, next: mails.at(-1)!.id } : { mails };
}
