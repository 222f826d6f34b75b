import type { HitCounter } from '../db/hitCounter.js';

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

/** Counts failed client authentications per client_id, in the counter every instance shares. */
export class ClientAuthBackoff {
  constructor(private readonly hits: HitCounter) {}

  /** Whether the client may try to authenticate now. */
  async allows(clientId: string): Promise<boolean> {
    return (await this.hits.check(key(clientId), CLIENT_AUTH_FAILURES_ALLOWED)).allowed;
  }

  /** Counts one failed authentication of the client. */
  async failed(clientId: string): Promise<void> {
    await this.hits.hit(key(clientId), CLIENT_AUTH_FAILURES_ALLOWED, CLIENT_AUTH_WINDOW_SECONDS);
  }
}

const key = (clientId: string) => `client-auth:${clientId}`;
