import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import { randomSecret } from '../../crypto.js';
import type { CookieSigner } from '../cookieSigner.js';
import { HttpError } from '../errors.js';

const COOKIE = 'sesame.csrf';

/**
 * CSRF protection for Sesame's own forms and fetch calls: a random per-browser cookie plus a
 * token that is its HMAC under a server key (the signed double-submit pattern). A page
 * embeds the token; a state-changing request must send it back as the `_csrf` field or
 * the `X-CSRF-Token` header, and, when the browser says where it comes from, from our origin.
 * The server key is the cookie key: a rotation signs new tokens with the new key, and a page
 * loaded before it still submits while the old key verifies cookies.
 */
export class Csrf {
  constructor(
    private readonly keys: Pick<CookieSigner, 'keys'>,
    private readonly origin: string,
    private readonly secureCookies: boolean,
  ) {}

  private sign(value: string, key = this.keys.keys[0]!): string {
    return createHmac('sha256', key).update(value).digest('base64url');
  }

  /** The token for this browser, setting its cookie on first use. */
  token(ctx: Context): string {
    let value = ctx.cookies.get(COOKIE);
    if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
      value = randomSecret();
      ctx.cookies.set(COOKIE, value, {
        httpOnly: true,
        sameSite: 'lax',
        secure: this.secureCookies,
        overwrite: true,
      });
      // Later code in this request must see the new cookie.
      ctx.state.csrfCookie = value;
    }
    return this.sign(value);
  }

  /** Rejects unsafe requests that lack a valid token or come from another origin. */
  protect() {
    return async (ctx: Context, next: Next) => {
      if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'OPTIONS') return next();
      const origin = ctx.get('origin');
      if (origin && origin !== this.origin)
        throw new HttpError(403, 'forbidden', 'Cross-origin request refused').localized('errors.crossOrigin');
      const cookie = ctx.cookies.get(COOKIE);
      const body = ctx.request.body as Record<string, unknown> | undefined;
      const presented = ctx.get('x-csrf-token') || (typeof body?._csrf === 'string' ? body._csrf : '');
      if (!cookie || !presented || !this.matches(cookie, presented)) {
        throw new HttpError(
          403,
          'csrf',
          'This form has expired or did not come from this site. Reload the page and try again.',
        ).localized('errors.csrf');
      }
      await next();
    };
  }

  private matches(cookie: string, presented: string): boolean {
    const actual = Buffer.from(presented);
    return this.keys.keys.some((key) => {
      const expected = Buffer.from(this.sign(cookie, key));
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    });
  }
}
