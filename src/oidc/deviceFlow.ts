import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { APPROVED_ON_DEVICE, CONSENT_REVOKED, oidcModelsQueries } from '../db/queries/oidcModels.js';
import { plainAddress, rateLimitKey } from '../http/middleware/rateLimit.js';
import { sendPage } from '../http/views.js';
import type { Translator } from '../i18n/catalog.js';
import { DEVICE_CODE_GRANT } from './clients.js';
import { rememberFinishedSignIn } from './expiredSignIn.js';
import { isStaleForm } from './latePages.js';
import type { ModelCache } from './modelCache.js';
import { aroundProviderRoute } from './routeSteps.js';

/**
 * The person's side of the device authorization grant (RFC 8628): at ISSUER/device they type
 * (or, from verification_uri_complete, confirm) the code their TV or command-line tool shows,
 * see which app asks, and go on to the usual passkey sign-in and consent. The provider runs
 * the flow; these are its pages, in Sesame's style and under its strict CSP (the provider's
 * own forms carry an inline event handler, so only their anti-forgery token is taken over).
 */

/** The provider's anti-forgery token from the form it built for the page. */
function xsrfOf(form: string): string {
  const match = /name="xsrf" value="([^"]*)"/.exec(form);
  if (!match) throw new Error('device flow form without an xsrf token');
  return match[1]!;
}

/**
 * The device form's token a browser session held when a request loaded it, by the request:
 * the provider's `state` of a device page is `{ secret }` alone (shared/xsrf.js). A sign-out
 * page's holds its app and redirect beside it, but one with none (no hint, no app) is stored
 * as `{ secret }` too, and a /device page then keeps its token: the provider accepts either
 * page's token at either form already (one `state` per session), readable only in this browser.
 */
const formTokensHeld = new WeakMap<object, string>();

/** The secret of a session `state` that holds a form token and nothing else, else undefined. */
function bareFormToken(state: unknown): string | undefined {
  if (typeof state !== 'object' || state === null) return undefined;
  const { secret, ...rest } = state as { secret?: unknown };
  return typeof secret === 'string' && Object.keys(rest).length === 0 ? secret : undefined;
}

/**
 * Each /device page (and each refused code's page) gave the browser session a new form token,
 * so of two tabs of it only the last one opened could send its form: the other was told to
 * type the code again. Sesame's own forms keep one token per browser; the device pages now do
 * too: a session's device form token, read as the provider loads the session for a request,
 * is what the page the request renders holds again (see {@link formTokenFor}). It ends as the
 * provider ends it: when a code is confirmed, the session ends, or a sign-out page takes it.
 */
export function keepDeviceFormTokens(Session: Provider['Session']): void {
  const get = Session.get;
  Session.get = async function getSession(this: Provider['Session'], ctx) {
    const session = await get.call(this, ctx);
    const held = bareFormToken(session.state);
    if (held !== undefined) formTokensHeld.set(ctx, held);
    return session;
  };
}

/**
 * The token for the device page's form: the one the browser session held when the request
 * loaded it, put back in place of the new one the provider just made, else the provider's.
 */
function formTokenFor(ctx: KoaContextWithOIDC, form: string): string {
  const held = formTokensHeld.get(ctx);
  const { session } = ctx.oidc;
  if (held === undefined || !session || bareFormToken(session.state) === undefined) return xsrfOf(form);
  if (session.state?.secret !== held) session.state = { secret: held };
  return held;
}

/** Why the code the person typed led nowhere: the catalog key of the words for them. */
function problemWith(error: Error | undefined): string | undefined {
  // The page was only stale (latePages.ts): the device's code is untouched, to be typed again.
  if (isStaleForm(error)) return 'device.problems.formExpired';
  switch (error?.name) {
    case undefined:
      return undefined;
    case 'NoCodeError':
      return 'device.problems.noCode';
    case 'NotFoundError':
      return 'device.problems.notFound';
    case 'ExpiredError':
      return 'device.problems.expired';
    case 'AlreadyUsedError':
      return 'device.problems.alreadyUsed';
    case 'AbortedError':
      return error.cause instanceof DeviceGrantRevoked
        ? 'device.problems.revoked'
        : 'device.problems.aborted';
    default:
      return 'device.problems.other';
  }
}

/** An app that signs people in only through the device grant, never in a browser of its own. */
export function isDeviceOnlyApp(client: { grantTypeAllowed(type: string): boolean }): boolean {
  return client.grantTypeAllowed(DEVICE_CODE_GRANT) && !client.grantTypeAllowed('authorization_code');
}

/** The routes at which a person approves a device's code (RFC 8628): the provider issues the device's code there. */
const DEVICE_APPROVAL_ROUTES = new Set<unknown>(['code_verification', 'device_resume']);

