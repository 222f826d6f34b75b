import type { Client, KoaContextWithOIDC, RefreshToken } from 'oidc-provider';

/**
 * Lifetimes, in seconds, of everything the provider issues. One place, so the signing-key
 * grace period and the cleanup follow them.
 */
export const TTL = {
  AccessToken: 60 * 60,
  ClientCredentials: 60 * 60,
  // An authorization code is redeemed within seconds by a working client (RFC 6749 §4.1.2 advises at most 10 minutes).
  AuthorizationCode: 60,
  IdToken: 60 * 60,
  // Interactions are where a person picks a passkey; half an hour covers a slow sign-up.
  Interaction: 30 * 60,
  // A device's code (RFC 8628): time to walk to a computer or phone and sign in.
  DeviceCode: 10 * 60,
  Session: 14 * 24 * 60 * 60,
  Grant: 365 * 24 * 60 * 60,
  RefreshToken: 30 * 24 * 60 * 60,
} as const;

/**
 * A refresh token's life. A browser app's (a public web client, its tokens not bound to a
 * key) is replaced on every use, and the replacement expires when the token it replaces would
 * have: rotation must not extend a refresh token's life (OAuth 2.0 for Browser-Based
 * Applications, draft-ietf-oauth-browser-based-apps, on refresh tokens), so the app has to
 * send the person back to sign in 30 days after its code was redeemed, however often it
 * refreshed. Other clients (confidential ones, native apps) get the full 30 days at each
 * issue, as oidc-provider's default gives them.
 */
export function refreshTokenTtl(
  ctx: KoaContextWithOIDC | undefined,
  token: RefreshToken,
  client: Client,
): number {
  const rotated = ctx?.oidc?.entities.RotatedRefreshToken;
  if (
    rotated &&
    client.applicationType === 'web' &&
    client.clientAuthMethod === 'none' &&
    !token.isSenderConstrained()
  ) {
    // The replaced token was unexpired when it was checked; a second may have passed since.
    return Math.max(1, rotated.remainingTTL);
  }
  return TTL.RefreshToken;
}
