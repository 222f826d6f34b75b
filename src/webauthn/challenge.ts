import { isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Db } from '../db/connect.js';
import { challengesQueries, type StoredChallenge } from '../db/queries/challenges.js';
import { challengeInvalid, verificationFailed } from './errors.js';
import { PASSKEY_POLICY } from './policy.js';

/** Stores a freshly issued challenge with what it is for and what it is bound to. */
export async function storeChallenge(db: Db, value: StoredChallenge): Promise<void> {
  await challengesQueries.insert(db, value, challengeExpiresAt());
}

/** When a challenge issued now expires. */
export function challengeExpiresAt(): Date {
  return new Date(Date.now() + PASSKEY_POLICY.challengeTtlSeconds * 1000);
}

/** Reads the challenge the client signed over from clientDataJSON (WebAuthn L3 §5.8.1), without trusting anything else in it yet. */
export function challengeFromClientData(clientDataJSON: string): string {
  const challenge = challengeNamedIn(clientDataJSON);
  if (challenge === undefined) throw challengeInvalid();
  return challenge;
}

/** {@link challengeFromClientData}, or undefined when the client data is unreadable or names none. */
export function challengeNamedIn(clientDataJSON: string): string | undefined {
  const challenge = clientDataOf(clientDataJSON)?.challenge;
  return typeof challenge === 'string' && challenge.length > 0 ? challenge : undefined;
}

/** clientDataJSON's members (WebAuthn L3 §5.8.1), nothing in them trusted yet; undefined when it is no JSON object. */
function clientDataOf(clientDataJSON: string): Record<string, unknown> | undefined {
  try {
    const clientData: unknown = JSON.parse(isoBase64URL.toUTF8String(clientDataJSON));
    return typeof clientData === 'object' && clientData !== null
      ? (clientData as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sesame's pages are never framed (frame-ancestors 'none'), so its own ceremonies expect no
 * cross-origin frame, and neither do a passkey API tenant's (no setting says otherwise): client data with `crossOrigin` other than false, or with a `topOrigin`
 * (WebAuthn L3 §5.8.1; §7.1 and §7.2, the steps on topOrigin), came from no browser showing
 * them and is refused. @simplewebauthn/server checks neither at registration, and at an
 * assertion only a topOrigin. Unreadable client data is left to the verifier, which refuses it.
 */
export function refuseFramedClientData(clientDataJSON: string): void {
  const clientData = clientDataOf(clientDataJSON);
  if (!clientData) return;
  if (
    (clientData.crossOrigin !== undefined && clientData.crossOrigin !== false) ||
    clientData.topOrigin !== undefined
  ) {
    throw verificationFailed();
  }
}

/**
 * Takes the challenge the response answers out of storage: once only, before expiry, and
 * only for the same purpose and binding (the interaction or session that asked for it).
 */
export async function consumeChallenge(
  db: Db,
  clientDataJSON: string,
  purpose: string,
  binding: string,
): Promise<StoredChallenge> {
  const stored = await challengesQueries.consume(
    db,
    challengeFromClientData(clientDataJSON),
    purpose,
    binding,
  );
  if (!stored) throw challengeInvalid();
  return stored;
}