/** Whether the request approves a device's code, by the provider's name of its route. */
export function isDeviceApproval(ctx: { oidc?: { route?: unknown } } | undefined): boolean {
  return DEVICE_APPROVAL_ROUTES.has(ctx?.oidc?.route);
}

/**
 * Lets the provider's grants keep {@link APPROVED_ON_DEVICE} and {@link CONSENT_REVOKED} when
 * it saves one again: it stores only the members it knows.
 */
export function keepDeviceApprovals(Grant: object): void {
  const fields = (Grant as { IN_PAYLOAD: string[] }).IN_PAYLOAD;
  Object.defineProperty(Grant, 'IN_PAYLOAD', { get: () => [...fields, APPROVED_ON_DEVICE, CONSENT_REVOKED] });
}

type SessionEntries = { authorizations?: Record<string, unknown> };

/** What a browser session held for an app before a device approval in it, by session. */
const entriesBefore = new WeakMap<object, { clientId: string; entry: unknown }>();

/**
 * The provider records the grant it signs in under in the browser session's entry for the
 * app, a device's approval too (with a `sid` and, as the device's tokens outlive the session,
 * `persistsLogout`). A device's sign-in is not the browser's: before the provider changes
 * the entry in a device approval, what it held is kept, and {@link leaveBrowserSessionAsItWas}
 * puts it back when the session is saved. The browser's sign-out then ends its own grant, not
 * the device's, and the browser's next sign-in to the app does not take the device's grant.
 */
export function keepBrowserSessionEntry(ctx: KoaContextWithOIDC): void {
  const { client, session } = ctx.oidc;
  if (!client || !session || !isDeviceApproval(ctx) || entriesBefore.has(session)) return;
  const entry = (session as SessionEntries).authorizations?.[client.clientId];
  entriesBefore.set(session, { clientId: client.clientId, entry: entry && structuredClone(entry) });
}

/** Puts back the session's entry for the app a device approval in it changed (see keepBrowserSessionEntry). */
export function leaveBrowserSessionAsItWas(session: object): void {
  const kept = entriesBefore.get(session);
  if (!kept) return;
  const { authorizations } = session as SessionEntries;
  if (kept.entry !== undefined)
    (session as SessionEntries).authorizations = {
      ...authorizations,
      [kept.clientId]: structuredClone(kept.entry),
    };
  else if (authorizations) delete authorizations[kept.clientId];
}

/**
 * A device's approval whose grant was revoked (the app's Revoke on the account page, "Sign out
 * everywhere") after the approval loaded it and before it was marked as the device's: the
 * device is refused (RFC 8628 §3.5, access_denied) and gets no tokens under it.
 */
class DeviceGrantRevoked extends errors.AccessDenied {
  constructor() {
    super('the access of the app was revoked while the device was being approved');
  }
}

/** Where a device's grant is marked: the database, and this instance's cache of grants. */
export interface DeviceGrantMarks {
  db: Db;
  models: Pick<ModelCache, 'forget'>;
}

/**
 * Marks the grant the person just approved a device's code under as that device's
 * (APPROVED_ON_DEVICE) by changing the stored grant only: saving the loaded copy would store
 * again a grant revoked in the meantime, and the device would get tokens the person ended.
 * @throws DeviceGrantRevoked when the grant is gone: the provider then records access_denied
 * in the device code (deviceUserFlowErrors), which the device's next poll is told.
 */
async function markDeviceGrant(ctx: KoaContextWithOIDC, { db, models }: DeviceGrantMarks): Promise<void> {
  const { grant } = ctx.oidc;
  if (!grant?.jti) return;
  const at = Math.floor(Date.now() / 1000);
  const marked = await oidcModelsQueries.markApprovedOnDevice(db, grant.jti, at);
  models.forget('Grant', grant.jti);
  if (!marked) throw new DeviceGrantRevoked();
  (grant as unknown as Record<string, unknown>)[APPROVED_ON_DEVICE] = at;
}

/** Length the code field accepts: a code is 9 characters with its dash; room for spaces a person types. */
const CODE_MAX_LENGTH = 32;

/** The code a request's link brought (verification_uri_complete), by the provider's context of the request. */
const codesFromLinks = new WeakMap<Context, string>();

/**
 * RFC 8628 §3.3.1: verification_uri_complete, `/device?user_code=…`, brings the code in its
 * link. The provider answers it with its own page, which submits the code by an inline
 * script (English, unbranded, and run only by the hash it adds to the CSP). Sesame takes the
 * code out of the request instead: the provider then asks for its code page, which
 * {@link deviceFlowPages} renders with the code filled in, sent on by public/js/autoSubmit.js
 * (a browser without scripts shows it with its Continue button).
 */
