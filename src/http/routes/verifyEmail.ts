import type Router from '@koa/router';
import { VerifyLinkError, verifyEmailWithLink } from '../../accounts/emailVerification.js';
import { renderProblemPages } from '../middleware/errors.js';
import { requireSignIn } from '../middleware/session.js';
import { sesameRouter } from '../router.js';
import type { Services } from '../services.js';
import { renderView } from '../views.js';

/**
 * The link of the welcome mail, /verify/<token>: opened in the browser signed in to the
 * account it was sent for (anyone else is sent to sign in first), it verifies the address.
 * The token is a bearer secret: looked up by its hash, and a segment the logger redacts.
 */
export function verifyEmailRoutes({ db, provider, rateLimit, caches }: Services): Router {
  const router = sesameRouter(
    { prefix: '/verify/:token' },
    renderProblemPages(VerifyLinkError, () => ({ backUrl: '/account', backLabel: 'Go to your account' })),
    rateLimit,
    requireSignIn(provider, db),
  );

  router.get('/', async (ctx) => {
    const user = await verifyEmailWithLink(db, ctx.params.token!, ctx.state.signedIn!.user);
    caches.users.invalidate(user.id);
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    ctx.body = renderView('email-verified', { title: 'Email address confirmed', email: user.email });
  });

  return router;
}
