import type { ClientMetadata } from 'oidc-provider';
import type { Config } from '../config.js';
import { cookieNames } from '../cookieNames.js';

/** Client id of Sesame's own account and admin pages, which sign people in through the provider like any app. */
export const ACCOUNT_CLIENT_ID = 'sesame-account';

/**
 * Whether this logout page was reached from the account page's Sign out: its confirmation
 * then submits itself. That Sign out, a POST with the page's form token, set the `signOut`
 * cookie (cookieNames.ts; signed, for a minute, on /session/end only): the person has chosen
 * to sign out already. The cookie is spent here.
 */
export function signOutConfirmed(
  ctx: {
    oidc: { client?: { clientId: string } | undefined };
    cookies: {
      get(name: string, options: { signed: boolean }): string | undefined;
      set(
        name: string,
        value: null,
        options: { path: string; httpOnly: true; sameSite: 'lax'; secure: boolean },
      ): unknown;
    };
  },
  config: Pick<Config, 'secureCookies'>,
): boolean {
  if (ctx.oidc.client?.clientId !== ACCOUNT_CLIENT_ID) return false;
  const name = cookieNames(config).signOut;
  const confirmed = ctx.cookies.get(name, { signed: true }) === 'yes';
  if (confirmed) {
    const attributes = {
      path: '/session/end',
      httpOnly: true,
      sameSite: 'lax',
      secure: config.secureCookies,
    } as const;
    ctx.cookies.set(name, null, attributes);
  }
  return confirmed;
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
