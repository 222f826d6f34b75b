import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { cookieNames } from '../../cookieNames.js';
import { localeFromUiLocales } from '../../i18n/negotiate.js';
import { ACCOUNT_CLIENT_ID, markSignOutConfirmed } from '../../oidc/accountClient.js';
import { HttpError } from '../errors.js';
import { parseBodies } from '../middleware/bodies.js';
import { safeReturnPath, signInUrl } from '../returnPath.js';
import { sesameRouter } from '../router.js';
import type { Services } from '../services.js';
import { pageText } from '../views.js';

/**
 * Signing in to Sesame's own pages. They are a client of the provider like any app, with
 * response_type "none": the authorization request runs the usual passkey login and leaves
 * a provider session, which the pages then read. `state` is checked against a cookie so
 * nobody can log a browser into their account (login CSRF, RFC 6749 §10.12).
 */
export function accountSessionRoutes({ config, csrf }: Services): Router {
  const router = sesameRouter();
  const names = cookieNames(config);
  const cookieOptions = {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: config.secureCookies,
    signed: true,
    overwrite: true,
  };

  router.get('/account/login', (ctx: Context) => {
    const state = randomBytes(16).toString('base64url');
    ctx.cookies.set(names.returnTo, `${state}|${safeReturnPath(ctx.query.return_to)}`, {
      ...cookieOptions,
      maxAge: 30 * 60 * 1000,
    });
    const url = new URL(`${config.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'none',
      scope: 'openid',
      redirect_uri: `${config.issuer}/account/callback`,
      state,
      ...(ctx.query.prompt === 'login' && { prompt: 'login' }),
    }).toString();
    ctx.redirect(url.toString());
  });

  router.get('/account/callback', (ctx: Context) => {
    const stored = ctx.cookies.get(names.returnTo, { signed: true });
    ctx.cookies.set(names.returnTo, null, cookieOptions);
    // The state is base64url: the first `|` ends it, and the path (which may hold `|`) follows.
    const bar = stored?.indexOf('|') ?? -1;
    const [state, returnTo] = bar === -1 ? [] : [stored!.slice(0, bar), stored!.slice(bar + 1)];
    if (ctx.query.error) {
      const cancelled = new HttpError(400, 'sign_in_cancelled', 'Sign-in was cancelled.').localized(
        'errors.signInCancelled',
      );
      // The person pressed Cancel: nothing else of Sesame's own pages is open without signing
      // in, so the way on is signing in again, back to the page they were going to.
      if (ctx.query.error === 'access_denied') {
        cancelled.back = {
          url: signInUrl(safeReturnPath(returnTo)),
          label: pageText(ctx).t('error.signInAgain'),
        };
      }
      throw cancelled;
    }
    if (!state || ctx.query.state !== state) {
      throw new HttpError(
        400,
        'invalid_state',
        'This sign-in link has expired. Please sign in again.',
      ).localized('errors.signInStateExpired');
    }
    ctx.redirect(safeReturnPath(returnTo));
  });

  router.post('/account/logout', parseBodies(), csrf.protect(), (ctx: Context) => {
    // The person pressed Sign out on Sesame's own page: the provider's confirmation then
    // submits itself (logoutSource in provider.ts), one click in all.
    markSignOutConfirmed(ctx.cookies, config);
    // A sign-in page's "Sign out" says the language it was shown in (an app's ui_locales may
    // have chosen it): the sign-out page speaks it too.
    const language = localeFromUiLocales(
      (ctx.request.body as Record<string, unknown> | undefined)?.ui_locales,
    );
    const url = new URL(`${config.issuer}/session/end`);
    url.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      post_logout_redirect_uri: `${config.issuer}/`,
      ...(language && { ui_locales: language }),
    }).toString();
    ctx.redirect(url.toString());
  });

  return router;
}
