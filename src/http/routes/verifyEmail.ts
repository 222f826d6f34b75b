import type Router from '@koa/router';
import { VerifyLinkError, verifyEmailWithLink } from '../../accounts/emailVerification.js';
import { renderProblemPages } from '../middleware/errors.js';
import { requireSignIn } from '../middleware/session.js';
import { sesameRouter } from '../router.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';

/**
 * The link of the welcome mail, /verify/<token>: opened in the browser signed in to the
 * account it was sent for (anyone else is sent to sign in first), it verifies the address.
 * The token is a bearer secret: looked up by its hash, and a segment the logger redacts.
 */
export function verifyEmailRoutes({ config, db, provider, rateLimit, caches }: Services): Router {
  const router = sesameRouter(
    { prefix: '/verify/:token' },
    renderProblemPages(VerifyLinkError, (_error, ctx) => ({
      backUrl: '/account',
      backLabel: pageText(ctx).t('emailVerified.backLabel'),
    })),
    rateLimit,
    requireSignIn(provider, db, config),
  );

  router.get('/', async (ctx) => {
    const user = await verifyEmailWithLink(db, ctx.params.token!, ctx.state.signedIn!.user);
    caches.users.invalidate(user.id);
    ctx.set('Cache-Control', 'no-store');
    sendPage(ctx, 'email-verified', { title: pageText(ctx).t('emailVerified.title'), email: user.email });
  });

  return router;
}
