import type { Config } from '../config.js';

/**
 * Sesame's passkey policy, in one place.
 * - Challenges live 5 minutes: long enough for a person to find their phone, short
 *   enough that a leaked one is useless soon (WebAuthn L3 §13.4.3 recommends per-ceremony
 *   random challenges with a bounded lifetime).
 * - User verification is required on every ceremony: a passkey then proves possession
 *   and the person's PIN or biometric, so it is the whole sign-in, not a second factor.
 * - Resident (discoverable) keys are required, for usernameless sign-in.
 */
export const PASSKEY_POLICY = {
  challengeTtlSeconds: 5 * 60,
  timeoutMs: 5 * 60 * 1000,
  userVerification: 'required',
  residentKey: 'required',
  attestation: 'none',
  // COSE algorithm ids: EdDSA (-8), ES256 (-7), RS256 (-257) — ES256 and EdDSA first.
  supportedAlgorithmIds: [-8, -7, -257],
} as const;

/**
 * How one ceremony asks the authenticator (WebAuthn L3 §5.4.4, §5.4.6): Sesame's own
 * ceremonies use {@link PASSKEY_POLICY}; a passkey API tenant may set its own.
 */
export interface CeremonyPolicy {
  timeoutMs: number;
  userVerification: 'required' | 'preferred' | 'discouraged';
  residentKey: 'required' | 'preferred' | 'discouraged';
  attestation: 'none' | 'indirect' | 'direct' | 'enterprise';
  /** Absent: any authenticator may answer. */
  authenticatorAttachment?: 'platform' | 'cross-platform' | undefined;
}

/** Where ceremonies must happen: Sesame's own origin and RP ID, derived from ISSUER. */
export interface RelyingParty {
  id: string;
  name: string;
  origins: string[];
}

export function relyingPartyFor(config: Pick<Config, 'rpId' | 'rpName' | 'origin'>): RelyingParty {
  return { id: config.rpId, name: config.rpName, origins: [config.origin] };
}
