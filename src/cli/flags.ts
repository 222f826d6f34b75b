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
