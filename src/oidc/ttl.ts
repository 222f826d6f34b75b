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
