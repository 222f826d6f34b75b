import type { Db } from '../db/connect.js';
import { backchannelDeliveriesQueries } from '../db/queries/backchannelDeliveries.js';

/**
 * Queues a logout token (Back-Channel Logout 1.0) for every app with a
 * backchannel_logout_uri that the account's browser sessions signed in to, one per session
 * (its `sid`); with `grants`, also for every app it granted access with no such session,
 * by `sub` alone; with `clientId`, for that app only. Call it in the transaction that ends the sessions, before their rows go;
 * once it committed, wake the outbox (wakeBackchannelOutboxes) so they leave at once.
 * @returns how many deliveries were queued.
 */
export async function queueAccountLogouts(
  trx: Db,
  accountId: string,
  what: { grants: boolean; clientId?: string },
): Promise<number> {
  const targets = await backchannelDeliveriesQueries.logoutTargetsOfAccount(
    trx,
    accountId,
    what.grants,
    what.clientId ?? null,
  );
  await backchannelDeliveriesQueries.enqueue(
    trx,
    targets.map((t) => ({ clientId: t.client_id, uri: t.uri, sub: accountId, sid: t.sid })),
  );
  return targets.length;
}

/**
 * Queues a logout token naming the account by `sub` alone, no `sid`, for each of the apps
 * that has a backchannel_logout_uri: the app ends every sign-in of the person it holds
 * (Back-Channel Logout 1.0 §2.4, §2.6), so call it only when every one of them ends: a
 * device's (RFC 8628), whose tokens name no session, that was the app's last grant, or all of
 * the person's. Call it in the transaction that ends them; then wake the outbox.
 * @returns how many deliveries were queued.
 */
export async function queueSubjectLogouts(
  trx: Db,
  accountId: string,
  clientIds: readonly string[],
): Promise<number> {
  const targets = await backchannelDeliveriesQueries.logoutUrisOf(trx, clientIds);
  await backchannelDeliveriesQueries.enqueue(
    trx,
    targets.map((t) => ({ clientId: t.client_id, uri: t.uri, sub: accountId, sid: null })),
  );
  return targets.length;
}
