import type { Context } from 'koa';

/**
 * The longest path kept to return to: it rides in a cookie with the state, and a browser
 * drops a cookie over 4 kB, which would fail the sign-in's state check.
 */
const RETURN_PATH_MAX = 2000;

/**
 * A local path to come back to; anything else (another host, `//evil`, a path over
 * RETURN_PATH_MAX) falls back to `fallback`, /account unless given. Only visible ASCII is kept, as a browser sends a
 * path: the value travels in a cookie and a Location header, where CR/LF or other bytes
 * could split or break them. A `;`, which no cookie value may hold (`/admin/users?q=a;b`, a
 * signed-out search), is kept percent-encoded.
 */
export function safeReturnPath(value: unknown, fallback = '/account'): string {
  return typeof value === 'string' &&
    value.length <= RETURN_PATH_MAX &&
    /^\/(?![/\\])[\x21-\x7e]*$/.test(value)
    ? value.replaceAll(';', '%3B')
    : fallback;
}

/**
 * The page a form was posted from, to come back to after signing in again: the Referer's
 * path when it is this site's (the pages send it to their own origin: Referrer-Policy
 * same-origin), else the home of the pages posted to (/admin or /account).
 */
export function formPageOf(ctx: Context, issuer: string): string {
  const home = ctx.path.startsWith('/admin/') ? '/admin' : '/account';
  const referer = URL.parse(ctx.get('referer'));
  if (referer?.origin !== new URL(issuer).origin) return home;
  return safeReturnPath(`${referer.pathname}${referer.search}`, home);
}

/** Where a browser signs in to Sesame's own pages and then comes back to `path`. */
export const signInUrl = (path: string) => `/account/login?return_to=${encodeURIComponent(path)}`;
