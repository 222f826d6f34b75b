import { withAdminAuthority } from '../accounts/adminAuthority.js';
import type { Config } from '../config.js';
import { randomSecret, secretMatchesAnyHash, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { passkeyTenantKeysQueries } from '../db/queries/passkeyTenantKeys.js';
import { passkeyTenantsQueries, type StoredTenant, type TenantId } from '../db/queries/passkeyTenants.js';
import { KEY_ACTIVATION_DELAY_SECONDS } from '../oidc/keys.js';
import type { RelyingParty } from '../webauthn/policy.js';
import { newTenantSigningKey, RETIRED_TENANT_KEY_GRACE_SECONDS } from './jwt.js';
import { checkOriginsOnRpId, tenantRelyingPartySettings } from './relyingParty.js';
import {
  type CeremonySettingsView,
  ceremonySettingsView,
  settingsChangeView,
  type TenantSettingsChange,
} from './tenantSettings.js';

/**
 * Every passkey API key starts with this, so secret scanners can recognise a leaked one;
 * 256 random bits follow.
 */
export const TENANT_API_KEY_PREFIX = 'spk_';

/** A tenant as admins see it: never the API key, its hash or the signing key. */
export interface TenantView {
  tenant_id: string;
  name: string;
  rp_id: string;
  origins: string[];
  /** Settings of its passkey ceremonies, in Hanko's names. */
  webauthn: CeremonySettingsView;
  /** Settings of its second-factor (MFA) ceremonies. */
  mfa: CeremonySettingsView;
  created_at: string;
}

export function tenantView(tenant: StoredTenant): TenantView {
  return {
    tenant_id: tenant.id,
    name: tenant.name,
    rp_id: tenant.rpId,
    origins: tenant.origins,
    webauthn: ceremonySettingsView(tenant.settings.webauthn),
    mfa: ceremonySettingsView(tenant.settings.mfa),
    created_at: new Date(tenant.createdAt).toISOString(),
  };
}

/**
 * What a tenant's challenges are bound to in webauthn_challenges: no other tenant can consume
 * them. The id as stored, so a deletion finds them whatever case its caller typed.
 */
export function tenantChallengeBinding(tenantId: TenantId): string {
  return `tenant:${tenantId}`;
}

/** Where the tenant's ceremonies must happen: its own origins and RP ID, never Sesame's. */
export function tenantRelyingParty(tenant: StoredTenant): RelyingParty {
  return { id: tenant.rpId, name: tenant.name, origins: tenant.origins };
}

/**
 * Registers an app with the passkey API. The API key is returned once; only its SHA-256 is
 * stored. The tenant's RS256 key is stored sealed under the key-encryption secret.
 * @throws TenantValidationError for a bad name, origin or RP ID.
 */
export async function createTenant(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  input: { name: string; origins: string[]; rpId?: string | undefined },
  actor: Actor,
): Promise<{ tenant: StoredTenant; apiKey: string }> {
  const settings = tenantRelyingPartySettings(input);
  const apiKey = TENANT_API_KEY_PREFIX + randomSecret();
  const key = await newTenantSigningKey(config);
  const tenant = await withAdminAuthority(db, actor, async (trx) => {
    const created = await passkeyTenantsQueries.insert(trx, { ...settings, apiKeyHash: sha256Hex(apiKey) });
    // Nobody holds the tenant's JWKS yet: its first key signs at once.
    await passkeyTenantKeysQueries.insert(trx, created.id, key.kid, key.sealedFor(created.id), 0);
    await auditQueries.record(trx, actor, 'passkey_tenant.create', created.id, {
      name: created.name,
      rp_id: created.rpId,
      origins: created.origins,
    });
    return created;
  });
  return { tenant, apiKey };
}

export function listTenants(db: Db): Promise<StoredTenant[]> {
  return passkeyTenantsQueries.list(db);
}

export function findTenant(db: Db, id: string): Promise<StoredTenant | undefined> {
  return passkeyTenantsQueries.findById(db, id);
}

/**
 * The longest a replaced API key may keep working: long enough to roll the new key out to
 * every server of an app, short enough that a rotation still ends the old key's life.
 */
export const MAX_PREVIOUS_API_KEY_SECONDS = 30 * 24 * 3600;

/** A new API key (shown once) and when the key it replaced stops working (null: it already has). */
export interface TenantApiKeyRotation {
  /** The tenant's id as stored. */
  tenantId: TenantId;
  apiKey: string;
  previousKeyExpiresAt: Date | null;
}

/**
 * Replaces the tenant's API key. By default the old key stops working at once, as does an
 * earlier key still within an overlap: the way to cut off a key known exposed.
 * `keepPreviousForSeconds` (at most {@link MAX_PREVIOUS_API_KEY_SECONDS}) keeps the key
 * being replaced working that long beside the new one, so the app's servers can take the
 * new key without downtime; it is stored hashed like the current one and expires by the
 * database's clock. Undefined when there is no such tenant.
 */
export async function rotateTenantApiKey(
  db: Db,
  id: string,
  actor: Actor,
  { keepPreviousForSeconds = 0 }: { keepPreviousForSeconds?: number } = {},
): Promise<TenantApiKeyRotation | undefined> {
  if (!Number.isInteger(keepPreviousForSeconds) || keepPreviousForSeconds < 0) {
    throw new Error('keepPreviousForSeconds must be a whole number of seconds');
  }
  if (keepPreviousForSeconds > MAX_PREVIOUS_API_KEY_SECONDS) {
    throw new Error(`keepPreviousForSeconds must be at most ${MAX_PREVIOUS_API_KEY_SECONDS}`);
  }
  const apiKey = TENANT_API_KEY_PREFIX + randomSecret();
  return withAdminAuthority(db, actor, async (trx) => {
    const replaced = await passkeyTenantsQueries.replaceApiKeyHash(
      trx,
      id,
      sha256Hex(apiKey),
      keepPreviousForSeconds,
    );
    if (!replaced) return undefined;
    const { tenantId, previousKeyExpiresAt } = replaced;
    await auditQueries.record(
      trx,
      actor,
      'passkey_tenant.rotate_key',
      tenantId,
      previousKeyExpiresAt ? { previous_key_expires_at: previousKeyExpiresAt.toISOString() } : undefined,
    );
    return { tenantId, apiKey, previousKeyExpiresAt };
  });
}

/** An API key rotation as `sesame passkey-api rotate-key --json` and the admin API answer it. */
export function tenantApiKeyRotationView({ tenantId, apiKey, previousKeyExpiresAt }: TenantApiKeyRotation) {
  return {
    tenant_id: tenantId,
    api_key: apiKey,
    previous_key_expires_at: previousKeyExpiresAt?.toISOString() ?? null,
  };
}

/**
 * Adds a new signing key to the tenant, published in its JWKS at once and signing after
 * `activateInSeconds` (by default as long as Sesame's own keys wait: apps cache the JWKS);
 * the current key signs until then and stays published for
 * {@link RETIRED_TENANT_KEY_GRACE_SECONDS} more, so tokens it signed still verify.
 * `activateInSeconds: 0` switches at once. `revokePrevious` (only with `activateInSeconds: 0`:
 * otherwise nothing could sign until the new key activates) deletes the tenant's earlier keys
 * in the same transaction: every instance stops publishing them at once (they read the keys
 * from the database) and tokens they signed stop verifying. Both go into the audit log.
 * Undefined when there is no such tenant.
 */
export async function rotateTenantSigningKey(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  id: string,
  actor: Actor,
  {
    activateInSeconds = KEY_ACTIVATION_DELAY_SECONDS,
    revokePrevious = false,
  }: { activateInSeconds?: number; revokePrevious?: boolean } = {},
): Promise<TenantSigningKeyRotation | undefined> {
  if (revokePrevious && activateInSeconds !== 0) {
    throw new Error('revoking the previous keys needs the new one to sign at once (activateInSeconds: 0)');
  }
  const { kid, sealedFor } = await newTenantSigningKey(config);
  return withAdminAuthority(db, actor, async (trx) => {
    // The id as stored, whatever case it was typed in: the key is sealed for its row by that name.
    const tenantId = await passkeyTenantsQueries.lock(trx, id);
    if (!tenantId) return undefined;
    const activatesAt = await passkeyTenantKeysQueries.insert(
      trx,
      tenantId,
      kid,
      sealedFor(tenantId),
      activateInSeconds,
    );
    await passkeyTenantKeysQueries.retireOthersAt(trx, tenantId, kid, activatesAt);
    await auditQueries.record(trx, actor, 'passkey_tenant.rotate_signing_key', tenantId, {
      kid,
      activates_at: activatesAt.toISOString(),
    });
    let revokedKids: string[] = [];
    if (revokePrevious) {
      revokedKids = await passkeyTenantKeysQueries.deleteAllExcept(trx, tenantId, kid);
      await auditQueries.record(trx, actor, 'passkey_tenant.revoke_signing_keys', tenantId, {
        kids: revokedKids,
      });
    }
    return { tenantId, kid, activatesAt, revokedKids };
  });
}

/** A tenant's new signing key: its id as stored, the kid, when it signs, the kids it revoked. */
export interface TenantSigningKeyRotation {
  tenantId: TenantId;
  kid: string;
  activatesAt: Date;
  revokedKids: string[];
}

/**
 * A signing-key rotation as `sesame passkey-api rotate-signing-key --json` and the admin API
 * answer it: the kids removed only when the rotation revoked the earlier keys.
 */
export function tenantSigningKeyRotationView(
  { tenantId, kid, activatesAt, revokedKids }: TenantSigningKeyRotation,
  revokePrevious: boolean,
) {
  return {
    tenant_id: tenantId,
    kid,
    activates_at: activatesAt.toISOString(),
    ...(revokePrevious && { revoked_kids: revokedKids }),
  };
}

/**
 * Deletes tenants' keys whose grace after retirement has ended (no longer published), so no
 * private key outlives its use in the database and its backups; returns how many.
 */
export function removeUnpublishedTenantKeys(db: Db): Promise<number> {
  return passkeyTenantKeysQueries.deleteRetiredBefore(db, RETIRED_TENANT_KEY_GRACE_SECONDS);
}

/**
 * Changes some of the tenant's name, origins and WebAuthn settings (validated by
 * tenantSettingsChangeSchema and tenantSettingsChange); the next request uses them, on every
 * instance, as each reads the tenant from the database. Undefined when there is no such tenant.
 * @throws TenantValidationError when a new web origin is not on the tenant's RP ID.
 */
export async function changeTenantSettings(
  db: Db,
  id: string,
  change: TenantSettingsChange,
  actor: Actor,
): Promise<StoredTenant | undefined> {
  return withAdminAuthority(db, actor, async (trx) => {
    if (change.origins !== undefined) {
      // The RP ID never changes, so the tenant read here still has it when the update runs.
      const tenant = await passkeyTenantsQueries.findById(trx, id);
      if (!tenant) return undefined;
      checkOriginsOnRpId(tenant.rpId, change.origins);
    }
    const changed = await passkeyTenantsQueries.changeSettings(trx, id, change);
    if (changed) {
      await auditQueries.record(
        trx,
        actor,
        'passkey_tenant.update_settings',
        changed.id,
        settingsChangeView(change),
      );
    }
    return changed;
  });
}

/**
 * Deletes a tenant with its users, passkeys and pending challenges; its id as stored, or
 * undefined when there is no such tenant.
 */
export async function deleteTenant(db: Db, id: string, actor: Actor): Promise<TenantId | undefined> {
  return withAdminAuthority(db, actor, async (trx) => {
    // The id as stored, whatever case it was typed in: the pending challenges are bound to it.
    const tenantId = await passkeyTenantsQueries.lock(trx, id);
    if (!tenantId || !(await passkeyTenantsQueries.delete(trx, tenantId, tenantChallengeBinding(tenantId)))) {
      return undefined;
    }
    await auditQueries.record(trx, actor, 'passkey_tenant.delete', tenantId);
    return tenantId;
  });
}

/**
 * Whether a presented API key is this tenant's, compared in constant time: its current key,
 * or the one a rotation replaced while that still works.
 */
export function tenantKeyMatches(tenant: StoredTenant, presented: string | undefined): boolean {
  return secretMatchesAnyHash(presented, [tenant.apiKeyHash, tenant.previousApiKeyHash]);
}
