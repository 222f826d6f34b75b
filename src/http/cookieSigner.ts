import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signs cookie values and checks their signatures for Koa and oidc-provider, in place of the
 * key list they would hand to keygrip. The signatures are keygrip's (HMAC-SHA1 under the
 * first key, base64url; any key of the list verifies), so cookies set before stay valid.
 * The check differs: keygrip compares through tsscmp, which draws a random key and computes
 * two more HMACs for every comparison, 15–20 µs per signed cookie read against ~2 µs for
 * `timingSafeEqual` on the two signatures (bench/README.md, 2026-12-03 evening). Both compare
 * in constant time; the length of a signature is no secret.
 *
 * One instance serves Koa (`app.keys`) and every provider instance (`cookies.keys`): both
 * keep the object they were given, not a copy of its keys (oidc-provider 9 sets it as its
 * Koa's `keys`; the `cookies` package uses a non-array `keys` as it is), so
 * {@link replace} switches all of them at once when the cookie keys are rotated.
 */
export class CookieSigner {
  #keys: readonly string[] = [];

  constructor(keys: readonly string[]) {
    this.replace(keys);
  }

  /** The keys, the signing one first. */
  get keys(): readonly string[] {
    return this.#keys;
  }

  /** Signs with the first of `keys` from now on; any of them verifies. */
  replace(keys: readonly string[]): void {
    if (keys.length === 0) throw new Error('a cookie signer needs at least one key');
    this.#keys = Object.freeze([...keys]);
  }

  sign(data: string): string {
    return hmac(this.#keys[0]!, data);
  }

  verify(data: string, digest: string): boolean {
    return this.index(data, digest) > -1;
  }

  /**
   * 0 when any key made `digest` for `data`, else -1. keygrip tells which key made it, and
   * the `cookies` package, told a later one, signs the cookie again under the first, but only
   * its `.sig` and without the cookie's attributes: a persistent session cookie read by the
   * account pages after a rotation would get a signature that ends with the browser session,
   * signing the person out when the browser closes. An earlier key verifies until its grace
   * ends; the provider signs its session cookie anew each time the session is used.
   */
  index(data: string, digest: string): number {
    const presented = Buffer.from(String(digest));
    for (const key of this.#keys) {
      const expected = Buffer.from(hmac(key, data));
      if (expected.length === presented.length && timingSafeEqual(expected, presented)) return 0;
    }
    return -1;
  }
}

function hmac(key: string, data: string): string {
  return createHmac('sha1', key).update(data).digest('base64url');
}
