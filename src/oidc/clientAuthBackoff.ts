import { type HitCounter, MemoryHitCounter } from '../db/hitCounter.js';
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

/** Keys whose failures this process counts itself, at most (see {@link ClientAuthBackoff.authenticate}). */
const KEYS_COUNTED_HERE = 10_000;

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
  /** Failures this process counted per key, and when it stops counting them (ms). */
  readonly #countedHere = new MemoryHitCounter(KEYS_COUNTED_HERE);

  constructor(private readonly hits: HitCounter) {}

  /**
   * Authenticates the client with `secretMatches` (a comparison of the presented secret),
   * unless it is locked out from `address` (the request's, as read under TRUST_PROXY);
   * counts a failure.
   *
   * Whether the client is locked out is read before the comparison, and a failure counted
   * after it: 300 wrong secrets sent at once all read "not locked out", and 299 were compared
   * and counted. So this process also counts its failures in memory, checked and counted with
   * no turn of the event loop between them and the comparison: of a burst, at most
   * {@link CLIENT_AUTH_FAILURES_ALLOWED} are compared on each instance, and the rest refused
   * uncompared and uncounted, as a lockout refuses. Counting every attempt in the shared
   * counter before comparing would hold a burst to the limit on all instances together, but
   * cost a write of Postgres on every successful authentication, the token endpoint's hot
   * path; secrets are 256-bit random, so the lockout bounds hammering, not guessing.
   */
  async authenticate(clientId: string, address: string, secretMatches: () => boolean): Promise<boolean> {
    const key = keyOf(clientId, address);
    if (!(await this.#allows(key))) return false;
    if (this.#countedHere.hitsNow(key) >= CLIENT_AUTH_FAILURES_ALLOWED) return false;
    if (secretMatches()) return true;
    // Its window starts at this process's first failure, at or after the shared window's:
    // a lockout here may outlast the shared one by the time between them, never end before it.
    this.#countedHere.hitNow(key, CLIENT_AUTH_WINDOW_SECONDS);
    await this.#failed(key);
    return false;
  }

  async #allows(key: string): Promise<boolean> {
    if (this.notLockedOut.peek(key)) return true;
    const generation = this.notLockedOut.generation;
    const { allowed } = await this.hits.check(key, CLIENT_AUTH_FAILURES_ALLOWED);
    if (allowed) this.notLockedOut.remember(key, NOT_LOCKED_OUT, generation);
    return allowed;
  }

  /** Counts one failed authentication in the shared counter. */
  async #failed(key: string): Promise<void> {
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
