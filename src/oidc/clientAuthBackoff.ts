import { type HitCounter, MemoryHitCounter } from '../db/hitCounter.js';
import { RowCache } from '../db/rowCache.js';
import { rateLimitKey } from '../http/middleware/rateLimit.js';

/**
 * Failed client authentications (a wrong secret at /token, /token/introspection or
 * /token/revocation) counted per client_id and client address in a window; past them, that
 * address's wrong secrets for the client are refused without being counted until the window
 * ends. The right secret is always accepted, from any address: a client_id is no secret (every
 * authorization request shows it), and refusing the right secret let anyone behind the app
 * server's address (a NAT, a platform's shared egress, every client when TRUST_PROXY is unset
 * behind a proxy) lock the app out of its own tokens. What makes guessing hopeless is the
 * secret's 256 random bits (Sesame generates every client secret; none is chosen by a
 * person), not this limit, as for passkey API keys (rateLimit.ts); the limit bounds the
 * writes a script hammering the token endpoint costs. Ten allows a few misconfigured
 * retries of a real client.
 */
export const CLIENT_AUTH_FAILURES_ALLOWED = 10;
/** How long an address's failures for a client are remembered. */
export const CLIENT_AUTH_WINDOW_SECONDS = 5 * 60;

const NOT_LOCKED_OUT = Object.freeze({});

/** Keys whose failures this process counts itself, at most (see {@link ClientAuthBackoff.authenticate}). */
const KEYS_COUNTED_HERE = 10_000;

/**
 * Counts failed client authentications per client_id and client address (as the per-IP limit
 * keys it, `rateLimitKey`: an IPv6 /64 is one address), in the counter every instance shares.
 *
 * A right secret asks nothing of it: it is accepted at once, whatever its address sent
 * before. A wrong one asks the counter whether its address is already past the limit for the
 * client, and is counted only if not. Which keys were found not past it is kept in process, as
 * a row cache of `rate_limit_hits` keyed like the counter: migration 0024 announces every
 * failure counted for a client, on any instance, and this instance forgets that key's answer
 * (at once for its own failures). Only "not past the limit" is kept: a window ends by itself,
 * which nothing announces, and the counter already remembers keys past their limit until
 * then. (The cache spared the token endpoint's hot path a read while the lockout refused the
 * right secret too; now that a right secret reads nothing, it spares little, as each failure
 * it answers is counted and forgets it.) While notices are not arriving (behind a transaction
 * pooler) every failure asks the counter.
 */
export class ClientAuthBackoff {
  /** Keyed like the counter (`client-auth:<client_id>:<address>`); kept in step by the row change listener (app.ts). */
  readonly notLockedOut = new RowCache<object>(10_000);
  /** Failures this process counted per key, and when it stops counting them (ms). */
  readonly #countedHere = new MemoryHitCounter(KEYS_COUNTED_HERE);

  constructor(private readonly hits: HitCounter) {}

  /**
   * Authenticates the client with `secretMatches` (a comparison of the presented secret with
   * the client this instance holds) or `matchesStoredSecret` (with the stored client); on a
   * wrong secret, counts a failure from `address` (the request's, as read under TRUST_PROXY)
   * unless that address is past {@link CLIENT_AUTH_FAILURES_ALLOWED} for the client already.
   *
   * The shared count is read and written after the comparison, with turns of the event loop
   * between: 300 wrong secrets sent at once would all read "not past the limit", and all be
   * counted. So this process also counts its failures in memory, checked and counted with no
   * turn of the event loop between: of a burst, at most
   * {@link CLIENT_AUTH_FAILURES_ALLOWED} are counted on each instance, and the rest refused
   * uncounted, as past the limit.
   */
  async authenticate(
    clientId: string,
    address: string,
    secretMatches: () => boolean,
    matchesStoredSecret?: () => Promise<boolean>,
  ): Promise<boolean> {
    if (secretMatches()) return true;
    // A secret rotated on another instance whose notice has not arrived: right, so accepted
    // from any address and not counted ({@link StoredSecrets} bounds what asking costs).
    if (matchesStoredSecret && (await matchesStoredSecret())) return true;
    const key = keyOf(clientId, address);
    // Checked and counted with no turn of the event loop between (see above).
    if (this.#countedHere.hitsNow(key) >= CLIENT_AUTH_FAILURES_ALLOWED) return false;
    // Its window starts at this process's first failure, at or after the shared window's.
    this.#countedHere.hitNow(key, CLIENT_AUTH_WINDOW_SECONDS);
    if (await this.#allows(key)) await this.#failed(key);
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

/**
 * The stored secret hash of a client, for a secret the client this instance holds refuses: one
 * rotated on another instance is known here once its notice arrives, which the app given the
 * new secret can beat (a deploy that rotates it and uses it at once). Read at most once per
 * `intervalMs` per client, and once for all who ask meanwhile, so wrong secrets sent at any
 * rate cost at most one statement a second per client: a secret rotated within that second
 * of the last read waits for the notice, or the next read.
 */
export class StoredSecrets {
  readonly #reads = new Map<string, { hash: Promise<string | undefined>; at: number }>();

  /** @param read reads the hash as stored now (no reuse). */
  constructor(
    readonly read: (clientId: string) => Promise<string | undefined>,
    private readonly intervalMs = 1_000,
  ) {}

  hashOf(clientId: string): Promise<string | undefined> {
    const last = this.#reads.get(clientId);
    // A monotonic clock: a wall clock set back would keep an old hash for as long.
    if (last && performance.now() - last.at < this.intervalMs) return last.hash;
    const hash = this.read(clientId);
    // Only clients that exist are asked for (the provider found the client), so this stays small.
    this.#reads.set(clientId, { hash, at: performance.now() });
    // Forgotten if it failed, unless a newer read has taken its place meanwhile.
    hash.catch(() => {
      if (this.#reads.get(clientId)?.hash === hash) this.#reads.delete(clientId);
    });
    return hash;
  }
}
