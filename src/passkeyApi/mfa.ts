import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { passkeyTenantCredentialsQueries } from '../db/queries/passkeyTenantCredentials.js';
import type { StoredTenant } from '../db/queries/passkeyTenants.js';
import { passkeyTenantUsersQueries } from '../db/queries/passkeyTenantUsers.js';
import { HttpError } from '../http/errors.js';
import type { Logger } from '../logger.js';
import { storeChallenge } from '../webauthn/challenge.js';
import { passkeyCreationOptions, verifyPasskeyRegistration } from '../webauthn/registration.js';
import {
  shownDisplayName,
  type TenantRegistrationSubject,
  tenantCredentialName,
  tenantUserHandle,
  userNotFound,
  verifyTenantAssertion,
} from './ceremonies.js';
import { HANKO_TITLES, hankoError, loginRefusal, noSuitableCredentials } from './errors.js';
import { signPasskeyToken } from './jwt.js';
import { ceremonyPolicy, requiresUserVerification } from './tenantSettings.js';
import { tenantChallengeBinding, tenantRelyingParty } from './tenants.js';

/** Challenge purposes of the MFA ceremonies: a passkey challenge never finishes one, nor the reverse. */
const PURPOSE = { register: 'pk-mfa-reg', login: 'pk-mfa-login' } as const;

/**
 * Hanko answers 401 when a login-like ceremony fails at its end (unknown or used challenge,
 * unknown credential, bad assertion), in its login service's words; Sesame's ceremonies say
 * 400 for some of those, in Sesame's words, which become the `details`.
 */
export async function refusedAsLogin<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (caught) {
    throw loginRefusal(caught);
  }
}

/**
 * Creation options for a second factor of a tenant's user (creating or updating that user),
 * under the tenant's MFA settings (by default Hanko's: a roaming key, not discoverable, UV preferred).
 */
export async function startMfaRegistration(
  db: Db,
  tenant: StoredTenant,
  subject: TenantRegistrationSubject,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const displayName = shownDisplayName(subject);
  const rp = tenantRelyingParty(tenant);
  const policy = ceremonyPolicy(tenant.settings.mfa);
  return db.transaction().execute(async (trx) => {
    await passkeyTenantUsersQueries.upsert(trx, {
      tenant_id: tenant.id,
      user_id: subject.userId,
      username: subject.username,
      display_name: displayName,
      icon: subject.icon ?? null,
    });
    // The same key twice as a second factor adds nothing; its passkeys may share the key.
    const existing = (
      await passkeyTenantCredentialsQueries.listForUser(trx, tenant.id, subject.userId)
    ).filter((c) => c.isMfa);
    // Transports are left out of excludeCredentials, as Hanko does for second factors.
    const options = await passkeyCreationOptions(
      rp,
      { handle: tenantUserHandle(subject.userId), name: subject.username, displayName },
      existing.map((c) => ({ id: c.id, transports: [] })),
      policy,
    );
    await storeChallenge(trx, {
      challenge: options.challenge,
      purpose: PURPOSE.register,
      binding: tenantChallengeBinding(tenant.id),
      userId: null,
      data: { userId: subject.userId },
    });
    return options;
  });
}

/**
 * Verifies the attestation of a second factor (WebAuthn L3 §7.1) against the tenant's
 * origins and RP ID, with user verification required only when the tenant's MFA settings require it, and stores it
 * with `is_mfa`. Returns the token for the app.
 */
export async function finishMfaRegistration(
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  tenant: StoredTenant,
  response: RegistrationResponseJSON,
): Promise<string> {
  const { challenge, credential, format } = await verifyPasskeyRegistration(
    db,
    tenantRelyingParty(tenant),
    response,
    { purpose: PURPOSE.register, binding: tenantChallengeBinding(tenant.id) },
    requiresUserVerification(tenant.settings.mfa),
  );
  const userId = challenge.data.userId;
  if (typeof userId !== 'string' || !(await passkeyTenantUsersQueries.find(db, tenant.id, userId))) {
    throw userNotFound();
  }
  const stored = await passkeyTenantCredentialsQueries.insert(db, {
    ...credential,
    tenantId: tenant.id,
    userId,
    // The attestation statement format ("none", "packed", ...), as Hanko records it.
    attestationType: format,
    name: tenantCredentialName(credential),
    isMfa: true,
  });
  if (!stored) {
    throw new HttpError(400, 'credential_exists', 'This security key is already registered.');
  }
  return signPasskeyToken(db, config, tenant, { userId, credentialId: credential.id });
}

/**
 * Request options for a second factor of a known user. As in Hanko, every credential of the
 * user qualifies — its security keys and its passkeys (a passkey is at least as strong) —
 * while the normal login never accepts a security key. Transports are left out of
 * `allowCredentials`, as Hanko does, so Android and Windows do not wrongly offer their
 * built-in authenticator.
 */
export async function startMfaLogin(
  db: Db,
  tenant: StoredTenant,
  userId: string,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  if (!(await passkeyTenantUsersQueries.find(db, tenant.id, userId))) {
    throw hankoError(404, HANKO_TITLES.userNotFound);
  }
  const credentials = await passkeyTenantCredentialsQueries.listForUser(db, tenant.id, userId);
  if (credentials.length === 0) throw noSuitableCredentials();
  const options = await generateAuthenticationOptions({
    rpID: tenant.rpId,
    timeout: tenant.settings.mfa.timeoutMs,
    userVerification: tenant.settings.mfa.userVerification,
    allowCredentials: credentials.map((c) => ({ id: c.id })),
  });
  await storeChallenge(db, {
    challenge: options.challenge,
    purpose: PURPOSE.login,
    binding: tenantChallengeBinding(tenant.id),
    userId: null,
    data: { userId },
  });
  return options;
}

/**
 * Verifies the second factor's assertion: the challenge is this tenant's MFA challenge and
 * unused, the credential is the named user's, the user handle (when the key returns one)
 * is theirs, and signature, origin, RP ID, UP and counter check out. Returns the token.
 */
export async function finishMfaLogin(
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  log: Pick<Logger, 'warn'>,
  tenant: StoredTenant,
  response: AuthenticationResponseJSON,
): Promise<string> {
  return refusedAsLogin(async () => {
    // A non-discoverable key usually returns no user handle; one that does must name the user.
    const { credential } = await verifyTenantAssertion(db, log, tenant, response, {
      purpose: PURPOSE.login,
      settings: 'mfa',
      accepts: (c, data) => c.userId === data.userId,
      discoverable: () => false,
    });
    return signPasskeyToken(db, config, tenant, { userId: credential.userId, credentialId: credential.id });
  });
}
