import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.js';
import { cookieNames, signedHostCookie } from '../cookieNames.js';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { ACCOUNT_CLIENT_ID } from './accountClient.js';
import { lastPathSegment } from './providerPaths.js';
import { storedId } from './storedIds.js';
import { EXPIRED_KEPT_SECONDS } from './ttl.js';

/**
 * Where an expired sign-in sends the person back to: Sesame's account page, an app's site, or,
 * for a device's sign-in (RFC 8628), the device, which gives a new code to type at /device.
 */
export type WayBack = { to: 'account' } | { to: 'device' } | { to: 'app'; appName: string; url: string };

/** Where a new device code is typed (the provider's code_verification page). */
const DEVICE_PAGE = '/device';

/**
 * The words of an expired or finished sign-in's page, by its way back: a device's sign-in has
 * no app on this browser to go back to, so the person is sent to their device for a new code,
 * or to /device to type one.
 */
export function expiredSignInWords(
  way: WayBack | undefined,
  t: (key: string, values?: Record<string, string>) => string,
): { messageKey: string; back?: { url: string; label: string } } {
  switch (way?.to) {
    case 'device':
      return {
        messageKey: 'errors.deviceSignInExpired',
        back: { url: DEVICE_PAGE, label: t('errors.enterNewCode') },
      };
    case 'account':
      return {
        messageKey: 'errors.interactionExpired',
        back: { url: '/account', label: t('emailVerified.backLabel') },
      };
    case 'app':
      return {
        messageKey: 'errors.interactionExpired',
        back: { url: way.url, label: t('errors.backToApp', { client: way.appName }) },
      };
    default:
      return { messageKey: 'errors.interactionExpired' };
  }
}

// An interaction uid is what oidc-provider makes (nanoid: base64url characters).
const UID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Which app a sign-in that expired (past TTL.Interaction: its page reloaded, or its passkey
 * button pressed, too late) was for, and where its site is, while Sesame still knows: the
 * interaction is kept EXPIRED_KEPT_SECONDS.Interaction past its end. Nothing else of the
 * sign-in is read, and nothing of it can be resumed.
 */
export async function wayBackFromExpiredSignIn(
  db: Db,
  provider: Provider,
  uid: string,
): Promise<WayBack | undefined> {
  if (!UID_SHAPE.test(uid)) return undefined;
  const payload = await oidcModelsQueries.findRecentlyExpired(
    db,
    'Interaction',
    'id',
    storedId('Interaction', uid),
    EXPIRED_KEPT_SECONDS.Interaction,
  );
  // A device's sign-in (RFC 8628) names the device code it approves, and has no redirect URI.
  if (typeof payload?.deviceCode === 'string') return { to: 'device' };
  const { client_id: clientId, redirect_uri: redirectUri } = (payload?.params ?? {}) as {
    client_id?: unknown;
    redirect_uri?: unknown;
  };
  if (typeof clientId !== 'string' || typeof redirectUri !== 'string') return undefined;
  // The origin of the redirect URI the app asked with, only while it is still registered.
  return wayBackTo(provider, clientId, (client) =>
    client.redirectUriAllowed(redirectUri) ? webOrigin(redirectUri) : undefined,
  );
}

/**
 * The way back from a sign-in at `clientId`: Sesame's account page for its own sign-in, else
 * the site `siteOf` finds for the app, only while the app is a web app (a native app's
 * loopback or custom-scheme URI is no page to open).
 */
async function wayBackTo(
  provider: Provider,
  clientId: string,
  siteOf: (client: Client) => string | undefined,
): Promise<WayBack | undefined> {
  if (clientId === ACCOUNT_CLIENT_ID) return { to: 'account' };
  const client = await provider.Client.find(clientId);
  if (client?.applicationType !== 'web') return undefined;
  const site = siteOf(client);
  return site ? { to: 'app', appName: client.clientName ?? clientId, url: `${site}/` } : undefined;
}

