import { HttpError } from '../http/errors.js';

/** Why a passkey ceremony failed, in words a person can act on. */
export class PasskeyError extends HttpError {
  constructor(code: string, message: string, status = 400) {
    super(status, code, message);
  }
}

export const challengeInvalid = () =>
  new PasskeyError(
    'challenge_invalid',
    'This passkey request has expired or was already used. Please try again.',
  ).localized('errors.challengeInvalid');
export const verificationFailed = () =>
  new PasskeyError('verification_failed', 'The passkey could not be verified. Please try again.').localized(
    'errors.verificationFailed',
  );
const BLOCKED_MESSAGE =
  'This passkey has been blocked. Sign in with another passkey or recover your account.';

/**
 * A passkey blocked as a suspected copy (credentials.suspected_clone_at): refused at every
 * sign-in and step-up. The words do not say why, so that whoever holds a copy learns nothing
 * to try next; the owner's notice mail and the account page say it.
 */
export const passkeyBlocked = () =>
  new PasskeyError('passkey_blocked', BLOCKED_MESSAGE, 403).localized('errors.passkeyBlocked');

/**
 * WebAuthn L3 §6.1.1: an authenticator that keeps a signature counter raises it with every
 * assertion, so a correctly signed one whose counter did not rise proves a second copy of the
 * private key. Refused as a blocked passkey; the caller blocks it (`credentialId`), since
 * the copy could otherwise answer again with a higher counter and lock the owner out.
 */
export class SuspectedClone extends PasskeyError {
  constructor(
    readonly credentialId: string,
    readonly storedCounter: number,
    readonly presentedCounter: number,
  ) {
    super('passkey_blocked', BLOCKED_MESSAGE, 403);
    this.localized('errors.passkeyBlocked');
  }
}

export const unknownCredential = () =>
  new PasskeyError(
    'unknown_credential',
    'This passkey is not registered here. It may have been deleted.',
    401,
  ).localized('errors.unknownCredential');
export const accountDisabled = () =>
  new PasskeyError('account_disabled', 'This account has been disabled.', 403).localized(
    'errors.accountDisabled',
  );
