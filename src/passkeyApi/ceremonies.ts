import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { StoredChallenge } from '../db/queries/challenges.js';
import {
  passkeyTenantCredentialsQueries,
  type TenantCredential,
} from '../db/queries/passkeyTenantCredentials.js';
import type { StoredTenant } from '../db/queries/passkeyTenants.js';
import { passkeyTenantUsersQueries } from '../db/queries/passkeyTenantUsers.js';
import { HttpError, notFound } from '../http/errors.js';
import type { Logger } from '../logger.js';
import { isVisibleText } from '../text.js';
import {
  checkUserHandle,
  passkeyRequestOptions,
  verifyAssertionSignature,
} from '../webauthn/authentication.js';
import { consumeChallenge, refuseFramedClientData, storeChallenge } from '../webauthn/challenge.js';
import { SuspectedClone, unknownCredential, verificationFailed } from '../webauthn/errors.js';
import { passkeyCreationOptions, verifyPasskeyRegistration } from '../webauthn/registration.js';
import { noSuitableCredentials } from './errors.js';
import { signPasskeyToken } from './jwt.js';
import { ceremonyPolicy, requiresUserVerification, type TenantSettings } from './tenantSettings.js';
import { tenantChallengeBinding, tenantRelyingParty } from './tenants.js';

/** Challenge purposes of the passkey API, distinct from Sesame's own ceremonies. */
const PURPOSE = { register: 'pk-reg', login: 'pk-login' } as const;

/**
 * Name of a new credential, passkey or MFA key: the model its AAGUID names, else (unknown, or
 * all zeros) `cred-` and its id, as Hanko's server names it (`intern/webauthn_credential.go`),
 * so apps that look for it find it.
 */
export const tenantCredentialName = (credential: { id: string; name: string | undefined }) =>
  credential.name ?? `cred-${credential.id}`;

/** The WebAuthn user handle for an app's user id: its UTF-8 bytes (at most 64, WebAuthn L3 §5.4.3). */
export function tenantUserHandle(userId: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(Buffer.from(userId, 'utf8'));
}

export const userNotFound = () => notFound('User not found');

/** Who the app is registering a passkey for; it creates or updates the tenant's user. */
export interface TenantRegistrationSubject {
  userId: string;
  username: string;
  displayName?: string | null | undefined;
  icon?: string | null | undefined;
}

/**
 * The name an authenticator shows for the user: as Hanko does, the username when the display
 * name is blank; here also when it shows nothing (only invisible characters, see isVisibleText).
 */
export function shownDisplayName(subject: TenantRegistrationSubject): string {
  const displayName = subject.displayName?.trim();
  return displayName && isVisibleText(displayName) ? displayName : subject.username;
}

