import { STATUS_CODES } from 'node:http';
import type Provider from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { backchannelDeliveriesQueries, type ClaimedDelivery } from '../db/queries/backchannelDeliveries.js';
import { type Logger, redactText } from '../logger.js';
import { backchannelDeliveries } from '../metrics.js';
import { type OutboxTiming, OutboxWorker } from '../outboxWorker.js';
import { signLogoutToken } from './logoutToken.js';

/** When and how often the outbox posts logout tokens. */
export type DeliveryTiming = OutboxTiming;

/**
 * An app that is down for a while gets its logout tokens once it is back, within a day;
 * the waits grow so that a dead endpoint costs a few dozen requests, not thousands.
 */
export const DELIVERY_TIMING: DeliveryTiming = {
  pollMs: 2_000,
  backoffMs: [5_000, 30_000, 120_000, 600_000, 3_600_000],
  giveUpAfterMs: 24 * 3_600_000,
  leaseMs: 60_000,
  timeoutMs: 10_000,
};

/** The outboxes running in this process, woken when a sign-out here queued deliveries. */
const running = new Set<OutboxWorker<ClaimedDelivery>>();

/** Wakes this process's outboxes: call once the transaction that queued deliveries committed. */
export function wakeBackchannelOutboxes(): void {
  for (const outbox of running) outbox.wake();
}

/**
 * Posts the logout tokens of `backchannel_deliveries` (Back-Channel Logout 1.0 §2.5): as
 * `application/x-www-form-urlencoded` `logout_token=...`, any 2xx answer delivers it.
 * Failures are retried with backoff; a delivery given up is counted and audited. Several
 * instances on one database share the rows: each claims its own (see claimDue).
 */
export class BackchannelOutbox extends OutboxWorker<ClaimedDelivery> {
  protected readonly name = 'back-channel logout outbox';

  constructor(
    private readonly db: Db,
    private readonly provider: () => Provider,
    log: Logger,
    timing: Partial<DeliveryTiming> = {},
  ) {
    super(log, running, { ...DELIVERY_TIMING, ...timing });
  }

  protected claim(limit: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
    return backchannelDeliveriesQueries.claimDue(this.db, limit, leaseSeconds);
  }

  protected async attempt(delivery: ClaimedDelivery): Promise<void> {
    let error: string;
    try {
      const token = await this.#sign(delivery);
      if (token === undefined) return this.#giveUp(delivery, 'the app no longer exists');
      const response = await fetch(delivery.uri, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }),
        signal: AbortSignal.timeout(this.timing.timeoutMs),
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) {
        await backchannelDeliveriesQueries.markDelivered(this.db, delivery.id);
        backchannelDeliveries.inc({ result: 'delivered' });
        return;
      }
      error =
        `expected 2xx from ${delivery.uri}, got: ${response.status} ${STATUS_CODES[response.status] ?? ''}`.trim();
    } catch (failure) {
      // fetch says only "fetch failed"; why (refused, DNS, TLS, a blocked port) is its cause.
      // Another's words, which could quote the logout token posted: any secret in them is cut.
      const { message, cause } = failure as Error & { cause?: { message?: unknown } };
      error = redactText(typeof cause?.message === 'string' ? `${message}: ${cause.message}` : message);
    }
    const retryAt = this.retryAt(delivery);
    if (!retryAt) return this.#giveUp(delivery, error);
    await backchannelDeliveriesQueries.markFailed(this.db, delivery.id, error, retryAt);
    backchannelDeliveries.inc({ result: 'retry' });
    this.log.debug('back-channel logout not delivered, will retry', {
      client: delivery.client_id,
      attempts: delivery.attempts,
      error,
    });
  }

  /**
   * Signs the delivery's logout token for this attempt: a token lives two minutes (the
   * provider's logout token lifetime), and an app that checks `exp`, as Back-Channel Logout
   * 1.0 §2.6 asks, refused every retry after that when each posted the token of the first
   * attempt. So each attempt posts a new token (new iat, exp and jti) for the same sub and sid.
   */
  async #sign(delivery: ClaimedDelivery): Promise<string | undefined> {
    const provider = this.provider();
    const client = await provider.Client.find(delivery.client_id);
    if (!client) return undefined;
    return signLogoutToken(provider, client, delivery.sub, delivery.sid);
  }

  async #giveUp(delivery: ClaimedDelivery, error: string): Promise<void> {
    // One transaction: nobody sees the delivery given up without its entry in the activity log.
    await this.db.transaction().execute(async (trx) => {
      await backchannelDeliveriesQueries.markFailed(trx, delivery.id, error, null);
      await auditQueries.record(trx, 'system', 'backchannel.give_up', delivery.client_id, {
        uri: delivery.uri,
        attempts: delivery.attempts,
        error,
      });
    });
    backchannelDeliveries.inc({ result: 'given_up' });
    this.log.warn('back-channel logout given up', {
      client: delivery.client_id,
      attempts: delivery.attempts,
      error,
    });
  }
}
