import {
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  generateAuthenticationOptions,
  type PublicKeyCredentialRequestOptionsJSON,
  verifyAuthenticationResponse,
} from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Db } from '../db/connect.js';
import { credentialsQueries, type StoredCredential, type TakenChallenge } from '../db/queries/credentials.js';
import type { StoreCondition } from '../db/queries/oidcModels.js';
import type { User } from '../db/schema.js';
import { challengeFromClientData, refuseFramedClientData, storeChallenge } from './challenge.js';
import {
  accountDisabled,
  challengeInvalid,
  passkeyBlocked,
  SuspectedClone,
  unknownCredential,
  verificationFailed,
} from './errors.js';
import { type CeremonyPolicy, PASSKEY_POLICY, type RelyingParty } from './policy.js';
import { userHandleFor } from './registration.js';

/**
 * Request options under `policy` ({@link PASSKEY_POLICY} unless given; WebAuthn L3 §5.5),
 * for any storage of credentials. An empty `allow` list makes the request discoverable (usernameless).
 */
export function passkeyRequestOptions(
  rp: RelyingParty,
  allow: Pick<StoredCredential, 'id' | 'transports'>[],
  policy: Pick<CeremonyPolicy, 'timeoutMs' | 'userVerification'> = PASSKEY_POLICY,
  /** A challenge already issued and stored (base64url), else a new one. */
  challenge?: string,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.id,
    ...(challenge && { challenge: isoBase64URL.toBuffer(challenge) }),
    timeout: policy.timeoutMs,
    userVerification: policy.userVerification,
    allowCredentials: allow.map((c) => ({
      id: c.id,
      transports: c.transports as AuthenticatorTransport[],
    })),
  });
}

/**
 * Checks an assertion against a stored credential (WebAuthn L3 §7.2 steps 7-21): origin,
 * RP ID hash, UP and UV flags (UV unless `requireUserVerification` is false), signature and counter. Returns the new counter and backup
 * state for the caller to record; storage of users and credentials is the caller's.
 * Once the signature is the passkey's: a blocked passkey is refused ({@link passkeyBlocked}),
 * and a counter that did not rise throws {@link SuspectedClone}, for the caller to block it.
 */
export async function verifyAssertionSignature(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  expectedChallenge: string,
  credential: Pick<
    StoredCredential,
    'id' | 'publicKey' | 'counter' | 'transports' | 'backupEligible' | 'suspectedCloneAt'
  >,
  requireUserVerification = true,
): Promise<{ newCounter: number; backedUp: boolean }> {
  let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
  try {
    verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      requireUserVerification,
      credential: {
        id: credential.id,
        publicKey: new Uint8Array(credential.publicKey),
        // The counter is checked below, once the signature is known to be the passkey's:
        // SimpleWebAuthn checks it before the signature, so its refusal could name the
        // counter for a response the passkey never signed. With 0 it checks nothing.
        counter: 0,
        transports: credential.transports as AuthenticatorTransport[],
      },
    });
  } catch {
    throw verificationFailed();
  }
  if (!verification.verified || (requireUserVerification && !verification.authenticationInfo.userVerified)) {
    throw verificationFailed();
  }
  // WebAuthn L3 §6.1.3: whether a credential may be backed up is fixed when it is made. A
  // change is an authenticator that is not the one registered (a key exported or cloned):
  // refused, as §7.2's backup step asks.
  const { newCounter, credentialBackedUp, credentialDeviceType } = verification.authenticationInfo;
  if ((credentialDeviceType === 'multiDevice') !== credential.backupEligible) throw verificationFailed();
  // Neither copy of a blocked passkey can be told from the other: whatever its counter says.
  if (credential.suspectedCloneAt) throw passkeyBlocked();
  // WebAuthn L3 §7.2, the signCount step: a counter that is kept (either value non-zero) must rise.
  if ((newCounter > 0 || credential.counter > 0) && newCounter <= credential.counter) {
    throw new SuspectedClone(credential.id, credential.counter, newCounter);
  }
  return { newCounter, backedUp: credentialBackedUp };
}

/**
 * WebAuthn L3 §7.2 step 6: the user handle the authenticator returns must be the credential
 * owner's. A discoverable (usernameless) request named nobody, so the handle is the only
 * word on whose passkey answered: there it is required, and an assertion without one is
 * refused rather than trusted on the credential id alone. A request that listed the
 * person's own passkeys (`discoverable` false) may get none back.
 */
export function checkUserHandle(
  presented: string | undefined,
  owner: Uint8Array,
  discoverable: boolean,
): void {
  if (!presented) {
    if (discoverable) throw verificationFailed();
    return;
  }
  if (!Buffer.from(presented, 'base64url').equals(owner)) throw verificationFailed();
}

/**
 * Request options for a passkey assertion. Without `userId` the request is discoverable
 * (usernameless): the authenticator offers every passkey it holds for this RP.
 */
