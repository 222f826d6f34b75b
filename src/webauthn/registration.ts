import {
  type AuthenticatorTransport,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Db } from '../db/connect.js';
import type { StoredChallenge } from '../db/queries/challenges.js';
import { credentialsQueries, type StoredCredential } from '../db/queries/credentials.js';
import { authenticatorName } from './authenticatorNames.js';
import { consumeChallenge, refuseFramedClientData, storeChallenge } from './challenge.js';
import { verificationFailed } from './errors.js';
import { keyFitsItsAlgorithm } from './keyFit.js';
import { type CeremonyPolicy, PASSKEY_POLICY, type RelyingParty } from './policy.js';

/** The longest credential id WebAuthn allows (L3 §5.8.3, §7.1). */
const MAX_CREDENTIAL_ID_BYTES = 1023;

/** Who the new passkey is for. `userId` is the user handle and the OIDC `sub`, made before the account exists. */
export interface RegistrationSubject {
  userId: string;
  email: string;
  displayName: string;
}

/** Converts a uuid to the 16 bytes used as the WebAuthn user handle. */
export function userHandleFor(userId: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(Buffer.from(userId.replace(/-/g, ''), 'hex'));
}

/** The user entity an authenticator stores with a new passkey (WebAuthn L3 §5.4.3); `handle` is at most 64 bytes. */
export interface PasskeyUserEntity {
  handle: Uint8Array<ArrayBuffer>;
  name: string;
  displayName: string;
}

/**
 * Creation options under `policy` ({@link PASSKEY_POLICY} unless given; WebAuthn L3 §5.4),
 * for any storage of users and credentials: `exclude` lists the passkeys the user already
 * has, so the same authenticator is not registered twice.
 */
export async function passkeyCreationOptions(
  rp: RelyingParty,
  user: PasskeyUserEntity,
  exclude: Pick<StoredCredential, 'id' | 'transports'>[],
  policy: CeremonyPolicy = PASSKEY_POLICY,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const options = await generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userID: user.handle,
    userName: user.name,
    userDisplayName: user.displayName,
    timeout: policy.timeoutMs,
    // SimpleWebAuthn does not offer "indirect" (WebAuthn L3 §5.4.7 still does): set below.
    attestationType: policy.attestation === 'indirect' ? 'none' : policy.attestation,
    // No transports means "any way": the member is left out rather than sent empty.
    excludeCredentials: exclude.map((c) => ({
      id: c.id,
      ...(c.transports.length > 0 && { transports: c.transports as AuthenticatorTransport[] }),
    })),
    authenticatorSelection: {
      ...(policy.authenticatorAttachment && { authenticatorAttachment: policy.authenticatorAttachment }),
      residentKey: policy.residentKey,
      userVerification: policy.userVerification,
    },
    supportedAlgorithmIDs: [...PASSKEY_POLICY.supportedAlgorithmIds],
  });
  return { ...options, attestation: policy.attestation };
}

/**
 * Creation options for a new passkey (WebAuthn L3 §5.4), and the challenge stored with the
 * data the ceremony needs at its end. Credentials the person already has are excluded, so
 * the same authenticator is not registered twice.
 */
export async function startPasskeyRegistration(
  db: Db,
  rp: RelyingParty,
  subject: RegistrationSubject,
  binding: { purpose: string; binding: string; data?: Record<string, unknown> },
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await credentialsQueries.listForUser(db, subject.userId);
  const options = await passkeyCreationOptions(
    rp,
    { handle: userHandleFor(subject.userId), name: subject.email, displayName: subject.displayName },
    existing,
  );
  await storeChallenge(db, {
    challenge: options.challenge,
    purpose: binding.purpose,
    binding: binding.binding,
    userId: subject.userId,
    data: { ...binding.data, email: subject.email },
  });
  return options;
}

/** A verified new passkey, ready to store, and the challenge record that asked for it. */
export interface VerifiedRegistration {
  challenge: StoredChallenge;
  /**
   * `name` is what the authenticator's AAGUID calls it, when it calls it anything: the
   * caller names the rest (Sesame's pages in the person's language, the passkey API as Hanko).
   */
  credential: Omit<StoredCredential, 'createdAt' | 'lastUsedAt' | 'userId' | 'name' | 'suspectedCloneAt'> & {
    name: string | undefined;
  };
  /** The attestation statement format ("none", "packed", ...). */
  format: string;
}

/**
 * Verifies an attestation response (WebAuthn L3 §7.1): the challenge is ours, unused and
 * bound to this purpose and binding; origin and RP ID hash match; the person was verified
 * (unless `requireUserVerification` is false, for a passkey API tenant that does not require it).
 * Nothing is stored here: the caller saves the credential in its own transaction.
 */
export async function verifyPasskeyRegistration(
  db: Db,
  rp: RelyingParty,
  response: RegistrationResponseJSON,
  binding: { purpose: string; binding: string },
  requireUserVerification = true,
): Promise<VerifiedRegistration> {
  const challenge = await consumeChallenge(
    db,
    response.response.clientDataJSON,
    binding.purpose,
    binding.binding,
  );
  refuseFramedClientData(response.response.clientDataJSON);
  let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verification = await verifyRegistrationResponse({
      response,
      expectedChallenge: challenge.challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      requireUserVerification,
      supportedAlgorithmIDs: [...PASSKEY_POLICY.supportedAlgorithmIds],
    });
  } catch {
    throw verificationFailed();
  }
  const info = verification.registrationInfo;
  if (!verification.verified || !info || (requireUserVerification && !info.userVerified)) {
    throw verificationFailed();
  }
  // The id stored is the one in the authenticator data, which the verifier neither bounds nor
  // compares with the response's `rawId`: WebAuthn L3 §7.1 caps it at 1023 bytes.
  // Longer ids were stored and could then never sign in, nor be renamed or deleted, and past
  // ~2 kB the insert failed (a 500).
  if (
    isoBase64URL.toBuffer(info.credential.id).length > MAX_CREDENTIAL_ID_BYTES ||
    info.credential.id !== response.rawId ||
    !keyFitsItsAlgorithm(info.credential.publicKey)
  ) {
    throw verificationFailed();
  }
  return {
    challenge,
    credential: {
      id: info.credential.id,
      publicKey: info.credential.publicKey,
      counter: info.credential.counter,
      transports: info.credential.transports ?? response.response.transports ?? [],
      aaguid: info.aaguid,
      backupEligible: info.credentialDeviceType === 'multiDevice',
      backupState: info.credentialBackedUp,
      name: authenticatorName(info.aaguid),
    },
    format: info.fmt,
  };
}

export { isoBase64URL };
