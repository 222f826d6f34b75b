import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { sendPage } from '../http/views.js';
import type { Translator } from '../i18n/catalog.js';
import { expiredSignInWords, wayBackFromExpiredSignIn } from './expiredSignIn.js';
import { lastPathSegment } from './providerPaths.js';

/**
 * The provider's refusals of a form of its own pages (the device code page, the sign-out page)
 * whose token is not the one the visitor's session holds (oidc-provider's shared/xsrf.js): the
 * session ended while the page was open (a visit with nobody signed in keeps one half an hour),
 * a newer sign-out page, in another tab, replaced the token, or a device's code was confirmed
 * in another tab, which ends it (the device pages' tabs otherwise share one: deviceFlow.ts's
 * keepDeviceFormTokens). Nothing the form was for happened: the page was only stale.
 */
const STALE_FORM = new Set([
  'could not find device form details',
  'could not find logout details',
  'xsrf token invalid',
]);

/** Whether `error` is the provider's refusal of a stale form of its own pages (see above). */
export function isStaleForm(error: unknown): boolean {
  return error instanceof errors.InvalidRequest && STALE_FORM.has(error.error_description ?? '');
}

/**
 * Answers, in Sesame's words, a provider error that only says a step came too late, and
 * returns whether it did; any other error is left to the provider's error page. The
 * provider's words ("This sign-in link is not valid", "could not find logout details") left
 * a person with no way on, in English whatever the page's language.
 * - A return to a sign-in (`GET /auth/:uid`) that ended, its half hour over (its cookie and its
 *   row end together) or completed already, says so as the sign-in's own pages do, with the
 *   way back to its app while Sesame knows it (expiredSignIn.ts).
 * - A stale sign-out form: with the session live nothing happened, and they are told they are
 *   still signed in; with it gone the person is signed out, which is what they asked, when the
 *   form came from Sesame's own page or with the session cookie (`sessionCookieName`) of a
 *   session that ended; a form another site posted is told only that the page expired.
 */
export async function answerLateStep(
  ctx: KoaContextWithOIDC,
  db: Db,
  text: Translator,
  error: unknown,
  sessionCookieName: string,
): Promise<boolean> {
  const route = ctx.oidc?.route;
  if (route === 'resume' && error instanceof errors.SessionNotFound) {
    const way = await wayBackFromExpiredSignIn(db, ctx.oidc.provider, lastPathSegment(ctx.path));
    const { messageKey, back } = expiredSignInWords(way, text.t);
    sendError(ctx, text, text.t(messageKey), back && { backUrl: back.url, backLabel: back.label });
    return true;
  }
  if (route === 'end_session_confirm' && isStaleForm(error)) {
    if (ctx.oidc.session?.accountId) {
      sendError(ctx, text, text.t('logout.expired'));
    } else if (fromOwnPage(ctx) || ctx.cookies.get(sessionCookieName)) {
      ctx.status = 200;
      sendPage(ctx, 'logged-out', { title: text.t('logout.doneTitle') });
    } else {
      // A form another site posted (SameSite=Lax sends it without Sesame's cookies): no
      // session was found, but nothing says whether this browser is still signed in.
      sendError(ctx, text, text.t('logout.pageExpired'));
    }
    return true;
  }
  return false;
}

/**
 * Whether the browser says the request came from Sesame's own page: `Sec-Fetch-Site`, or the
 * `Origin` browsers send with every form post. A sign-out in another tab, or the session's end,
 * clears the session cookie, so its absence alone does not tell the two apart.
 */
function fromOwnPage(ctx: KoaContextWithOIDC): boolean {
  const site = ctx.get('sec-fetch-site');
  if (site) return site === 'same-origin';
  const origin = ctx.get('origin');
  return origin !== '' && origin === new URL(ctx.oidc.provider.issuer).origin;
}

function sendError(
  ctx: KoaContextWithOIDC,
  text: Translator,
  message: string,
  back?: { backUrl: string; backLabel: string },
): void {
  sendPage(ctx, 'error', {
    title: text.t('error.title'),
    heading: text.t('error.heading'),
    message,
    ...back,
  });
}
