import type { KoaContextWithOIDC } from 'oidc-provider';
import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { GrantRenewal } from '../db/queries/oidcModels.js';
import { storedId } from './storedIds.js';
import { TTL } from './ttl.js';

/**
 * A grant is renewed at most this often: a sign-in to the app within a day of the last
 * renewal leaves it as it is. Each renewal changes the grant's row, whose change every
 * instance is told of (migration 0023) and must then read anew; an app that signs its person
 * in many times a day would do that at each sign-in. So a consent lapses between 364 and 365
 * days after the person's last sign-in to the app.
 */
export const GRANT_RENEWED_AT_MOST_EVERY = 24 * 60 * 60;

/**
 * The renewal a code being issued brings to its grant (the adapter writes both in one
 * statement), if any: the grant's end moves to a full {@link TTL.Grant} from now.
 *
 * A grant is what the person allowed the app, and every code and token issued under it ends
 * with it: the provider keeps a stored grant's end at each save, so a grant ran a year from
 * its consent however often the app was used since, and a refresh token issued in its last
 * 30 days ended with it, before its own 30 days, and the person was asked to consent again.
 * Now a consent that is used is kept: it lapses a year after the person last signed in to
 * the app.
 *
 * Only the issue of a code renews: the authorization request has passed the whole policy
 * (signed in, the sign-in recent enough, in the app's groups, consent given), and the code
 * goes to the app. A request that is refused, or that stops at the login or consent page,
 * issues none and renews nothing (an earlier renewal on loading the grant, before the policy
 * ran, kept the consent of refused requests alive). A device's sign-in (RFC 8628) has a grant
 * of its own, made at its approval (deviceFlow.ts): it needs none. A refresh renews nothing
 * either: the app using its refresh token is not the person signing in, and a consent must
 * lapse a year after they last did, however long the app keeps refreshing.
 */
export function grantRenewalFor(code: { grantId?: unknown }): GrantRenewal | undefined {
  const ctx = providerRequests.getStore() as KoaContextWithOIDC | undefined;
  const grant = ctx?.oidc?.entities?.Grant;
  if (!grant?.jti || grant.jti !== code.grantId || typeof grant.exp !== 'number') return undefined;
  const exp = Math.floor(Date.now() / 1000) + TTL.Grant;
  if (grant.exp > exp - GRANT_RENEWED_AT_MOST_EVERY) return undefined;
  // A later save of the grant in this request (none in the provider's code flow) keeps it.
  grant.exp = exp;
  return { id: storedId('Grant', grant.jti), exp };
}
