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
  // How long a signed-in session lasts unused: each sign-in to an app through it starts this again.
  Session: 14 * 24 * 60 * 60,
  // What a person allowed an app: a year from their last sign-in to it (each code issued under
  // it renews it, grantRenewal.ts); every code and token issued under it ends with it.
  Grant: 365 * 24 * 60 * 60,
  RefreshToken: 30 * 24 * 60 * 60,
} as const;

/**
 * How long after its passkey sign-in a session may sign anyone in without asking for the
 * passkey again, however often it is used. NIST SP 800-63B §4.1.3 (AAL1): reauthenticate
 * at least once per 30 days of an extended session, regardless of activity.
 */
export const SIGN_IN_MAX_AGE = 30 * 24 * 60 * 60;

const now = () => Math.floor(Date.now() / 1000);

/** Whether a session's passkey sign-in (its `loginTs`) is too old to sign anyone in without a new one. */
export function signInTooOld(loginTs: number | undefined): boolean {
  return typeof loginTs !== 'number' || now() - loginTs >= SIGN_IN_MAX_AGE;
}

/**
 * How long a stored provider session lives: 14 days from its last use, never more than an
 * interaction's life past {@link SIGN_IN_MAX_AGE} after its sign-in. A session whose sign-in
 * is that old signs nobody in, but is kept that long for the sign-ins it is part of: one that
 * started just before the limit (on its consent page, say) goes on to the passkey prompt, where
 * a vanished session ended it as "expired", and the passkey sign-in the login page asks for
 * replaces it. A session of nobody (a visit to the logout or the device
 * page, which keeps only its form's anti-forgery secret) lives as long as an interaction:
 * anyone can make one per request, and at 14 days each one stayed in the table long after
 * the visit.
 */
export function sessionTtl(
  _ctx: unknown,
  session: { accountId?: string | undefined; loginTs?: number | undefined },
): number {
  if (!session.accountId || signInTooOld(session.loginTs)) return TTL.Interaction;
  return Math.min(TTL.Session, session.loginTs! + SIGN_IN_MAX_AGE + TTL.Interaction - now());
}

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
  // A browser app: public, web, with redirect URIs (a device-only app has none: it is no browser app).
  if (
    rotated &&
    client.applicationType === 'web' &&
    client.clientAuthMethod === 'none' &&
    (client.redirectUris?.length ?? 0) > 0 &&
    !token.isSenderConstrained()
  ) {
    // The replaced token was unexpired when it was checked; a second may have passed since.
    return Math.max(1, rotated.remainingTTL);
  }
  return TTL.RefreshToken;
}

/**
 * Seconds an expired instance of these models is kept, where the answer is "expired" rather
 * than "not found": a device polling its code is told `expired_token` (RFC 8628 §3.5), and
 * the person typing it "That code has expired"; an expired sign-in's page links back to the
 * app it was for. The cleanup keeps the rows this long, then deletes them as any other.
 * Only device codes are found by the adapter once expired (every lookup of one in the
 * provider checks `isExpired` first, see adapter.ts); an expired interaction is read only to
 * name its app (src/http/routes/interaction.ts).
 */
export const EXPIRED_KEPT_SECONDS = {
  // As long again as the code lived: a person who typed it late still learns it expired.
  DeviceCode: TTL.DeviceCode,
  // As long again as the sign-in lived: a page left open for an hour still names its app.
  Interaction: TTL.Interaction,
} as const;
