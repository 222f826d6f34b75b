import type Router from '@koa/router';
import { listMails } from '../../admin/mailOutbox.js';
import { parseQuery } from '../schemas.js';
import type { Services } from '../services.js';
import { mailsQuerySchema } from './adminMailPages.js';

/**
 * GET /api/admin/mail: the mail outbox, newest first, never a body (see listMails). Mounted
 * on the admin API's router, so its guards apply. Like /users, the body stays an array and
 * the next page is in a Link header (RFC 8288).
 */
export function mailApiRoutes(router: Router, { db }: Pick<Services, 'db'>): void {
  router.get('/mail', async (ctx) => {
    const { limit, state, after } = parseQuery(ctx, mailsQuerySchema);
    const page = await listMails(db, { state, after, limit });
    if (page.next) {
      const next = new URLSearchParams({ limit: String(limit), ...(state && { state }), after: page.next });
      ctx.set('Link', `</api/admin/mail?${next}>; rel="next"`);
    }
    ctx.body = page.mails;
  });
}
