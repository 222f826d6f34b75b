import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { requireRecentStepUp } from '../../accounts/passkeys.js';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connect.js';
import { usersQueries } from '../../db/queries/users.js';
import type { User } from '../../db/schema.js';
import { signInTooOld } from '../../oidc/ttl.js';
import { onSignIn } from '../../requestContext.js';
import { forbidden, unauthorized } from '../errors.js';
import { formPageOf, signInUrl } from '../returnPath.js';
import { pageText, renderPage, sendPage } from '../views.js';
import type { Csrf } from './csrf.js';
import { wantsJson } from './errors.js';
import { localeOf, rememberLanguageChoice } from './language.js';

/** The person signed in to Sesame itself (the provider's session), as account and admin pages see them. */
export interface SignedIn {
  user: User;
  /** The provider session's uid: stable for the session, safe to bind challenges to. */
  sessionUid: string;
  /** When the person last signed in with a passkey (seconds since the epoch). */
  loginTs: number | undefined;
  amr: string[] | undefined;
}

declare module 'koa' {
  interface DefaultState {
    signedIn?: SignedIn;
  }
}

/**
 * Reads the provider's session cookie: account and admin pages share the sign-in of the
 * OIDC flow, so one passkey sign-in serves both. A disabled user counts as signed out, and
 * so does a session whose passkey sign-in is too old to sign anyone in to an app (ttl.ts).
 */
export async function currentSignIn(ctx: Context, provider: Provider, db: Db): Promise<SignedIn | undefined> {
  const session = await provider.Session.get(ctx as never);
  if (!session?.accountId || signInTooOld(session.loginTs)) return undefined;
  const user = await usersQueries.findById(db, session.accountId);
  if (!user || user.disabled_at) return undefined;
  return {
    user,
    sessionUid: session.uid,
    loginTs: session.loginTs,
    amr: session.amr,
  };
}

/**
 * Only signed-in people pass; a browser is sent to sign in and brought back, a script gets
 * 401. A form posted after the session ended (signed out elsewhere, or its time ran out while
 * the page was open) gets a 401 page that says so and links to sign in again and come back
 * to the form's page; what the form sent is not kept. The rest of the request runs with the
 * sign-in it was admitted with (onSignIn).
 */
export function requireSignIn(
  provider: Provider,
  db: Db,
  config: Pick<Config, 'defaultLocale' | 'secureCookies' | 'issuer'>,
) {
  return async function checkSignIn(ctx: Context, next: Next) {
    const signedIn = await currentSignIn(ctx, provider, db);
    if (!signedIn) {
      if (wantsJson(ctx)) throw unauthorized('Sign in first').localized('errors.signInFirst');
      // A HEAD is answered as its GET would be (RFC 9110 §9.3.2): sent to sign in too.
      if (ctx.method === 'GET' || ctx.method === 'HEAD') {
        ctx.redirect(signInUrl(ctx.originalUrl));
        return;
      }
      const text = pageText(ctx);
      ctx.status = 401;
      sendPage(ctx, 'error', {
        title: text.t('error.sessionEndedHeading'),
        heading: text.t('error.sessionEndedHeading'),
        message: text.t('errors.sessionEnded'),
        backUrl: signInUrl(formPageOf(ctx, config.issuer)),
        backLabel: text.t('error.signInAgain'),
      });
      return;
    }
    ctx.state.signedIn = signedIn;
    // The person's own choice of language outranks the browser's on their pages; the browser
    // keeps it for the pages that do not read the account (one chosen on another device, say).
    ctx.state.locale = localeOf(ctx, config, { stored: signedIn.user.locale });
    rememberLanguageChoice(ctx, signedIn.user.locale, config);
    // The body may take up to the request timeout to arrive; an admin change made with it
    // checks that this sign-in has not ended meanwhile (assertAdminAuthority).
    const { user, sessionUid, loginTs } = signedIn;
    await onSignIn({ userId: user.id, sessionUid, loginTs }, next);
  };
}

/**
 * Only signed-in admins pass (use after requireSignIn). Anyone else gets a 403: a script the
 * JSON error, a person a page that names the account they are signed in with and offers to
 * sign out (to sign in with another one) or to go to their own account. While no
 * administrator can sign in, the page says so and where whoever runs the server finds the
 * setup link (its log, or the CLI), never the link itself: anyone may sign up and see it.
 */
export function requireAdmin(csrf: Csrf, db: Db) {
  return async function checkAdmin(ctx: Context, next: Next) {
    const user = ctx.state.signedIn?.user;
    if (user?.is_admin) return next();
    const message = 'This page is for Sesame administrators.';
    if (!user || wantsJson(ctx)) throw forbidden(message);
    ctx.status = 403;
    ctx.type = 'html';
    ctx.body = renderPage(
      ctx,
      'admin/forbidden',
      {
        title: 'Administrators only',
        csrf: csrf.token(ctx),
        message,
        email: user.email,
        noAdministrator: (await usersQueries.countActiveAdmins(db)) === 0,
      },
      'en',
    );
  };
}

/**
 * Only a session that proved a passkey in the last five minutes passes (use after
 * requireSignIn); otherwise 403 `step_up_required`, which the page's script answers with
 * a passkey prompt (src/client/stepUp.ts) before it sends the request again.
 */
export function requireStepUp(db: Db) {
  return async function checkStepUp(ctx: Context, next: Next) {
    const { user, sessionUid } = ctx.state.signedIn!;
    await requireRecentStepUp(db, sessionUid, user.id);
    await next();
  };
}
