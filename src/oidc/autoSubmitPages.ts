import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';
import { contentSecurityPolicy } from '../http/middleware/securityHeaders.js';
import { sendPage } from '../http/views.js';
import type { Translator } from '../i18n/catalog.js';
import { localeFromUiLocales } from '../i18n/negotiate.js';
import { shownClientName } from './accountClient.js';
import { aroundProviderRoute } from './routeSteps.js';

/**
 * The pages oidc-provider answers with a form that submits itself (its response_modes/form_post.js):
 * an app's `response_mode=form_post` answer, an end-session request with no session to end,
 * and the sign-out of one person before another's sign-in in the same browser goes on.
 * The provider's are English, unbranded and run an inline script (it adds the script's hash
 * to the CSP). Sesame's are its other pages: its layout and brand, the request's language,
 * and the form sent on by public/js/autoSubmit.js, its button shown for a browser without
 * scripts. oidc-provider 9 has no setting for that HTML (registerResponseMode adds a mode,
 * never replaces one), so the form_post mode is replaced in its table of response modes, as
 * restatedErrors.ts wraps it; the sign-out pages are replaced once the provider made them.
 */

/** The request's page text, in the language the page speaks (provider.ts, choosePageLocale). */
/** `uiLocales`: the request's, where the provider has not yet set its parameters (the default). */
type ChooseText = (ctx: KoaContextWithOIDC, uiLocales?: unknown) => Promise<Translator>;

/** A page with a form that posts `fields` to `action` by itself. */
interface AutoSubmitPage {
  title: string;
  heading: string;
  lead: string;
  action: string;
  fields: Record<string, unknown>;
}

function sendAutoSubmitPage(ctx: Context, page: AutoSubmitPage): void {
  const fields = Object.entries(page.fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => [name, String(value)]);
  sendPage(ctx, 'auto-submit', { ...page, fields, script: 'autoSubmit' });
}

/**
 * `response_mode=form_post` (OAuth 2.0 Form Post Response Mode §2): the answer to the app, a
 * code or an error, posted to its redirect URI by a page of Sesame's. The CSP leaves
 * form-action open (securityHeaders.ts), so the form may post to the app's origin.
 */
export function sendFormPostAnswersAsPages(provider: Provider, chooseText: ChooseText): void {
  const { responseModes } = providerInternals(provider);
  responseModes.set('form_post', async function answerWithFormPostPage(ctx, redirectUri, payload) {
    // As the provider's: an error is a 400 unless the answer already has a status of its own.
    if (![200, 400, 500].includes(ctx.status)) ctx.status = 'error' in payload ? 400 : 200;
    const { t } = await chooseText(ctx);
    const client = shownClientName(ctx.oidc.client) ?? t('common.theApplication');
    sendAutoSubmitPage(ctx, {
      title: t('autoSubmit.returnTitle'),
      heading: t('autoSubmit.returnHeading', { client }),
      lead: t('autoSubmit.returnLead', { client }),
      action: redirectUri,
      fields: payload,
    });
  });
}

/**
 * The provider's sign-out form, when the provider answered with one: a session's secret,
 * posted with logout=yes to /session/end/confirm, which ends the session and sends the
 * browser on (to `postLogoutRedirectUri`, else the signed-out page). Here that form is
 * Sesame's page, which carries `uiLocales` on as the confirmation page does (views/logout.eta).
 */
async function sendSignOutPage(
  ctx: KoaContextWithOIDC,
  chooseText: ChooseText,
  secret: string,
  uiLocales?: unknown,
) {
  // The provider's page added its inline script's hash to the CSP; Sesame's page runs none.
  ctx.set('Content-Security-Policy', contentSecurityPolicy());
  const { t } = await chooseText(ctx, uiLocales);
  sendAutoSubmitPage(ctx, {
    title: t('autoSubmit.signOutTitle'),
    heading: t('autoSubmit.signOutTitle'),
    lead: t('autoSubmit.signOutLead'),
    action: ctx.oidc.urlFor('end_session_confirm'),
    fields: { xsrf: secret, logout: 'yes', ui_locales: localeFromUiLocales(uiLocales) },
  });
}

/**
 * An end-session request (/session/end) from a browser with no session: nothing to confirm,
 * and the provider answers with its sign-out form (sendSignOutPage). With a session, the
 * provider asks logoutSource (provider.ts) for the page instead.
 */
export function sendSessionlessSignOutAsPage(provider: Provider, chooseText: ChooseText): void {
  async function replaceSignOutForm(ctx: KoaContextWithOIDC, next: Next) {
    await next();
    const secret = ctx.oidc?.session?.state?.secret;
    if (ctx.oidc.session?.accountId || ctx.status !== 200 || typeof secret !== 'string') return;
    await sendSignOutPage(ctx, chooseText, secret, ctx.oidc.params?.ui_locales);
  }
  // A POST there reaches the provider as this GET (src/http/postAsGet.ts).
  aroundProviderRoute(provider, 'GET', '/session/end', (ctx, next) =>
    replaceSignOutForm(ctx as KoaContextWithOIDC, next),
  );
}

/**
 * The return to an authorization (`/auth/:uid`) after someone else signed in
 * in a browser whose session is another person's: the provider first ends that session with
 * its sign-out form, whose way on is this same return (then signed in as the new person).
 * Called once the provider answered the return; a sign-out page of the provider's is that
 * form, by its `postLogoutRedirectUri` (an end-session request left there would name an app's).
 */
export async function replaceAccountSwitchSignOut(
  ctx: KoaContextWithOIDC,
  chooseText: ChooseText,
): Promise<void> {
  const state = ctx.oidc?.session?.state;
  if (ctx.status !== 200 || typeof state?.secret !== 'string') return;
  if (state.postLogoutRedirectUri !== ctx.oidc.urlFor(ctx.oidc.route, ctx.params)) return;
  // The provider sends this form before it reads the authorization's parameters back from
  // the interaction (resume.js): its ui_locales are the interaction's.
  const uiLocales = (ctx.oidc.entities?.Interaction as { params?: { ui_locales?: unknown } } | undefined)
    ?.params?.ui_locales;
  await sendSignOutPage(ctx, chooseText, state.secret, uiLocales);
}
