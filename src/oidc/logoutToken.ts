import { randomUUID } from 'node:crypto';
import type Provider from 'oidc-provider';

/** The `events` claim that makes a JWT a logout token (Back-Channel Logout 1.0 §2.4). */
const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * Signs a logout token for `client` exactly as oidc-provider 9 does in
 * `Client#backchannelLogout` (lib/models/client.js): `typ: logout+jwt`, iss, aud, iat, jti,
 * the logout event, sub (pairwise where the client is), and sid when known; never a nonce.
 * Signed with the provider's keys and the client's ID token algorithm.
 */
export async function signLogoutToken(
  provider: Provider,
  client: InstanceType<Provider['Client']>,
  sub: string,
  sid: string | null,
): Promise<string> {
  const token = new provider.IdToken({ sub }, { client, ctx: undefined });
  (token as unknown as { mask: Record<string, null> }).mask = { sub: null };
  token.set('events', { [BACKCHANNEL_LOGOUT_EVENT]: {} });
  token.set('jti', randomUUID());
  if (sid) token.set('sid', sid);
  return token.issue({ use: 'logout' });
}
