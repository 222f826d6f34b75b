import type Router from '@koa/router';
import { z } from 'zod';
import { listMails, MAIL_STATE_FILTERS, MAX_MAILS_PAGE } from '../../admin/mailOutbox.js';
import { limitParameter, parseQuery } from '../schemas.js';
import type { Services } from '../services.js';
import type { AdminPageKit } from './adminPageKit.js';

/**
 * The outbox list's query, for the page and the admin API: `state` narrows it, `after` is
 * the previous page's cursor (a mail's id), `limit` the page size (the API's; the page shows
 * a fixed number). A bad value is a 400 that names it.
 */
export const mailsQuerySchema = z.object({
  limit: limitParameter(MAX_MAILS_PAGE, 100),
  state: z.enum(MAIL_STATE_FILTERS, { error: `must be one of ${MAIL_STATE_FILTERS.join(', ')}` }).optional(),
  after: z.uuid({ error: "must be a mail's id (a previous page's next cursor)" }).optional(),
});

/** Mails shown on one page of /admin/mail; its query has no `limit` (one given is ignored). */
const MAILS_PER_PAGE = 50;
const pageQuerySchema = mailsQuerySchema.omit({ limit: true });

/** The page's filters: the `state` each sets (none: every mail) and its link text. */
const FILTERS: [string, string][] = [
  ['', 'All'],
  ['unsent', 'Not yet sent'],
  ['given_up', 'Given up'],
  ['sent', 'Sent'],
];

/**
 * /admin/mail: the mail outbox, newest first, to see whether mail goes out and why not:
 * queued, retrying (attempts, next attempt, last error), sent or given up. Bodies, which
 * hold one-time links, are never shown. Without SMTP_URL the page says mail is off.
 */
export function mailPages(router: Router, kit: AdminPageKit, { config, db }: Services): void {
  router.get('/mail', async (ctx) => {
    const { state, after } = parseQuery(ctx, pageQuerySchema);
    const page = await listMails(db, { state, after, limit: MAILS_PER_PAGE });
    const next =
      page.next && `/admin/mail?${new URLSearchParams({ ...(state && { state }), after: page.next })}`;
    kit.render(ctx, 'mail', {
      title: 'Mail',
      configured: config.mail !== undefined,
      filters: FILTERS,
      state,
      mails: page.mails,
      first: !after,
      next,
    });
  });
}
