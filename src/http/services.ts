import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { BrandStore } from '../branding/brand.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { HitCounter } from '../db/hitCounter.js';
import type { Logger } from '../logger.js';
import type { RowCaches } from '../oidc/rowCaches.js';
import type { Csrf } from './middleware/csrf.js';

/** What route modules are built from: configuration, storage, the provider, and shared middleware. */
export interface Services {
  config: Config;
  db: Db;
  log: Logger;
  provider: Provider;
  csrf: Csrf;
  /** Admin routes invalidate a row they changed, so this instance never waits for the notice. */
  caches: RowCaches;
  /** The brand pages show (config over which /admin/branding's values apply). */
  brand: BrandStore;
  /** The per-IP limit on passkey ceremonies and one-time links (RATE_LIMIT_PER_MINUTE), one count for all. */
  rateLimit: Middleware;
  /** Where limits count their hits (Postgres, shared by instances; memory on the embedded database). */
  hits: HitCounter;
}
