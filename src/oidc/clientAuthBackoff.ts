import type { HitCounter } from '../db/hitCounter.js';
import { RowCache } from '../db/rowCache.js';

/**
 * Failed client authentications (a wrong secret at /token, /token/introspection or
 * /token/revocation) allowed per client_id in a window, before every authentication of
 * that client is refused until the window ends, the right secret too: Keycloak's temporary
 * lockout. Secrets are 256-bit random, so this does not protect them from being guessed; it
 * stops a script from hammering the token endpoint and makes the attempt visible (the
 * client's own requests fail). Ten allows a few misconfigured retries of a real client.
 */
export const CLIENT_AUTH_FAILURES_ALLOWED = 10;
/** Long enough that a locked-out script gains nothing; short enough that a real client recovers on its own. */
export const CLIENT_AUTH_WINDOW_SECONDS = 5 * 60;

const NOT_LOCKED_OUT = Object.freeze({});

/**
 * Counts failed client authentications per client_id, in the counter every instance shares.
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
  /** Keyed like the counter (`client-auth:<client_id>`); kept in step by the row change listener (app.ts). */
  readonly notLockedOut = new RowCache<object>(1_000);

  constructor(private readonly hits: HitCounter) {}

  /** Whether the client may try to authenticate now. */
  async allows(clientId: string): Promise<boolean> {
    const key = keyOf(clientId);
    if (this.notLockedOut.peek(key)) return true;
    const generation = this.notLockedOut.generation;
    const { allowed } = await this.hits.check(key, CLIENT_AUTH_FAILURES_ALLOWED);
    if (allowed) this.notLockedOut.remember(key, NOT_LOCKED_OUT, generation);
    return allowed;
  }

  /** Counts one failed authentication of the client. */
  async failed(clientId: string): Promise<void> {
    const key = keyOf(clientId);
    this.notLockedOut.invalidate(key);
    try {
      await this.hits.hit(key, CLIENT_AUTH_FAILURES_ALLOWED, CLIENT_AUTH_WINDOW_SECONDS);
    } finally {
      // A check that read the count while the failure was being written may have kept "not locked out".
      this.notLockedOut.invalidate(key);
    }
  }
}

const keyOf = (clientId: string) => `client-auth:${clientId}`;
