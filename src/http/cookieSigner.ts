import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signs cookie values and checks their signatures for Koa and oidc-provider, in place of the
 * key list they would hand to keygrip. The signatures are keygrip's (HMAC-SHA1 under the
 * first key, base64url; any key of the list verifies), so cookies set before stay valid.
 * The check differs: keygrip compares through tsscmp, which draws a random key and computes
 * two more HMACs for every comparison, 15–20 µs per signed cookie read against ~2 µs for
 * `timingSafeEqual` on the two signatures (bench/README.md, 2026-12-03 evening). Both compare
 * in constant time; the length of a signature is no secret.
 */
export class CookieSigner {
  readonly #keys: readonly string[];

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new Error('a cookie signer needs at least one key');
    this.#keys = [...keys];
  }

  sign(data: string): string {
    return hmac(this.#keys[0]!, data);
  }

  verify(data: string, digest: string): boolean {
    return this.index(data, digest) > -1;
  }

  /** The index of the key that made `digest` for `data`, or -1. */
  index(data: string, digest: string): number {
    const presented = Buffer.from(String(digest));
    for (let i = 0; i < this.#keys.length; i += 1) {
      const expected = Buffer.from(hmac(this.#keys[i]!, data));
      if (expected.length === presented.length && timingSafeEqual(expected, presented)) return i;
    }
    return -1;
  }
}

function hmac(key: string, data: string): string {
  return createHmac('sha1', key).update(data).digest('base64url');
}
