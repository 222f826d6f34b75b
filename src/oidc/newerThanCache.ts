import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { Db } from '../db/connect.js';
import { LISTEN_TIMING } from '../db/notifications.js';
import { usersQueries } from '../db/queries/users.js';
import type { RowCache } from '../db/rowCache.js';
import type { User } from '../db/schema.js';

/**
 * Codes and tokens that another instance may have issued together with a change of the
 * session and grant they are bound to: the return to the authorization stores the code, the
 * session that now names the app's grant and the grant, extended, in one statement; a device's
 * approval, its code with them; the token endpoint, access and refresh tokens after reading
 * both. Behind a load balancer the app's request with the code or token reaches this instance
 * a moment later, often before the notice of that change has (modelCache.ts), so what this
 * instance holds of the session and grant may be older than the code, and so may its account
 * (a name changed, an email verified, a group joined, on the way to the code). Not held in
 * memory here, such a code or token makes the rest of its request read each session, grant and
 * account (with its groups and the client's allowed groups) from the database once: the code
 * is then redeemed against what it was issued with, neither refused ("not found": its session
 * did not name the grant yet, or its account was in no group the app admits) nor answered
 * with tokens for less than was granted or with claims from before. One this instance issued,
 * or has read before, is found in memory, and what it holds of those is at least as new.
 *
 * So does an interaction with its result: the consent page stores the grant it extends and
 * the interaction's result; the sign-up page, the account and the sign-in; and the browser's
 * return to the authorization (`GET /auth/:uid`) may reach this instance before their
 * notices. Read from memory instead, the grant as it was asks again for the consent just
 * given, and the account as it was may be no account. On the instance that stored the result
 * the return reads it from memory (freshSignIns.ts) and nothing anew.
 */
const ISSUED_WITH_SESSION_AND_GRANT = new Set([
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'AccessToken',
  'RefreshToken',
]);

/**
 * Those whose `iat` says when they were issued with that change. An older one was issued
 * before anything a notice would still be on its way for: a notice arrives within
 * {@link NOTICE_BOUND_SECONDS}, or the listener's next ping finds it stalled and nothing is
 * served from memory. So an access token a busy API introspects again, once it has left
 * memory, costs one read, not four. A device code's `iat` is when the device asked, not
 * when the person approved it; such codes are polled, and always read anew.
 */
const DATED_BY_IAT = new Set(['AccessToken', 'RefreshToken']);

/** 15 s between the listener's pings and 5 s for one to arrive (docs/operations.md), and the second `iat` drops. */
const NOTICE_BOUND_SECONDS = (LISTEN_TIMING.pingIntervalMs + LISTEN_TIMING.pingTimeoutMs) / 1000 + 1;

/** Per request (the provider's context): the sessions, grants and accounts it has read from the database since. */
const readFresh = new WeakMap<object, Set<string>>();

/**
 * `payload`, a `model` instance this instance did not hold in memory (read from the database,
 * or a JWT access token, which is stored nowhere), came with this request: if it may be newer
 * than the session, grant and account held here, the rest of the request reads them anew.
 */
export function broughtIn(model: string, payload: { iat?: unknown; result?: unknown } | undefined): void {
  if (!payload) return;
  if (!ISSUED_WITH_SESSION_AND_GRANT.has(model) && !(model === 'Interaction' && payload.result !== undefined))
    return;
  if (DATED_BY_IAT.has(model)) {
    const { iat } = payload;
    if (typeof iat !== 'number' || iat + NOTICE_BOUND_SECONDS < Date.now() / 1000) return;
  }
  const request = providerRequests.getStore();
  if (request && typeof request === 'object' && !readFresh.has(request)) readFresh.set(request, new Set());
}

/**
 * Whether the session, grant, account or group rows under `key` (`Session:<uid>`, `Grant:<stored
 * id>`, `User:<id>`, `Groups:<user id>`, `ClientGroups:<client id>`) must be read from the database, not from memory:
 * the first lookup of it after {@link broughtIn} in the same request (the answer is
 * kept, so later lookups may use memory).
 */
export function mustReadFresh(key: string): boolean {
  const request = providerRequests.getStore();
  const read = request && typeof request === 'object' ? readFresh.get(request) : undefined;
  if (!read || read.has(key)) return false;
  read.add(key);
  return true;
}

/** The account `id` from `users`, or from the database once in a request that must read it anew (above). */
export function cachedUser(users: RowCache<User>, db: Db, id: string): Promise<User | undefined> {
  return users.find(id, () => usersQueries.findById(db, id), mustReadFresh(`User:${id}`));
}
