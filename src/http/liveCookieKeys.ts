import { RowReloader } from '../db/rowReloader.js';
import type { Logger } from '../logger.js';
import { COOKIE_KEYS_SECRET, type CookieKeys } from '../oidc/cookieKeys.js';
import { CookieSigner } from './cookieSigner.js';

/**
 * The cookie signer every cookie of this server goes through, kept in step with the stored
 * cookie keys: a rotation (`sesame keys rotate-cookie-key`) announces its `app_secrets` row
 * (migration 0032), and the signer takes the new list in place, so Koa and the provider sign
 * with the new key and stop verifying revoked ones without a rebuild. A replaced key is
 * dropped when its grace ends, also with no notice.
 */
export class LiveCookieKeys extends RowReloader {
  readonly signer: CookieSigner;

  constructor(
    private readonly loadKeys: () => Promise<CookieKeys>,
    private readonly log: Logger,
    initial: CookieKeys,
  ) {
    super(log, 'cookie keys', initial.nextChangeInMs);
    this.signer = new CookieSigner(initial.keys);
  }

  protected async apply(): Promise<number | undefined> {
    const next = await this.loadKeys();
    const before = this.signer.keys;
    if (next.keys.length !== before.length || next.keys.some((key, i) => key !== before[i])) {
      this.signer.replace(next.keys);
      this.log.info('cookie keys changed', { keys: next.keys.length });
    }
    return next.nextChangeInMs;
  }

  /** An `app_secrets` row changed: the cookie keys are one of them. */
  override invalidate(name: string): void {
    if (name === COOKIE_KEYS_SECRET) super.invalidate();
  }
}