export async function startPasskeyAuthentication(
  db: Db,
  rp: RelyingParty,
  binding: { purpose: string; binding: string; userId?: string },
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const allow = binding.userId ? await credentialsQueries.listForUser(db, binding.userId) : [];
  const options = await passkeyRequestOptions(rp, allow);
  await storeChallenge(db, {
    challenge: options.challenge,
    purpose: binding.purpose,
    binding: binding.binding,
    userId: binding.userId ?? null,
    data: {},
  });
  return options;
}

/** Who signed in, and with which passkey. */
export interface VerifiedAssertion {
  user: User;
  credential: StoredCredential;
}

/** A verified assertion whose use is not recorded yet: `use` records it, if no newer assertion did first. */
export interface CheckedAssertion extends VerifiedAssertion {
  use: StoreCondition;
}

/**
 * Checks an assertion (WebAuthn L3 §7.2): the challenge is ours, unused and bound here (it is
 * used up now); the credential is known (and belongs to `userId` when the challenge named
 * one, else to the user handle the authenticator returned); signature, origin, RP ID hash, UV
 * flag and counter all check out; then the passkey is not blocked and its owner is active.
 * Recording the new counter, backup state and last-used time is `use`, for the caller to
 * run with what it stores. A counter that did not rise throws {@link SuspectedClone}: the
 * caller blocks the passkey (accounts/suspectedClone.ts).
 */
export async function checkPasskeyAssertion(
  db: Db,
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  binding: { purpose: string; binding: string },
): Promise<CheckedAssertion> {
  const taken = await credentialsQueries.takeChallengeAndFind(
    db,
    {
      challenge: challengeFromClientData(response.response.clientDataJSON),
      purpose: binding.purpose,
      binding: binding.binding,
    },
    response.id,
  );
  return checkTakenAssertion(rp, response, taken);
}

/**
 * The assertion's own checks against `credential`, for a request that named nobody
 * (`discoverable`) or the credential's owner: the user handle (§7.2 step 6), client data
 * not from a frame of another site, then {@link verifyAssertionSignature}. Both ways a sign-in
 * is checked run them: {@link checkTakenAssertion}, and a sign-in checked against the passkey
 * this process holds (interaction.ts, signInFromMemory).
 */
export function checkAssertion(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  challenge: string,
  credential: Parameters<typeof verifyAssertionSignature>[3] & Pick<StoredCredential, 'userId'>,
  discoverable: boolean,
): Promise<{ newCounter: number; backedUp: boolean }> {
  checkUserHandle(response.response.userHandle, userHandleFor(credential.userId), discoverable);
  refuseFramedClientData(response.response.clientDataJSON);
  return verifyAssertionSignature(rp, response, challenge, credential);
}

/**
 * {@link checkPasskeyAssertion} once the challenge the response names has been taken out of
 * storage (undefined: there was none to take) with the credential the response names and its
 * owner, as credentialsQueries.takeChallengeAndFind answers: a sign-in takes it in the
 * statement that reads its interaction (challengeOnRead.ts).
 */
export async function checkTakenAssertion(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  taken: TakenChallenge | undefined,
): Promise<CheckedAssertion> {
  if (!taken) throw challengeInvalid();
  const { challenge, found } = taken;
  if (!found) throw unknownCredential();
  const { credential, user } = found;
  if (challenge.userId && challenge.userId !== credential.userId) throw unknownCredential();
  const { newCounter, backedUp } = await checkAssertion(
    rp,
    response,
    challenge.challenge,
    credential,
    !challenge.userId,
  );
  // Only now, for the passkey's holder: without the key, a disabled account answers as any bad signature.
  if (user.disabled_at) throw accountDisabled();
  return {
    user,
    credential: { ...credential, counter: newCounter, backupState: backedUp },
    use: credentialsQueries.useOf(credential.id, newCounter, backedUp),
  };
}

/**
 * Verifies an assertion ({@link checkPasskeyAssertion}) and records its use: the counter,
 * backup state and last-used time.
 */
export async function verifyPasskeyAssertion(
  db: Db,
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  binding: { purpose: string; binding: string },
): Promise<VerifiedAssertion> {
  const { user, credential } = await checkPasskeyAssertion(db, rp, response, binding);
  // A concurrent assertion with a higher counter may have won the race: then this one is a replay.
  if (!(await credentialsQueries.recordUse(db, credential.id, credential.counter, credential.backupState))) {
    throw verificationFailed();
  }
  return { user, credential };
}

/**
 * Authentication method references (RFC 8176) for a passkey sign-in with user verification:
 * proof of possession of a key ("pop", registered by OpenID Connect EAP ACR Values 1.0 for a
 * key whose storage is not known), user presence ("user"), and multiple factors ("mfa":
 * possession plus PIN or biometric). Not "hwk" nor "swk": Sesame asks for no attestation
 * and verifies none, so how a key is stored is only what its authenticator says
 * (the backup flags), which no app should take as a promise of hardware.
 */
export function passkeyAmr(): string[] {
  return ['pop', 'user', 'mfa'];
}