/** Creation options for a tenant's user (creating or updating that user), with the challenge stored. */
export async function startTenantRegistration(
  db: Db,
  tenant: StoredTenant,
  subject: TenantRegistrationSubject,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const displayName = shownDisplayName(subject);
  // One transaction: input the database refuses (it fails at the challenge's jsonb) leaves
  // no tenant user behind.
  return db.transaction().execute(async (trx) => {
    await passkeyTenantUsersQueries.upsert(trx, {
      tenant_id: tenant.id,
      user_id: subject.userId,
      username: subject.username,
      display_name: displayName,
      icon: subject.icon ?? null,
    });
    const existing = await passkeyTenantCredentialsQueries.listForUser(trx, tenant.id, subject.userId);
    const options = await passkeyCreationOptions(
      tenantRelyingParty(tenant),
      { handle: tenantUserHandle(subject.userId), name: subject.username, displayName },
      existing,
      ceremonyPolicy(tenant.settings.webauthn),
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
 * Verifies a tenant's registration response against its origins and RP ID, stores the
 * passkey for the user the challenge was issued for, and returns the token for the app.
 */
export async function finishTenantRegistration(
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  tenant: StoredTenant,
  response: RegistrationResponseJSON,
): Promise<string> {
  const { challenge, credential, format } = await verifyPasskeyRegistration(
    db,
    tenantRelyingParty(tenant),
    response,
    {
      purpose: PURPOSE.register,
      binding: tenantChallengeBinding(tenant.id),
    },
    requiresUserVerification(tenant.settings.webauthn),
  );
  const userId = challenge.data.userId;
  if (typeof userId !== 'string' || !(await passkeyTenantUsersQueries.find(db, tenant.id, userId))) {
    throw userNotFound();
  }
  // The passkey is stored with the token that says so: a token that cannot be signed leaves
  // no passkey the app was told failed.
  return db.transaction().execute(async (trx) => {
    const stored = await passkeyTenantCredentialsQueries.insert(trx, {
      ...credential,
      tenantId: tenant.id,
      userId,
      // The attestation statement format ("none", "packed", ...), as Hanko records it: not the
      // tenant's attestation preference, which an authenticator may answer with "none".
      attestationType: format,
      name: tenantCredentialName(credential),
    });
    if (!stored) {
      throw new HttpError(400, 'credential_exists', 'This passkey is already registered.');
    }
    return signPasskeyToken(trx, config, tenant, { userId, credentialId: credential.id });
  });
}

/**
 * Request options for a tenant's login: discoverable without `userId`, else limited to
 * that user's passkeys (and the challenge bound to the user); a user with none is refused.
 */
export async function startTenantLogin(
  db: Db,
  tenant: StoredTenant,
  userId?: string,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  if (userId !== undefined && !(await passkeyTenantUsersQueries.find(db, tenant.id, userId))) {
    throw userNotFound();
  }
  // MFA credentials are second factors: Hanko never offers them for a passkey login.
  const allow = userId
    ? (await passkeyTenantCredentialsQueries.listForUser(db, tenant.id, userId)).filter((c) => !c.isMfa)
    : [];
  // An empty allowCredentials means "any passkey" to the browser, not "this user's".
  if (userId !== undefined && allow.length === 0) throw noSuitableCredentials();
  const options = await passkeyRequestOptions(
    tenantRelyingParty(tenant),
    allow,
    ceremonyPolicy(tenant.settings.webauthn),
  );
  await storeChallenge(db, {
    challenge: options.challenge,
    purpose: PURPOSE.login,
    binding: tenantChallengeBinding(tenant.id),
    userId: null,
    data: userId ? { userId } : {},
  });
  return options;
}

/** What one kind of tenant assertion (passkey login, second factor, transaction) accepts. */
export interface TenantAssertionRules {
  /** The challenge purpose the assertion must answer. */
  purpose: string;
  /** Whose settings decide user verification: the tenant's passkey or its MFA settings. */
  settings: keyof TenantSettings;
  /** Whether this stored credential may answer a challenge issued with this data. */
  accepts(credential: TenantCredential, data: StoredChallenge['data']): boolean;
  /** Whether the request named nobody, so that the user handle is required (see checkUserHandle). */
  discoverable(data: StoredChallenge['data']): boolean;
}

/**
 * Runs a tenant passkey's signature check; when it finds a {@link SuspectedClone}, blocks the
 * passkey before the refusal goes out, as Sesame's own sign-in does (accounts/suspectedClone.ts):
 * the copy could otherwise answer again with a higher counter. Hanko's server has no such
 * state. The refusal is in the tenant's audit log as the failed step; this line is the operator's.
 * Nothing else is revoked, unlike Sesame's own block (blockSuspectedClone): Sesame keeps no
 * sign-in of a tenant's users, and the tokens finalize gave out are stateless and live 5
 * minutes; the sessions the app made from them are its own to end.
 */
async function blockingTenantClones<T>(
  db: Db,
  log: Pick<Logger, 'warn'>,
  tenant: StoredTenant,
  check: () => Promise<T>,
): Promise<T> {
  try {
    return await check();
  } catch (caught) {
    if (
      caught instanceof SuspectedClone &&
      (await passkeyTenantCredentialsQueries.blockAsClone(db, tenant.id, caught.credentialId))
    ) {
      log.warn('passkey api passkey blocked: its signature counter went backwards, a copy of it exists', {
        tenant: tenant.id,
        credential: caught.credentialId.slice(0, 12),
        storedCounter: caught.storedCounter,
        presentedCounter: caught.presentedCounter,
      });
    }
    throw caught;
  }
}

/**
 * Verifies a tenant's assertion (WebAuthn L3 §7.2) under `rules`: the challenge is this
 * tenant's, of that purpose and unused; the passkey is this tenant's and one the rules
 * accept for that challenge; the user handle matches (and is required when the request was
 * discoverable); signature, origin, RP ID and counter check out, and UV when the settings
 * require it. Records the use and returns the credential with the challenge's data.
 */
export async function verifyTenantAssertion(
  db: Db,
  log: Pick<Logger, 'warn'>,
  tenant: StoredTenant,
  response: AuthenticationResponseJSON,
  rules: TenantAssertionRules,
): Promise<{ credential: TenantCredential; data: StoredChallenge['data'] }> {
  const challenge = await consumeChallenge(
    db,
    response.response.clientDataJSON,
    rules.purpose,
    tenantChallengeBinding(tenant.id),
  );
  const credential = await passkeyTenantCredentialsQueries.find(db, tenant.id, response.id);
  if (!credential || !rules.accepts(credential, challenge.data)) throw unknownCredential();
  checkUserHandle(
    response.response.userHandle,
    tenantUserHandle(credential.userId),
    rules.discoverable(challenge.data),
  );
  // As at the tenant's registration: a sign-in or an approved transaction in a cross-origin frame is not one the app showed.
  refuseFramedClientData(response.response.clientDataJSON);
  const { newCounter, backedUp } = await blockingTenantClones(db, log, tenant, () =>
    verifyAssertionSignature(
      tenantRelyingParty(tenant),
      response,
      challenge.challenge,
      credential,
      requiresUserVerification(tenant.settings[rules.settings]),
    ),
  );
  // A concurrent assertion with a higher counter may have won the race: then this one is a replay.
  if (
    !(await passkeyTenantCredentialsQueries.recordUse(db, tenant.id, credential.id, newCounter, backedUp))
  ) {
    throw verificationFailed();
  }
  return { credential, data: challenge.data };
}

/**
 * A tenant's passkey login: the passkey is the named user's when login named one, and never
 * a second factor (Hanko: "MFA credentials are not usable for normal login"). Returns the token.
 */
export async function finishTenantLogin(
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  log: Pick<Logger, 'warn'>,
  tenant: StoredTenant,
  response: AuthenticationResponseJSON,
): Promise<string> {
  const { credential } = await verifyTenantAssertion(db, log, tenant, response, {
    purpose: PURPOSE.login,
    settings: 'webauthn',
    accepts: (c, data) => !c.isMfa && (data.userId === undefined || data.userId === c.userId),
    discoverable: (data) => data.userId === undefined,
  });
  return signPasskeyToken(db, config, tenant, { userId: credential.userId, credentialId: credential.id });
}
