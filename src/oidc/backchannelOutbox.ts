import { AsyncResource } from 'node:async_hooks';
import { STATUS_CODES } from 'node:http';
import type Provider from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { backchannelDeliveriesQueries, type ClaimedDelivery } from '../db/queries/backchannelDeliveries.js';
import type { Logger } from '../logger.js';
import { backchannelDeliveries } from '../metrics.js';
import { signLogoutToken } from './logoutToken.js';

/** When and how often the outbox posts logout tokens. */
export interface DeliveryTiming {
  /** How often an instance looks for due deliveries (a sign-out in this process wakes it at once). */
  pollMs: number;
  /** The wait after the 1st, 2nd, ... failed attempt; the last value repeats. */
  backoffMs: readonly number[];
  /** A delivery still failing this long after its sign-out is given up. */
  giveUpAfterMs: number;
  /** How long a claimed delivery is this instance's; longer than a post can take (timeoutMs). */
  leaseMs: number;
  /** A post that takes longer is a failed attempt. */
  timeoutMs: number;
}

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

/** Deliveries one instance claims at a time. */
const BATCH = 20;

/** The outboxes running in this process, woken when a sign-out here queued deliveries. */
const running = new Set<BackchannelOutbox>();

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
export class BackchannelOutbox {
  readonly #timing: DeliveryTiming;
  #timer: NodeJS.Timeout | undefined;
  #work: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** The context the outbox was made in: a request that wakes it lends it none of its own (its client address). */
  readonly #scope = new AsyncResource('BackchannelOutbox');

  constructor(
    private readonly db: Db,
    private readonly provider: () => Provider,
    private readonly log: Logger,
    timing: Partial<DeliveryTiming> = {},
  ) {
    this.#timing = { ...DELIVERY_TIMING, ...timing };
  }

  start(): void {
    this.#stopped = false;
    running.add(this);
    this.#timer = setInterval(() => this.wake(), this.#timing.pollMs);
    this.#timer.unref();
    this.wake();
  }

  /** Stops polling and waits for the posts in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    running.delete(this);
    if (this.#timer) clearInterval(this.#timer);
    await this.#work;
  }

  /** Looks for due deliveries now (or right after the round under way). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#work) {
      this.#again = true;
      return;
    }
    this.#work = this.#scope
      .runInAsyncScope(() => this.#drain())
      .finally(() => {
        this.#work = undefined;
      });
  }

  async #drain(): Promise<void> {
    try {
      do {
        this.#again = false;
        while (!this.#stopped) {
          const claimed = await backchannelDeliveriesQueries.claimDue(
            this.db,
            BATCH,
            this.#timing.leaseMs / 1000,
          );
          await Promise.all(claimed.map((delivery) => this.#attempt(delivery)));
          if (claimed.length < BATCH) break;
        }
      } while (this.#again && !this.#stopped);
    } catch (error) {
      this.log.warn('back-channel logout outbox failed', { error: (error as Error).message });
    }
  }

  async #attempt(delivery: ClaimedDelivery): Promise<void> {
    let error: string;
    try {
      const token = delivery.logout_token ?? (await this.#sign(delivery));
      if (token === undefined) return this.#giveUp(delivery, 'the app no longer exists');
      const response = await fetch(delivery.uri, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }),
        signal: AbortSignal.timeout(this.#timing.timeoutMs),
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
      error = (failure as Error).message;
    }
    const waitMs = this.#timing.backoffMs[Math.min(delivery.attempts, this.#timing.backoffMs.length) - 1]!;
    const retryAt = new Date(Date.now() + waitMs);
    if (retryAt.getTime() - new Date(delivery.created_at).getTime() > this.#timing.giveUpAfterMs) {
      return this.#giveUp(delivery, error);
    }
    await backchannelDeliveriesQueries.markFailed(this.db, delivery.id, error, retryAt);
    backchannelDeliveries.inc({ result: 'retry' });
    this.log.debug('back-channel logout not delivered, will retry', {
      client: delivery.client_id,
      attempts: delivery.attempts,
      error,
    });
  }

  /** Signs a delivery queued without its token (by a sign-out that had no keys at hand) and keeps it for retries. */
  async #sign(delivery: ClaimedDelivery): Promise<string | undefined> {
    const provider = this.provider();
    const client = await provider.Client.find(delivery.client_id);
    if (!client) return undefined;
    const token = await signLogoutToken(provider, client, delivery.sub, delivery.sid);
    await backchannelDeliveriesQueries.setToken(this.db, delivery.id, token);
    return token;
  }

  async #giveUp(delivery: ClaimedDelivery, error: string): Promise<void> {
    await backchannelDeliveriesQueries.markFailed(this.db, delivery.id, error, null);
    await auditQueries.record(this.db, 'system', 'backchannel.give_up', delivery.client_id, {
      uri: delivery.uri,
      attempts: delivery.attempts,
      error,
    });
    backchannelDeliveries.inc({ result: 'given_up' });
    this.log.warn('back-channel logout given up', {
      client: delivery.client_id,
      attempts: delivery.attempts,
      error,
    });
  }
}
