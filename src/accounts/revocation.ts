import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { stepUpsQueries } from '../db/queries/stepUps.js';
import { usersQueries } from '../db/queries/users.js';
import { queueAccountLogouts, queueSubjectLogouts } from './backchannelLogout.js';

/**
 * Revokes, for good, everything of the account that exists now: its browser sign-ins
 * (sessions, sign-ins in progress, unredeemed codes), and with `tokens` also the grants and
 * tokens apps hold. Deleting their rows is not enough on its own — a request that loaded a
 * session before would save it again — so the instant is kept on the account and every
 * lookup checks it (src/oidc/revocation.ts). Call it in the transaction that deletes them.
 * @returns the instant; pass it to {@link untilAfterRevocation} once the transaction committed.
 */
export async function revokeAccountSignIns(db: Db, userId: string, what: { tokens: boolean }): Promise<Date> {
  const at = new Date();
  await usersQueries.revokeBefore(db, userId, at, what);
  return at;
}

/**
 * Deletes the grants and every code, access token and refresh token issued under them. The
 * grants are locked first, by id, as every change of grants and the rows that name them takes
 * them (oidcModels.ts, lockGrantsWhere): the tokens first, this deadlocked with a cloned
 * passkey's block, which locks the account's grants and then deletes their tokens.
 */
export async function revokeGrants(trx: Db, grantIds: readonly string[]): Promise<void> {
  await oidcModelsQueries.lockGrants(trx, grantIds);
  for (const grantId of grantIds) {
    await oidcModelsQueries.revokeByGrantId(trx, grantId);
    await oidcModelsQueries.destroy(trx, 'Grant', grantId);
  }
}

/** What {@link endEverySignInOf} ended, for the caller's audit entry. */
export interface EndedSignIns {
  /** The revocation's instant: once committed, pass it to {@link untilAfterRevocation} or {@link maySignInAfterRevocation}. */
  at: Date;
  /** The devices signed out (RFC 8628), one grant each. */
  devices: number;
  /** The rows deleted: the browser sessions, and with `tokens` everything of the account's in the OIDC storage. */
  removed: number;
}

/**
 * Ends every sign-in of the account, for good (see {@link revokeAccountSignIns}): its
 * browser sessions, sign-ins under way and codes, every passkey confirmation (step-up), and
 * the sign-ins of devices the person approved a code for (RFC 8628): their grants go, with
 * their tokens, those approved before device grants were marked as such too (deviceGrantsOf).
 * Without `tokens`, apps keep what they were given in browsers; with it, every grant and
 * token of the account goes. Apps with a backchannel_logout_uri are told of each browser
 * session by its `sid`, and by `sub` alone an app with a device (whose tokens name no
 * session) or, with `tokens`, one it granted access with no session. The one place
 * "sign out everywhere", a passkey's deletion, a recovery and a cloned passkey's block end
 * sign-ins, so they cannot drift apart. Call it in their transaction; once committed, wake
 * the back-channel outbox.
 */
export async function endEverySignInOf(
  trx: Db,
  userId: string,
  what: { tokens: boolean },
): Promise<EndedSignIns> {
  const at = await revokeAccountSignIns(trx, userId, what);
  // Before the rows go: the apps to tell are found by the sessions and grants.
  await queueAccountLogouts(trx, userId, { grants: what.tokens });
  const devices = await oidcModelsQueries.deviceGrantsOf(trx, userId);
  let removed: number;
  if (what.tokens) {
    // Every grant, devices' with the rest, and every session, code and token.
    removed = await oidcModelsQueries.destroyByAccountId(trx, userId);
  } else {
    await queueSubjectLogouts(trx, userId, [...new Set(devices.map((grant) => grant.clientId))]);
    await revokeGrants(
      trx,
      devices.map(({ id }) => id),
    );
    removed = await oidcModelsQueries.destroySessionsOfAccount(trx, userId);
  }
  await stepUpsQueries.deleteForUser(trx, userId);
  return { at, devices: devices.length, removed };
}

/**
 * Waits (at most a second) until the clock has left the second of the revocation. The
 * provider keeps sign-in times in whole seconds and a revocation covers its whole second,
 * so a sign-in the person makes right after (a link signs them in at once) must fall in a
 * later one.
 */
export async function untilAfterRevocation(at: Date): Promise<void> {
  const next = (Math.floor(at.getTime() / 1000) + 1) * 1000;
  const wait = next - Date.now();
  if (wait > 0) await sleep(wait + 1);
}

/**
 * For the browser that made a revocation and is signed in again (it proved a passkey: a
 * passkey's deletion, a one-time link): waits {@link untilAfterRevocation}, then reads the
 * account again. The browser may be signed in only while that revocation is still the
 * account's last and the account is not disabled: another one committed during the wait (a
 * recovery, a sign-out everywhere, a disable) fell in the same second, and a sign-in started
 * now would fall after it and outlive it.
 */
export async function maySignInAfterRevocation(db: Db, userId: string, at: Date): Promise<boolean> {
  await untilAfterRevocation(at);
  const account = await usersQueries.findById(db, userId);
  return !!account && !account.disabled_at && account.sessions_ended_at?.getTime() === at.getTime();
}
