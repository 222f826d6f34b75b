import { STATUS_CODES } from 'node:http';
import { type RegistrationResponseJSON, verifyRegistrationResponse } from '@simplewebauthn/server';
import type { StoredTenant } from '../db/queries/passkeyTenants.js';
import { HttpError, isNulCharacterError } from '../http/errors.js';
import { PasskeyError } from '../webauthn/errors.js';
import { PASSKEY_POLICY } from '../webauthn/policy.js';
import { tenantRelyingParty } from './tenants.js';

/** The code of errors already in Hanko's words; the renderer shows them as they are. */
const HANKO = 'passkey_api';

/**
 * An error as Hanko's passkey API answers it: `title` is the message Hanko's handler
 * gives, `details` the cause beneath it (often empty), `status` the HTTP status.
 */
export function hankoError(status: number, title: string, cause = ''): HttpError {
  return new HttpError(status, HANKO, title, { cause });
}

/** The `details` of an error: the cause of one in Hanko's words, else the message of ours. */
export function hankoCause(error: HttpError): string {
  const cause = error.details?.cause;
  return typeof cause === 'string' ? cause : '';
}

export function isHankoError(caught: unknown): caught is HttpError {
  return caught instanceof HttpError && caught.code === HANKO;
}

/**
 * Maps any error to Hanko's `{title, details, status}`: `title` is the message and
 * `details` the cause, as Hanko's error handler writes them.
 */
export function toHankoError(caught: unknown): HttpError {
  if (isHankoError(caught)) return caught;
  if (caught instanceof HttpError) {
    // A body refused before any handler read it (ill-formed text): Hanko's bind error.
    const title = caught.status === 400 ? HANKO_TITLES.unreadable : (STATUS_CODES[caught.status] ?? 'Error');
    return hankoError(caught.status, title, caught.message);
  }
  if (isNulCharacterError(caught)) {
    return hankoError(400, HANKO_TITLES.invalid, 'Text must not contain NUL characters');
  }
  const error = caught as { status?: number; statusCode?: number; type?: string };
  const status = error?.status ?? error?.statusCode;
  if (status === 413) {
    return hankoError(413, STATUS_CODES[413]!, 'The request body is too large');
  }
  if (status === 415) return hankoError(415, STATUS_CODES[415]!, 'The body must be JSON');
  if (status && status >= 400 && status < 500)
    return hankoError(400, HANKO_TITLES.unreadable, 'Malformed JSON body');
  return new HttpError(500, 'server_error', STATUS_CODES[500]!);
}

/** Hanko's title for a request body it cannot read (bind) or that breaks a rule (validate). */
export const HANKO_TITLES = {
  unreadable: 'unable to process request',
  invalid: 'unable to validate request',
  /** Hanko's audit log handler's title for any query it refuses (`GET audit_logs`). */
  auditLogsUnreadable: 'unable to list audit logs',
  apiKeyInvalid: 'The api key is invalid',
  apiKeyMissing: 'api key is missing',
  tenantNotFound: 'tenant not found',
  tenantIdInvalid: 'tenant_id must be a valid uuid4',
  userNotFound: 'user not found',
  unknownChallenge: 'received challenge does not match with any stored one',
  /** Hanko's transaction service says this where the other calls say `userNotFound`. */
  transactionUserNotFound: 'unable to find user',
  noSuitableCredentials: 'user has no suitable credentials for this operation',
  invalidUserId: 'invalid user id',
  /** A body that is no credential creation response (every `*registration/finalize`). */
  unparsableCreationResponse: 'unable to parse credential creation response',
  /** A body that is no assertion (`login/finalize`, `mfa/login/finalize`). */
  unparsableLogin: 'unable to finish login',
  /** A body that is no assertion (`transaction/finalize`). */
  unparsableTransaction: 'unable to finish transaction',
} as const;

/**
 * A named user with no credential the ceremony may offer: as Hanko's transaction service
 * words it. Sesame says it at the passkey and MFA logins too, where Hanko answers 500 (its
 * WebAuthn library refuses to begin a login without credentials): an empty
 * `allowCredentials` would let the browser offer any passkey.
 */
export const noSuitableCredentials = () => hankoError(400, HANKO_TITLES.noSuitableCredentials);

/**
 * Hanko's answer when `login/finalize`, `mfa/login/finalize` or `transaction/finalize`
 * refuses an assertion: 401 whatever the reason (an unknown or used challenge, an unknown
 * passkey or user, a bad signature, origin or flag), titled as Hanko's login service titles it.
 */
export function loginRefusal(caught: unknown): unknown {
  if (!(caught instanceof PasskeyError) && !(caught instanceof HttpError && caught.status === 404)) {
    return caught;
  }
  const error = caught as HttpError;
  if (error.code === 'challenge_invalid') {
    return hankoError(401, 'failed to get session data', HANKO_TITLES.unknownChallenge);
  }
  if (error.status === 404) return hankoError(401, 'failed to get user handle', HANKO_TITLES.userNotFound);
  return hankoError(401, 'failed to validate assertion', error.message);
}

/**
 * Hanko's answer when `registration/finalize` refuses a credential. A response whose only
 * fault is the missing UV flag is 422, as Hanko answers it: Safari may register a passkey
 * without user verification, and apps tell the person to set up a screen lock by the status.
 */
export async function registrationRefusal(
  caught: unknown,
  tenant: StoredTenant,
  response: RegistrationResponseJSON,
): Promise<unknown> {
  if (!(caught instanceof HttpError) || caught.code === HANKO) return caught;
  switch (caught.code) {
    case 'challenge_invalid':
      return hankoError(400, HANKO_TITLES.unknownChallenge);
    case 'not_found':
      return hankoError(404, HANKO_TITLES.userNotFound);
    case 'credential_exists':
      return hankoError(400, 'failed to validate attestation', 'this passkey is already registered');
    case 'verification_failed':
      if (await onlyUserVerificationMissing(tenant, response)) {
        return hankoError(
          422,
          'failed to validate attestation: Error validating ceremony: User verification required, but the UV flag is not set',
          caught.message,
        );
      }
      return hankoError(400, 'failed to validate attestation', caught.message);
    default:
      return caught;
  }
}

/**
 * Whether the response would verify but for user verification. Asked only after the
 * challenge was taken from storage as this tenant's (consumeChallenge succeeded), so
 * any challenge is accepted here.
 */
async function onlyUserVerificationMissing(
  tenant: StoredTenant,
  response: RegistrationResponseJSON,
): Promise<boolean> {
  const rp = tenantRelyingParty(tenant);
  try {
    const verification = await verifyRegistrationResponse({
      response,
      expectedChallenge: () => true,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      requireUserVerification: false,
      supportedAlgorithmIDs: [...PASSKEY_POLICY.supportedAlgorithmIds],
    });
    return verification.verified && verification.registrationInfo?.userVerified === false;
  } catch {
    return false;
  }
}
