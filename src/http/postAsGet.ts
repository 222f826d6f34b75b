import type { Context } from 'koa';
import { postAsGetLimit, providerRequestTooLarge } from '../oidc/providerPaths.js';
import { badRequest, HttpError } from './errors.js';

/**
 * The provider endpoints a browser may also reach with a form POST: authorization (OpenID
 * Connect Core §3.1.2.1) and RP-initiated logout (RP-Initiated Logout 1.0 §2). The provider
 * answers them only as GET, on purpose (its `enableHttpPostMethods` is off): Sesame's cookies
 * are SameSite=Lax, so an app's cross-site POST carries none, and the provider would take
 * the person for signed out, or end no session and overwrite the cookie. A cross-site
 * top-level GET carries them; so Sesame answers the POST with a redirect to the same GET.
 */
export const POST_AS_GET_PATHS: ReadonlySet<string> = new Set(['/auth', '/session/end']);

/**
 * Characters a query string may hold as they are (RFC 3986 §3.4), with `%` only before two
 * hex digits: a body of only these is passed on byte for byte, so the GET reads exactly what
 * the POST sent and is no longer than it.
 */
const QUERY_AS_IS = /^(?:[\w.~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*$/;

/**
 * Answers a form-encoded POST at `/auth` or `/session/end` with `303 See Other` to the same
 * path as a GET whose query string is the body, so the provider sees the request, and the
 * person's session, exactly as for a GET; the provider itself never gets the POST. The body
 * is held to its limit (postAsGetLimit: 413 over it, 411 without a Content-Length), as
 * a query string is; a body of another type is 415, and a POST that also has a query string
 * is 400: OpenID Connect sends a POST's parameters in its body, and two sets would have to
 * be merged in some order of Sesame's choosing. A parameter repeated in the body reaches the
 * provider repeated, which refuses it as it does in a GET (but `resource`, RFC 8707).
 */
export async function redirectPostAsGet(ctx: Context, issuer: string): Promise<void> {
  // Past the size, what is refused is the app's mistake: in English words for its developer,
  // as the provider's own error pages show them.
  const tooLarge = providerRequestTooLarge(ctx.req, ctx.path);
  if (tooLarge?.status === 411) {
    // A body of no stated length could go on for ever: not read, and the connection ends.
    ctx.set('Connection', 'close');
    throw new HttpError(411, 'invalid_request', tooLarge.description);
  }
  if (tooLarge)
    throw new HttpError(tooLarge.status, 'invalid_request', tooLarge.description).localized(
      'errors.tooLarge',
    );
  if (ctx.querystring)
    throw badRequest(
      `A POST to ${ctx.path} carries its parameters in the form body only; this one has a query string too`,
    );
  const coding = ctx.get('content-encoding').toLowerCase();
  if (!ctx.is('application/x-www-form-urlencoded') || (coding && coding !== 'identity'))
    throw new HttpError(
      415,
      'unsupported_media_type',
      `A POST to ${ctx.path} must be an uncompressed form (Content-Type: application/x-www-form-urlencoded)`,
    );
  const body = await formBody(ctx, postAsGetLimit(ctx.path));
  const query = QUERY_AS_IS.test(body) ? body : new URLSearchParams(body).toString();
  ctx.status = 303;
  ctx.set('Cache-Control', 'no-store');
  ctx.redirect(query ? `${issuer}${ctx.path}?${query}` : `${issuer}${ctx.path}`);
}

/** The body as text; its Content-Length is known and within `limit` (Node holds it to that length). */
async function formBody(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) break;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
