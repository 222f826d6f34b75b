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
/**
 * WebAuthn L3 §6.1.1: an authenticator that keeps a signature counter raises it with every
 * assertion, so one that did not rise signs for a copy of the credential (a cloned key). Its
 * code stays `verification_failed`, as callers know it; the message says which check failed.
 */
export const counterNotIncreased = () =>
  new PasskeyError(
    'verification_failed',
    "This passkey's signature counter did not increase since its last use, a sign that the authenticator was copied. Use another passkey.",
  ).localized('errors.counterNotIncreased');
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
