import type http from 'node:http';
import type Provider from 'oidc-provider';
import type { RowChangeListener } from '../db/rowCache.js';
import type { Logger } from '../logger.js';
import type { SigningJwks } from './keys.js';

/** setTimeout's longest delay (about 24.8 days); a later change is re-checked then. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Fire a little after a key's activation, so the database clock has passed it too. */
const TIMER_MARGIN_MS = 250;
/**
 * While row notices may be lost (behind a transaction pooler without DATABASE_DIRECT_URL, or
 * while the listener reconnects), how often the keys are read again: a rotation, or a key
 * revoked as exposed, reaches this instance within this long. A read that failed is tried
 * again as often.
 */
export const KEYS_POLL_WHILE_DARK_MS = 2_000;

type JwksWithKids = SigningJwks['jwks'];

function keyOrder(jwks: JwksWithKids): string {
  return jwks.keys.map((key) => key.kid).join(',');
}

/**
 * The provider, rebuilt whenever the signing keys change. oidc-provider fixes its JWKS when
 * it is constructed, so a new key (`sesame keys rotate`) would otherwise be published, and
 * start signing, only after a restart. This holds the current instance, reloads the keys when
 * a `signing_keys` row changes (it listens like a row cache) and when a pending key comes due,
 * and swaps in a new instance if what is published or which key signs has changed. Requests
 * in flight finish on the instance they started on; everything an instance keeps lives in
 * the database, so the next request carries on where it left off.
 */
export class LiveProvider implements RowChangeListener {
  #provider: Provider;
  #callback: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
  #order: string;
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #reloads = 0;
  #poll: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The last reload failed: the next is {@link KEYS_POLL_WHILE_DARK_MS} away, and its success is logged. */
  #failing = false;

  constructor(
    private readonly build: (jwks: JwksWithKids) => Provider,
    private readonly loadKeys: () => Promise<SigningJwks>,
    private readonly log: Logger,
    initial: SigningJwks,
  ) {
    this.#provider = build(initial.jwks);
    this.#callback = this.#provider.callback();
    this.#order = keyOrder(initial.jwks);
    this.#schedule(initial.nextChangeInMs);
    // Like the row caches, it trusts no notice until the listener is live (goLive).
    this.goDark();
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** Serves a request with the current instance. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> | void {
    return this.#callback(req, res);
  }

  /** Reloads the keys; reloads queue behind each other so the newest state always wins. */
  reload(): Promise<void> {
    this.#reloads++;
    this.#reloading = this.#reloading.then(() => this.#reloadNow()).finally(() => this.#reloads--);
    return this.#reloading;
  }

  async #reloadNow(): Promise<void> {
    if (this.#stopped) return;
    try {
      const next = await this.loadKeys();
      const order = keyOrder(next.jwks);
      if (order !== this.#order) {
        const provider = this.build(next.jwks);
        this.#provider = provider;
        this.#callback = provider.callback();
        this.#order = order;
        this.log.info('signing keys changed', { kids: next.jwks.keys.map((key) => key.kid) });
      }
      if (this.#failing) this.log.info('signing keys read again');
      this.#failing = false;
      this.#schedule(next.nextChangeInMs);
    } catch (error) {
      // Keep serving with the keys we have, and try again soon: the notice that asked for this
      // reload (a key revoked as exposed, say) is not sent again. It was a minute, during which
      // a revoked key went on signing after a pooler restart of a few seconds.
      if (!this.#failing)
        this.log.warn('cannot reload signing keys; trying again every 2 s', {
          error: (error as Error).message,
        });
      this.#failing = true;
      this.#schedule(KEYS_POLL_WHILE_DARK_MS - TIMER_MARGIN_MS);
    }
  }

  #schedule(inMs: number | undefined): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (inMs === undefined || this.#stopped) return;
    this.#timer = setTimeout(() => void this.reload(), Math.min(inMs + TIMER_MARGIN_MS, MAX_TIMER_MS));
    this.#timer.unref();
  }

  /** A `signing_keys` row changed. */
  invalidate(): void {
    void this.reload();
  }

  /** Notices resume: one may have been missed while they were down. */
  goLive(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    void this.reload();
  }

  /** Notices may be lost: the keys are read every {@link KEYS_POLL_WHILE_DARK_MS} until goLive. */
  goDark(): void {
    if (this.#poll || this.#stopped) return;
    this.#poll = setInterval(() => {
      if (this.#reloads === 0) void this.reload();
    }, KEYS_POLL_WHILE_DARK_MS);
    this.#poll.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
  }
}
