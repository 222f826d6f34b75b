import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import { requestSelfRecoveryInBackground } from '../../accounts/selfRecovery.js';
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
 * same page for any address, sent before the lookup: whether an account exists shows
 * neither in the words nor in the time. Requests are limited per client IP and per address.
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
    render(ctx, { email: email.data, sent: true });
  });

  return router;
}