export function takeCodesFromLinks(provider: Provider): void {
  aroundProviderRoute(provider, 'GET', '/device', function takeCodeFromLink(ctx: Context, next: Next) {
    const { user_code: userCode, ...rest } = ctx.query;
    if (userCode === undefined) return next();
    if (typeof userCode === 'string' && userCode.length <= CODE_MAX_LENGTH) codesFromLinks.set(ctx, userCode);
    ctx.query = rest;
    return next();
  });
}

/**
 * Where and when the device asked for its code, for the person to check it is the device in
 * front of them (RFC 8628 §5.4: a code someone sent them is the remote phishing it warns of):
 * the address the provider kept in the device code (features.deviceFlow.deviceInfo, read as
 * Koa reads it under TRUST_PROXY: issuerOrigin.ts hands it on), and whether it is on another
 * network than this browser's request, IPv6 by its /64 as the rate limits count it. A person
 * at home whose TV asks over IPv4 and whose phone over IPv6 is told so too: the page then
 * asks them only to be sure they started it themselves.
 */
function whereTheDeviceAsked(ctx: KoaContextWithOIDC, deviceInfo: unknown, t: Translator['t']) {
  const asked = (deviceInfo as { ip?: unknown } | undefined)?.ip;
  const ip = typeof asked === 'string' ? plainAddress(asked) : undefined;
  if (ip === undefined) return {};
  const issuedAt = ctx.oidc.entities.DeviceCode?.iat;
  const minutes = issuedAt ? Math.max(0, Math.floor((Date.now() / 1000 - issuedAt) / 60)) : 0;
  return {
    requestedFrom:
      minutes === 0 ? t('device.requestedJustNow', { ip }) : t('device.requestedAgo', { count: minutes, ip }),
    otherNetwork: rateLimitKey(ip) !== rateLimitKey(ctx.ip),
  };
}

/**
 * The device flow's pages, as every other page: once the code the person typed is known, in
 * the language the device's request asked for (`ui_locales`, as its sign-in and consent
 * are), else in that of the signed-in person's account, else the one their browser asks for
 * (or DEFAULT_LOCALE); `chooseText` picks it (provider.ts). Each page holds a form token, and
 * no cache keeps it.
 */
export function deviceFlowPages(
  chooseText: (ctx: KoaContextWithOIDC, uiLocales?: unknown) => Promise<Translator>,
  marks: DeviceGrantMarks,
  config: Pick<Config, 'secureCookies'>,
) {
  async function text(ctx: KoaContextWithOIDC) {
    ctx.set('Cache-Control', 'no-store');
    return chooseText(ctx, ctx.oidc.entities.DeviceCode?.params?.ui_locales);
  }
  return {
    async userCodeInputSource(ctx: KoaContextWithOIDC, form: string, _out?: unknown, error?: Error) {
      const { t } = await text(ctx);
      // A code that leads nowhere is a refused request; a cancelled sign-in is the person's choice;
      // an approval whose grant was revoked meanwhile conflicts with that revoke.
      const codeRefused = error !== undefined && error.name !== 'AbortedError';
      if (codeRefused) ctx.status = 400;
      else if (error?.cause instanceof DeviceGrantRevoked) ctx.status = 409;
      const problem = problemWith(error);
      // A return that ended the sign-in with an error (a denied consent) finished it as a
      // success does: Back to its pages, the person is told to type a new code.
      if (error && ctx.oidc.route === 'device_resume') rememberFinishedSignIn(ctx, config);
      const fromLink = error ? undefined : codesFromLinks.get(ctx);
      sendPage(ctx, 'device', {
        title: t('device.title'),
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: formTokenFor(ctx, form),
        problem: problem && t(problem),
        codeRefused,
        maxLength: CODE_MAX_LENGTH,
        userCode: fromLink,
        script: fromLink && 'autoSubmit',
      });
    },

    async userCodeConfirmSource(
      ctx: KoaContextWithOIDC,
      form: string,
      client: { clientName?: string; clientId: string },
      deviceInfo: unknown,
      userCode: string,
    ) {
      const { t } = await text(ctx);
      sendPage(ctx, 'device-confirm', {
        title: t('device.confirmTitle'),
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: formTokenFor(ctx, form),
        userCode,
        clientName: client.clientName ?? client.clientId,
        ...whereTheDeviceAsked(ctx, deviceInfo, t),
      });
    },

    async successSource(ctx: KoaContextWithOIDC) {
      await markDeviceGrant(ctx, marks);
      // Back to the sign-in's pages, the person is told to type a new code, not to go back to an app.
      rememberFinishedSignIn(ctx, config);
      sendPage(ctx, 'device-done', {
        title: (await text(ctx)).t('device.doneTitle'),
        clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId,
      });
    },
  };
}
