import { type Command, InvalidArgumentError } from 'commander';
import type { HttpError } from '../http/errors.js';
import { MAX_KEY_ACTIVATION_DELAY_SECONDS } from '../oidc/keys.js';
import { CliError } from './context.js';

/**
 * The flag that sets each field a validation error may name: an operator typed
 * `--redirect-uri`, so the error says `--redirect-uri: ...`, not `redirect_uris: ...`.
 */
const FLAG_FOR_FIELD: Record<string, string> = {
  name: '--name',
  redirect_uris: '--redirect-uri',
  post_logout_redirect_uris: '--post-logout-redirect-uri',
  grant_types: '--grant-type',
  logo_uri: '--logo-uri',
  allowed_groups: '--allowed-group',
  first_party: '--first-party',
  introspect_tokens: '--introspect-tokens',
  public: '--public',
  origins: '--origin',
  rp_id: '--rp-id',
  require_pushed_authorization_requests: '--require-par',
  backchannel_logout_uri: '--backchannel-logout-uri',
  identifier: '--identifier',
  scopes: '--scope',
  scope: '--scope',
  'webauthn.user_verification': '--user-verification',
  'webauthn.attachment': '--attachment',
  'webauthn.resident_key_requirement': '--resident-key',
  'webauthn.attestation_preference': '--attestation',
  'webauthn.timeout': '--timeout',
  'mfa.user_verification': '--mfa-user-verification',
  'mfa.attachment': '--mfa-attachment',
  'mfa.resident_key_requirement': '--mfa-resident-key',
  'mfa.attestation_preference': '--mfa-attestation',
  'mfa.timeout': '--mfa-timeout',
};

/** A one-line CLI error about the value given for `field`, named by its flag. */
export function flagError(field: string, message: string): CliError {
  return new CliError(`${FLAG_FOR_FIELD[field] ?? field}: ${message}`);
}

/** `--unverified`: do what is refused for an account whose address nobody proved (see promoteUser). */
export const UNVERIFIED_FLAG_HELP =
  "even though nobody proved the account's address (you know whose account it is)";

/**
 * A refusal as the CLI's one line: one for an account whose address nobody proved
 * (`email_unverified`) names the flag that overrides it.
 */
export function refusalLine(error: HttpError): string {
  return error.code === 'email_unverified'
    ? `${error.message} (or, if you know whose account it is, add --unverified)`
    : error.message;
}

/**
 * `--activate-in`: a whole number of seconds, 0 to a year, the range the admin API's
 * `activate_in` takes (beyond it the database cannot hold the time).
 */
export function seconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number of seconds');
  if (Number(value) > MAX_KEY_ACTIVATION_DELAY_SECONDS) {
    throw new InvalidArgumentError(
      `expected a whole number of seconds, at most ${MAX_KEY_ACTIVATION_DELAY_SECONDS} (a year)`,
    );
  }
  return Number(value);
}

/**
 * When new keys start signing, from `--activate-in` and `--revoke-previous`. Revoked keys
 * with the new ones still pending would leave nothing to sign with, so `--revoke-previous`
 * switches at once; an explicit delay beside it is a contradiction.
 */
export function activationFromFlags(
  opts: { activateIn: number; revokePrevious?: boolean },
  command: Command,
  what: string,
): { activateInSeconds: number; revokePrevious: boolean } {
  const explicitDelay = command.getOptionValueSource('activateIn') === 'cli';
  if (opts.revokePrevious && explicitDelay && opts.activateIn !== 0) {
    throw new CliError(
      `--revoke-previous switches to ${what} at once: leave out --activate-in or give 0 (nothing could sign in the meantime)`,
    );
  }
  return {
    activateInSeconds: opts.revokePrevious ? 0 : opts.activateIn,
    revokePrevious: Boolean(opts.revokePrevious),
  };
}
