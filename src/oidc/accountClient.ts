import { hash, timingSafeEqual } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import type { Config } from '../config.js';
import { cookieNames, signedHostCookie } from '../cookieNames.js';

/** Client id of Sesame's own account and admin pages, which sign people in through the provider like any app. */
export const ACCOUNT_CLIENT_ID = 'sesame-account';

/** The cookies of a request, as Koa's and the provider's contexts hold them. */
interface RequestCookies {
  get(name: string, options?: { signed: boolean }): string | undefined;
  set(
    name: string,
    value: string | null,
    options: {
      path: '/';
      httpOnly: true;
      sameSite: 'lax';
      secure: boolean;
      signed: true;
      overwrite: true;
      maxAge?: number;
    },
  ): unknown;
}

/** The sign-out mark lives a minute: long enough to follow the redirect, too short to be left behind. */
const SIGN_OUT_MARK_MAX_AGE_MS = 60 * 1000;

/**
 * The mark's value for a browser: a hash of its CSRF cookie (csrf.ts), which only that
 * browser holds (HttpOnly, `__Host-` over https). A mark another browser got (anyone gets
 * one from POST /account/logout with their own form token) and a sibling site or a plain
 * http answer planted names another CSRF cookie, and is worthless here.
 */
const signOutMark = (csrfCookie: string) => hash('sha256', `sesame.signout:${csrfCookie}`, 'base64url');

/**
 * Marks this browser as having pressed the account page's Sign out (a POST with the page's
 * form token, so its CSRF cookie is there): the provider's confirmation then submits itself
 * ({@link signOutConfirmed}). The `signOut` cookie (cookieNames.ts) is signed, bound to the
 * browser, `__Host-` on Path=/ over https (a sibling subdomain cannot plant one), for a minute.
 */
export function markSignOutConfirmed(cookies: RequestCookies, config: Pick<Config, 'secureCookies'>): void {
  const csrfCookie = cookies.get(cookieNames(config).csrf);
  if (!csrfCookie) return;
  cookies.set(cookieNames(config).signOut, signOutMark(csrfCookie), {
    ...signedHostCookie(config),
    maxAge: SIGN_OUT_MARK_MAX_AGE_MS,
  });
}

/**
 * Whether this logout page was reached from the account page's Sign out in this browser
 * (see {@link markSignOutConfirmed}): its confirmation then submits itself, as the person has
 * chosen to sign out already. The mark is spent here.
 */
export function signOutConfirmed(
  ctx: { oidc: { client?: { clientId: string } | undefined }; cookies: RequestCookies },
  config: Pick<Config, 'secureCookies'>,
): boolean {
  if (ctx.oidc.client?.clientId !== ACCOUNT_CLIENT_ID) return false;
  const name = cookieNames(config).signOut;
  const mark = ctx.cookies.get(name, { signed: true });
  if (mark === undefined) return false;
  ctx.cookies.set(name, null, signedHostCookie(config));
  const csrfCookie = ctx.cookies.get(cookieNames(config).csrf);
  if (!csrfCookie) return false;
  const expected = Buffer.from(signOutMark(csrfCookie));
  const presented = Buffer.from(mark);
  return expected.length === presented.length && timingSafeEqual(expected, presented);
}

/**
 * The name an app's pages show for a client: none for Sesame's own account pages, whose
 * registered name is for logs alone (the sign-in page says "your account" in the person's
 * language, the sign-out pages name no app).
 */
export function shownClientName(
  client: { clientId: string; clientName?: string } | undefined,
): string | undefined {
  return client?.clientId === ACCOUNT_CLIENT_ID ? undefined : client?.clientName;
}

/**
 * The account pages need only a signed-in session, not tokens: they use response_type
 * "none" (OAuth 2.0 Multiple Response Types §4), so no code is ever issued for them.
 */
export function accountClientMetadata(config: Pick<Config, 'issuer'>): ClientMetadata {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'Sesame account',
    token_endpoint_auth_method: 'none',
    grant_types: [],
    response_types: ['none'],
    redirect_uris: [`${config.issuer}/account/callback`],
    post_logout_redirect_uris: [`${config.issuer}/`],
    first_party: true,
  };
}
