import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../db/connect.js';
import { usersQueries } from '../db/queries/users.js';

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
