import type { HitCounter } from '../db/hitCounter.js';
import { RowCache } from '../db/rowCache.js';
import { rateLimitKey } from '../http/middleware/rateLimit.js';

/**
 * Failed client authentications (a wrong secret at /token, /token/introspection or
 * /token/revocation) allowed per client_id and client address in a window, before every
 * authentication of that client from that address is refused until the window ends, the
 * right secret too. Secrets are 256-bit random, so this does not protect them from being
 * guessed; it stops a script from hammering the token endpoint. Counted per address, not per
 * client_id alone (Keycloak's temporary lockout): a client_id is no secret (every
 * authorization request shows it), and ten wrong secrets from anywhere locked the real
 * client out of its own tokens, again and again. Ten allows a few misconfigured retries of a
 * real client.
 */
export const CLIENT_AUTH_FAILURES_ALLOWED = 10;
/** Long enough that a locked-out script gains nothing; short enough that a real client recovers on its own. */
export const CLIENT_AUTH_WINDOW_SECONDS = 5 * 60;

const NOT_LOCKED_OUT = Object.freeze({});

/**
 * Counts failed client authentications per client_id and client address (as the per-IP limit
 * keys it, `rateLimitKey`: an IPv6 /64 is one address), in the counter every instance shares.
 *
 * Asking the counter on every authentication was one read of Postgres per token,
 * introspection and revocation request. So which clients were found not locked out is kept
 * in process, as a row cache of `rate_limit_hits` keyed like the counter: migration 0024
 * announces every failure counted for a client, on any instance, and this instance forgets
 * that client's answer (at once for its own failures). Only "not locked out" is kept: a
 * lockout ends by itself when its window does, which nothing announces, and the counter
 * already remembers locked-out keys until then. While notices are not arriving (behind a
 * transaction pooler) every authentication asks the counter, as before.
 */
export class ClientAuthBackoff {
  /** Keyed like the counter (`client-auth:<client_id>:<address>`); kept in step by the row change listener (app.ts). */
  readonly notLockedOut = new RowCache<object>(10_000);

  constructor(private readonly hits: HitCounter) {}

  /** Whether the client may try to authenticate now from `address` (the request's, as read under TRUST_PROXY). */
  async allows(clientId: string, address: string): Promise<boolean> {
    const key = keyOf(clientId, address);
    if (this.notLockedOut.peek(key)) return true;
    const generation = this.notLockedOut.generation;
    const { allowed } = await this.hits.check(key, CLIENT_AUTH_FAILURES_ALLOWED);
    if (allowed) this.notLockedOut.remember(key, NOT_LOCKED_OUT, generation);
    return allowed;
  }

  /** Counts one failed authentication of the client from `address`. */
  async failed(clientId: string, address: string): Promise<void> {
    const key = keyOf(clientId, address);
    this.notLockedOut.invalidate(key);
    try {
      await this.hits.hit(key, CLIENT_AUTH_FAILURES_ALLOWED, CLIENT_AUTH_WINDOW_SECONDS);
    } finally {
      // A check that read the count while the failure was being written may have kept "not locked out".
      this.notLockedOut.invalidate(key);
    }
  }
}

const keyOf = (clientId: string, address: string) => `client-auth:${clientId}:${rateLimitKey(address)}`;
