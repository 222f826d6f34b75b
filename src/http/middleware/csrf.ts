import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Config } from '../../config.js';
import { cookieNames } from '../../cookieNames.js';
import { randomSecret } from '../../crypto.js';
import type { Logger } from '../../logger.js';
import type { CookieSigner } from '../cookieSigner.js';
import { HttpError } from '../errors.js';

/** At most one log line a minute about pages opened at another address: a flood writes no more. */
const OTHER_ADDRESS_LOG_INTERVAL_MS = 60_000;

/**
 * CSRF protection for Sesame's own forms and fetch calls: a random per-browser cookie plus a
 * token that is its HMAC under a server key (the signed double-submit pattern). A page
 * embeds the token; a state-changing request must send it back as the `_csrf` field or
 * the `X-CSRF-Token` header, and, when the browser says where it comes from, from our origin.
 * The server key is the cookie key: a rotation signs new tokens with the new key, and a page
 * loaded before it still submits while the old key verifies cookies.
 */
export class Csrf {
  private readonly origin: string;
  private readonly secureCookies: boolean;
  /** The cookie's name (cookieNames.ts). */
  private readonly cookie: string;

  constructor(
    private readonly keys: Pick<CookieSigner, 'keys'>,
    config: Pick<Config, 'origin' | 'secureCookies'>,
    private readonly log: Logger,
  ) {
    this.origin = config.origin;
    this.secureCookies = config.secureCookies;
    this.cookie = cookieNames(config).csrf;
  }

  /** When the last line about a page opened at another address was logged. */
  private otherAddressLoggedAt = Number.NEGATIVE_INFINITY;

  private sign(value: string, key = this.keys.keys[0]!): string {
    return createHmac('sha256', key).update(value).digest('base64url');
  }

  /** The token for this browser, setting its cookie on first use. */
  token(ctx: Context): string {
    let value = ctx.cookies.get(this.cookie);
    if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
      value = randomSecret();
      ctx.cookies.set(this.cookie, value, {
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
      if (origin && origin !== this.origin) throw this.refusal(origin, String(ctx.state.requestedHost ?? ''));
      const cookie = ctx.cookies.get(this.cookie);
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

  /**
   * The refusal of a request from another origin. When that origin is the request's own
   * host, it came from one of Sesame's pages opened at another address than ISSUER's
   * (127.0.0.1 for localhost, http for https): the person is told where to open it, and the
   * log says so, since its 403 alone does not. Anything else is refused as cross-origin.
   */
  private refusal(origin: string, host: string): HttpError {
    const opened = URL.parse(origin);
    if (!opened || opened.host !== host.toLowerCase())
      return new HttpError(403, 'forbidden', 'Cross-origin request refused').localized('errors.crossOrigin');
    const now = Date.now();
    if (now - this.otherAddressLoggedAt >= OTHER_ADDRESS_LOG_INTERVAL_MS) {
      this.otherAddressLoggedAt = now;
      // The page tells the person to open the issuer's address; from another machine (a server
      // reached by its IP address, or through a proxy) that leads nowhere, and ISSUER is the fix.
      this.log.warn('a page was opened at another address than ISSUER: its forms are refused', {
        opened_at: opened.origin,
        issuer: this.origin,
        hint: 'if people reach Sesame at opened_at (another host name, a proxy), set ISSUER to that address (https off localhost, for passkeys)',
      });
    }
    return new HttpError(
      403,
      'forbidden',
      `This page was opened at ${opened.origin}, but this site is served at ${this.origin}: open it there.`,
    ).localized('errors.otherAddress', { origin: opened.origin, issuer: this.origin });
  }

  private matches(cookie: string, presented: string): boolean {
    const actual = Buffer.from(presented);
    return this.keys.keys.some((key) => {
      const expected = Buffer.from(this.sign(cookie, key));
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    });
  }
}