/**
 * Tells the pages of a sign-in whose return (`GET /auth/:uid`) went through, and so deleted it,
 * which app it was for: Back to its login or consent page, or a second tab's Allow, then finds
 * it gone, and the page links back to the app as an expired sign-in's does. No statement is
 * added to a login's return: the `finishedSignIn` cookie (cookieNames.ts) holds the uid, the
 * time, the client id and the origin of the redirect URI (none of them secret), signed; a
 * device's sign-in (RFC 8628: its return, `GET /device/:uid`, shows the device-done page) has
 * {@link FINISHED_ON_DEVICE} in the origin's place, and its pages send the person to /device.
 * - One cookie for every sign-in's pages (`/interaction`), each return's replacing the last:
 *   a cookie per sign-in, kept a while, piled up in a browser that stays open (a site's
 *   cookies are limited, and the browser drops others, of sites beside Sesame too, to keep
 *   them). So only the last return's sign-in links back: after one through consent, its
 *   consent page does, its login page (two steps Back) no longer.
 * - The origin, not the redirect URI: the return's response already carries the URI in its
 *   Location, and an app's long URI (up to 2,000 characters) twice over could pass the
 *   response-header limit of a proxy in front (nginx's 4 kB by default). A value over
 *   {@link MOST_FINISHED_BYTES} is not set.
 * - Its age is the server's to check, as recover.ts's: a browser clock that runs fast does not
 *   drop it at once. It ends a day later all the same.
 */
export function rememberFinishedSignIn(ctx: KoaContextWithOIDC, config: Pick<Config, 'secureCookies'>): void {
  // The authorization's parameters, read back from the interaction once the return went through
  // (resume.js); the interaction the return read may since have been followed by the next one.
  const { client_id: clientId, redirect_uri: redirectUri } = ctx.oidc?.params ?? {};
  if (typeof clientId !== 'string') return;
  // A device's sign-in (its return is `GET /device/:uid`) has no redirect URI: its pages send to /device.
  const onDevice = ctx.oidc?.route === 'device_resume';
  const uid = lastPathSegment(ctx.path);
  const site = typeof redirectUri === 'string' ? webOrigin(redirectUri) : undefined;
  const origin = onDevice ? FINISHED_ON_DEVICE : site && encode(site);
  if (!UID_SHAPE.test(uid) || !origin) return;
  const value = [uid, Date.now().toString(36), encode(clientId), origin].join('.');
  if (value.length > MOST_FINISHED_BYTES) return;
  // Signed and HttpOnly as the others, but on the sign-in pages' path: `__Secure-`, not `__Host-`.
  ctx.cookies.set(cookieNames(config).finishedSignIn, value, {
    ...signedHostCookie(config),
    path: INTERACTION_PATHS,
    maxAge: FINISHED_COOKIE_DAYS * 86_400_000,
  });
}

/**
 * The finished sign-in cookie's place of the origin for a device's sign-in: no origin's
 * encoding (base64url of `http…`) is this.
 */
const FINISHED_ON_DEVICE = 'device';

/** How long a browser keeps a finished sign-in's cookie (its link is honoured for EXPIRED_KEPT_SECONDS.Interaction). */
const FINISHED_COOKIE_DAYS = 1;

/** The longest finished sign-in's cookie value set (a client id and an origin of ordinary length take ~150). */
const MOST_FINISHED_BYTES = 400;

/** Where every sign-in's pages are (interaction.ts's routes, the provider's `interactions.url`). */
const INTERACTION_PATHS = '/interaction';

/** The origin of an http(s) URL, else undefined (a native app's custom-scheme URI is no page to open). */
function webOrigin(uri: string): string | undefined {
  const url = URL.parse(uri);
  return url?.protocol === 'https:' || url?.protocol === 'http:' ? url.origin : undefined;
}

/**
 * The way back from the sign-in `uid` that this browser's {@link rememberFinishedSignIn}
 * cookie says finished, for EXPIRED_KEPT_SECONDS.Interaction after; none from a cookie of
 * another sign-in, or without a valid signature. The origin links only while the app is a web
 * app with a redirect URI there.
 */
export async function wayBackFromFinishedSignIn(
  ctx: Pick<Context, 'cookies'>,
  config: Pick<Config, 'secureCookies'>,
  provider: Provider,
  uid: string,
): Promise<WayBack | undefined> {
  const cookie = ctx.cookies.get(cookieNames(config).finishedSignIn, { signed: true });
  const [finished, at, clientId, origin, ...rest] = cookie?.split('.') ?? [];
  const finishedAt = at === undefined ? Number.NaN : Number.parseInt(at, 36);
  if (rest.length > 0 || finished !== uid || clientId === undefined || origin === undefined) return undefined;
  if (!(Date.now() - finishedAt < EXPIRED_KEPT_SECONDS.Interaction * 1000)) return undefined;
  if (origin === FINISHED_ON_DEVICE) return { to: 'device' };
  const site = decode(origin);
  return wayBackTo(provider, decode(clientId), (client) =>
    client.redirectUris?.some((uri) => webOrigin(uri) === site) ? site : undefined,
  );
}

const encode = (text: string) => Buffer.from(text).toString('base64url');
const decode = (text: string) => Buffer.from(text, 'base64url').toString();
