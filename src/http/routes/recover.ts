import { hash } from 'node:crypto';
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
  SELF_RECOVERY_REQUESTS_PER_ADDRESS_AND_IP,
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
 * the words nor in the time. Requests are limited per client IP, per address from one client
 * IP, and per address from all of them (see rateLimit.ts): a stranger who posts someone's
 * address uses up only their own count, not the owner's.
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
  const perAddressAndIp = keyedRateLimit(SELF_RECOVERY_REQUESTS_PER_ADDRESS_AND_IP, hits, limited);
  const perIp = keyedRateLimit(SELF_RECOVERY_REQUESTS_PER_IP, hits, limited);

  function render(ctx: Context, data: { email?: string; error?: string; sent?: boolean }) {
    sendPage(ctx, 'recover', { title: pageText(ctx).t('recover.title'), csrf: csrf.token(ctx), ...data });
  }

  // The address the answer page names, held in a cookie rather than in the URL, where
  // history, logs and Referer would keep it: signed, HttpOnly, `__Host-` over https, and bound
  // to this browser's anti-forgery cookie (copied into another browser, it names nothing
  // there). It is the address as typed, whether or not it has an account. A session cookie
  // whose age the server checks: an Expires the browser judges by its own clock would drop
  // it at once on a device whose clock runs fast, and the person, sent back to an empty form,
  // would ask again (a second mail, whose link replaces the first).
  const sentCookie = cookieNames(config).recoverySent;
  const csrfCookie = cookieNames(config).csrf;
  const browserMark = (ctx: Context) => {
    const anchor = ctx.cookies.get(csrfCookie);
    return anchor ? hash('sha256', `sesame.recover:${anchor}`, 'base64url') : undefined;
  };
  const sentValue = (ctx: Context, email: string) => {
    const mark = browserMark(ctx);
    return mark && `${Buffer.from(email).toString('base64url')}.${Date.now().toString(36)}.${mark}`;
  };
  const sentAddress = (ctx: Context): string | undefined => {
    const [address, at, mark, ...rest] = ctx.cookies.get(sentCookie, { signed: true })?.split('.') ?? [];
    const askedAt = at === undefined ? Number.NaN : Number.parseInt(at, 36);
    if (rest.length > 0 || !address || !mark || mark !== browserMark(ctx)) return undefined;
    if (!(Date.now() - askedAt < SELF_RECOVERY_LINK_TTL_SECONDS * 1000)) return undefined;
    const email = emailSchema.safeParse(Buffer.from(address, 'base64url').toString());
    return email.success ? email.data : undefined;
  };

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
    const requester = rateLimitKey(ctx.ip);
    const address = addressKey(email.data);
    // Refused, a request mails nothing and answers the same 429 whether the address has an
    // account or not. The requester's own count comes before the shared one: what one
    // requester asks past its own limit never counts against the address's.
    await perIp(ctx, requester);
    await perAddressAndIp(ctx, `${requester} ${address}`);
    await perAddress(ctx, address);
    requestSelfRecoveryInBackground(db, config, log, email.data, ctx.state.locale);
    // The anti-forgery check above needed the cookie the value is bound to: it is there.
    ctx.cookies.set(sentCookie, sentValue(ctx, email.data), signedHostCookie(config));
    ctx.status = 303;
    ctx.redirect('/recover/sent');
  });

  // The answer to the form: it sends nothing. Without an address asked for in this browser
  // (its half hour over, or never asked), there is nothing to tell: back to the form.
  router.get('/sent', (ctx) => {
    const email = sentAddress(ctx);
    if (email === undefined) {
      ctx.status = 303;
      ctx.redirect('/recover');
      return;
    }
    render(ctx, { email, sent: true });
  });

  return router;
}
