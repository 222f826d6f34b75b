import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import { SELF_RECOVERY_LINK_TTL_SECONDS } from '../../accounts/oneTimeLinks.js';
import { requestSelfRecoveryInBackground } from '../../accounts/selfRecovery.js';
import { cookieNames, signedHostCookie } from '../../cookieNames.js';
import { addressKey } from '../../text.js';
import { notFound } from '../errors.js';
import { parseBodies } from '../middleware/bodies.js';
import {
  keyedRateLimit,
  rateLimitKey,
  SELF_RECOVERY_REQUESTS_PER_ADDRESS,
  SELF_RECOVERY_REQUESTS_PER_IP,
} from '../middleware/rateLimit.js';
import { sesameRouter } from '../router.js';
import { emailSchema, issueMessage, parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';

const recoveryOff = () =>
  notFound('Ask an administrator for a link to add a passkey to your account.').localized('recover.off');

const recoverFormSchema = z.object({ email: z.string().max(1000), _csrf: z.string() });

/**
 * "Lost your passkey?" at /recover (linked from the sign-in page when mail is configured
 * and SELF_RECOVERY is not off): an Email field and "Send me a link". The answer is the
 * same for any address, sent before the lookup: whether an account exists shows neither in
 * the words nor in the time. Requests are limited per client IP and per address.
 *
 * The answer is a 303 to /recover/sent (Post/Redirect/Get): reloading that page, or coming
 * Back to it, shows it again and sends nothing. Were the POST answered with the page itself,
 * a reload would post the form again: a second mail, whose link replaces the first one's.
 */
export function recoverRoutes({ config, db, log, csrf, rateLimit, hits }: Services): Router {
  // Off (SELF_RECOVERY=off, or no mail), the page does not exist, whatever is posted to it.
  async function selfRecoveryOn(_ctx: Context, next: Next) {
    if (!config.selfRecovery) throw recoveryOff();
    await next();
  }
  const router = sesameRouter(
    { prefix: '/recover' },
    selfRecoveryOn,
    rateLimit,
    parseBodies(),
    csrf.protect(),
  );
  const limited = config.rateLimitPerMinute > 0;
  const perAddress = keyedRateLimit(SELF_RECOVERY_REQUESTS_PER_ADDRESS, hits, limited);
  const perIp = keyedRateLimit(SELF_RECOVERY_REQUESTS_PER_IP, hits, limited);

  function render(ctx: Context, data: { email?: string; error?: string; sent?: boolean }) {
    sendPage(ctx, 'recover', { title: pageText(ctx).t('recover.title'), csrf: csrf.token(ctx), ...data });
  }

  // The address the answer page names, held by this browser alone (signed, HttpOnly,
  // `__Host-` over https) rather than in the URL, where history, logs and Referer would keep
  // it. It is the address as typed, whether or not it has an account, and lasts as long as the link.
  const sentCookie = cookieNames(config).recoverySent;

  router.get('/', (ctx) => {
    if (!config.selfRecovery) throw recoveryOff();
    render(ctx, {});
  });

  router.post('/', async (ctx) => {
    if (!config.selfRecovery) throw recoveryOff();
    const form = parseBody(ctx, recoverFormSchema);
    const email = emailSchema.safeParse(form.email);
    if (!email.success) {
      ctx.status = 400;
      render(ctx, { email: form.email, error: issueMessage(email.error.issues[0]!, pageText(ctx)) });
      return;
    }
    await perIp(ctx, rateLimitKey(ctx.ip));
    await perAddress(ctx, addressKey(email.data));
    requestSelfRecoveryInBackground(db, config, log, email.data, ctx.state.locale);
    ctx.cookies.set(sentCookie, Buffer.from(email.data).toString('base64url'), {
      ...signedHostCookie(config),
      maxAge: SELF_RECOVERY_LINK_TTL_SECONDS * 1000,
    });
    ctx.status = 303;
    ctx.redirect('/recover/sent');
  });

  // The answer to the form: it sends nothing. Without an address asked for in this browser
  // (its half hour over, or never asked), there is nothing to tell: back to the form.
  router.get('/sent', (ctx) => {
    const stored = ctx.cookies.get(sentCookie, { signed: true });
    const email =
      stored === undefined ? undefined : emailSchema.safeParse(Buffer.from(stored, 'base64url').toString());
    if (!email?.success) {
      ctx.status = 303;
      ctx.redirect('/recover');
      return;
    }
    render(ctx, { email: email.data, sent: true });
  });

  return router;
}
