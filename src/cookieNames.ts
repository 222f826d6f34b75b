import type { Config } from './config.js';

/** The name of every cookie Sesame's pages and its provider set, by what it holds. */
export interface CookieNames {
  /** The provider's browser session (Path=/): who is signed in. */
  readonly session: string;
  /** The provider's interaction, on the interaction's own path (/interaction/<uid>). */
  readonly interaction: string;
  /** The provider's authorization request to resume, on its own path (/auth/<uid>). */
  readonly resume: string;
  /** The CSRF cookie whose HMAC a page's form token is (csrf.ts). */
  readonly csrf: string;
  /** The account pages' sign-in state and where to return after it (accountSession.ts). */
  readonly returnTo: string;
  /** The language the person chose (language.ts). */
  readonly language: string;
  /** The account page's Sign out, bound to the browser's CSRF cookie, for a minute (accountClient.ts). */
  readonly signOut: string;
  /** The address "Lost your passkey?" was just asked for, for its answer page (recover.ts). */
  readonly recoverySent: string;
  /** The app the last finished sign-in was for, on the sign-in pages' path, for their way back (expiredSignIn.ts). */
  readonly finishedSignIn: string;
}

/** Over http (a local start): browsers refuse prefixed cookies without Secure. */
const PLAIN: CookieNames = Object.freeze({
  session: '_session',
  interaction: '_interaction',
  resume: '_interaction_resume',
  csrf: 'sesame.csrf',
  returnTo: 'sesame.return',
  language: 'sesame.lang',
  signOut: 'sesame.signout',
  recoverySent: 'sesame.recover',
  finishedSignIn: 'sesame.finished',
});

/**
 * Over https, the cookie name prefixes (RFC 6265bis §4.1.3): a browser takes a `__Host-`
 * cookie only when it is Secure, Path=/ and without Domain, so neither a sibling subdomain
 * (blog.example.com beside id.example.com, which may set cookies for all of example.com) nor
 * a network attacker on plain http before HSTS can plant one. Without the prefix, such a
 * site could plant its own signed session pair on a longer path; the browser sends that one
 * first, and the cookie jar takes the first match: the victim would be signed in as the
 * attacker. The signatures (`<name>.sig`) carry the prefix too, set with the same attributes.
 * The interaction cookies live on their interaction's path, and the finished sign-in's on
 * `/interaction`, which `__Host-` forbids: `__Secure-` at least keeps plain http from setting them.
 */
const PREFIXED: CookieNames = Object.freeze({
  session: '__Host-session',
  interaction: '__Secure-interaction',
  resume: '__Secure-interaction_resume',
  csrf: '__Host-sesame.csrf',
  returnTo: '__Host-sesame.return',
  language: '__Host-sesame.lang',
  signOut: '__Host-sesame.signout',
  recoverySent: '__Host-sesame.recover',
  finishedSignIn: '__Secure-sesame.finished',
});

/** The cookie names for this configuration: prefixed when ISSUER is https (cookies are Secure). */
export function cookieNames(config: Pick<Config, 'secureCookies'>): CookieNames {
  return config.secureCookies ? PREFIXED : PLAIN;
}

/**
 * The attributes of Sesame's own short-lived signed cookies on Path=/ (the sign-out mark, the
 * address "Lost your passkey?" was asked for): Path=/ and no Domain, as the `__Host-` prefix
 * they carry over https requires.
 */
export const signedHostCookie = (config: Pick<Config, 'secureCookies'>) =>
  ({
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: config.secureCookies,
    signed: true,
    overwrite: true,
  }) as const;
