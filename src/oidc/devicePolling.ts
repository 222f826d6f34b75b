import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { DEVICE_CODE_GRANT } from './clients.js';
import { aroundProviderRoute } from './routeSteps.js';
import { storedId } from './storedIds.js';

/**
 * Seconds a device waits between polls of the token endpoint (RFC 8628 §3.2), said in every
 * device authorization response: the standard's default, and what Keycloak and Okta ask.
 */
export const DEVICE_POLL_INTERVAL = 5;

/** How much earlier than the interval a poll may come and still count as on time: network delays vary. */
const POLL_SLACK = 1;

/** Seconds a `slow_down` adds to the device's interval, for that poll and every later one (RFC 8628 §3.5). */
const SLOW_DOWN_INCREASE = 5;

/** Adds the interval to the device authorization response, which the provider leaves it out of. */
async function sayInterval(ctx: Context, next: Next) {
  await next();
  const body = ctx.body as { device_code?: unknown; interval?: unknown } | undefined;
  if (ctx.status === 200 && typeof body?.device_code === 'string') body.interval = DEVICE_POLL_INTERVAL;
}

/**
 * RFC 8628 §3.5: a device that polls for a pending code faster than the interval is told
 * `slow_down`, and must add 5 s to its interval for that poll and every later one: so its
 * interval grows by 5 s with each `slow_down`, and a poll sooner than the grown interval is
 * told `slow_down` again. The last poll and the code's interval are stamped on the device
 * code's row, so every instance on the database counts the same polls. Only the
 * device code grant's handler is wrapped: other token requests pass no step of this, and an
 * approved or refused code is answered at once, however soon it is polled.
 */
export function throttleDevicePolling(provider: Provider, db: Db): void {
  aroundProviderRoute(provider, 'POST', '/device/auth', sayInterval);
  const handlers = providerInternals(provider).grantTypeHandlers;
  const poll = handlers.get(DEVICE_CODE_GRANT);
  if (!poll) return;
  handlers.set(DEVICE_CODE_GRANT, async function pollNoFasterThanTheInterval(ctx: KoaContextWithOIDC) {
    try {
      await poll(ctx);
    } catch (error) {
      if (!(error instanceof errors.AuthorizationPending)) throw error;
      const id = storedId('DeviceCode', String(ctx.oidc.params?.device_code));
      const timing = { interval: DEVICE_POLL_INTERVAL, slack: POLL_SLACK, increase: SLOW_DOWN_INCREASE };
      if (!(await oidcModelsQueries.recordDevicePoll(db, id, timing))) throw new errors.SlowDown();
      throw error;
    }
  });
}
