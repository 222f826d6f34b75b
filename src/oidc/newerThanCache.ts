import providerRequests from 'oidc-provider/lib/helpers/als.js';

/**
 * Codes and tokens that another instance may have issued together with a change of the
 * session and grant they are bound to: the return to the authorization stores the code, the
 * session that now names the app's grant and the grant, extended, in one statement; a device's
 * approval, its code with them; the token endpoint, an access token after reading both. Behind
 * a load balancer the app's request with the code or token reaches this instance a moment
 * later, often before the notice of that change has (modelCache.ts), so what this instance
 * holds of the session and grant may be older than the code, and so may its account (a name
 * changed, an email verified, a group joined, on the way to the code). Read from the
 * database here for the first time, such a code or token makes the rest of its request read
 * each session, grant and account (with its groups and the client's allowed groups) from the
 * database once: the code is then redeemed against what it was issued with, neither refused
 * ("not found": its session did not name the grant yet, or its account was in no group the
 * app admits) nor answered with tokens for less than was granted or with claims from
 * before. One this instance issued, or has read before, is found in memory, and what it
 * holds of those is at least as new.
 */
export const ISSUED_WITH_SESSION_AND_GRANT = new Set([
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'AccessToken',
  // Issued with the code's tokens, after the grant was extended on the way to the code: a
  // refresh on this instance must not give tokens for the grant as it was (without
  // offline_access, say). Refresh tokens are not kept in memory, so every refresh reads its
  // grant and account from the database; a refresh is rare beside the calls its access token makes.
  'RefreshToken',
]);

/**
 * Whether `found`, a `model` instance just read from the database, may be newer than what
 * this instance holds of its session, grant and account: a code or token of
 * {@link ISSUED_WITH_SESSION_AND_GRANT}, or an interaction with its result. The consent page
 * stores the grant it extends and the interaction's result; the sign-up page, the account
 * and the sign-in; and the browser's return to the authorization (`GET /auth/:uid`) may
 * reach this instance before their notices. Read from memory instead, the grant as it was
 * asks for the consent just given again, and the account as it was may be no account. On
 * the instance that stored the result the return reads it from memory (freshSignIns.ts).
 */
export function isNewerThanCache(model: string, found: { result?: unknown } | undefined): boolean {
  if (!found) return false;
  return ISSUED_WITH_SESSION_AND_GRANT.has(model) || (model === 'Interaction' && found.result !== undefined);
}

/** Per request (the provider's context): the sessions, grants and accounts it has read from the database since. */
const readFresh = new WeakMap<object, Set<string>>();

/** A code, token or finished interaction ({@link isNewerThanCache}) was read from the database in this request. */
export function sawNewerThanCache(): void {
  const request = providerRequests.getStore();
  if (request && typeof request === 'object' && !readFresh.has(request)) readFresh.set(request, new Set());
}

/**
 * Whether the session, grant or account under `key` (`Session:<uid>`, `Grant:<stored id>`,
 * `User:<id>`) must be read from the database, not from memory:
 * the first lookup of it after {@link sawNewerThanCache} in the same request (the answer is
 * kept, so later lookups may use memory).
 */
export function mustReadFresh(key: string): boolean {
  const request = providerRequests.getStore();
  const read = request && typeof request === 'object' ? readFresh.get(request) : undefined;
  if (!read || read.has(key)) return false;
  read.add(key);
  return true;
}
