import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import type { Config } from '../config.js';
import { openAtRest, randomId, sealAtRest } from '../crypto.js';
import type { StoredTenant } from '../db/queries/passkeyTenants.js';

/**
 * The token proves one passkey ceremony to the app's backend, which checks it right away;
 * five minutes covers clock skew and a slow network, and a stolen token is soon useless.
 */
export const PASSKEY_TOKEN_TTL_SECONDS = 5 * 60;

const ALG = 'RS256';

/** A new RS256 key for a tenant: its kid and the private JWK sealed for storage. */
export async function newTenantSigningKey(
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<{ kid: string; sealed: string }> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true, modulusLength: 2048 });
  const kid = `pk-${randomId(12)}`;
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: ALG, use: 'sig' };
  return { kid, sealed: sealAtRest(JSON.stringify(jwk), config.keyEncryptionSecret) };
}

/** The tenant's public key as a JWK Set (RFC 7517 §5): only the public members leave. */
export function tenantJwks(
  tenant: StoredTenant,
  config: Pick<Config, 'keyEncryptionSecret'>,
): { keys: JWK[] } {
  const { kty, n, e } = JSON.parse(openAtRest(tenant.signingKey, config.keyEncryptionSecret)) as JWK;
  return { keys: [{ kty, n, e, kid: tenant.signingKid, alg: ALG, use: 'sig' }] };
}

// Imported private keys by kid: a kid names one key for ever, so entries never go stale.
const importedKeys = new Map<string, Awaited<ReturnType<typeof importJWK>>>();
const MAX_CACHED_KEYS = 1000;

async function signingKeyFor(tenant: StoredTenant, config: Pick<Config, 'keyEncryptionSecret'>) {
  const cached = importedKeys.get(tenant.signingKid);
  if (cached) return cached;
  const key = await importJWK(JSON.parse(openAtRest(tenant.signingKey, config.keyEncryptionSecret)), ALG);
  if (importedKeys.size >= MAX_CACHED_KEYS) importedKeys.clear();
  importedKeys.set(tenant.signingKid, key);
  return key;
}

/** The issuer of a tenant's tokens: its base URL under Sesame. */
export function tenantIssuer(config: Pick<Config, 'issuer'>, tenantId: string): string {
  return `${config.issuer}/passkey-api/${tenantId}`;
}

/**
 * The token the app's backend receives after a successful ceremony (as Hanko's passkey API
 * issues it): `sub` is the app's user id, `aud` the RP ID, `cred` the credential id; a
 * signed transaction adds `trans`, its identifier (Hanko's GenerateForTransaction).
 */
export async function signPasskeyToken(
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret'>,
  tenant: StoredTenant,
  claims: { userId: string; credentialId: string; transactionId?: string },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const extra = claims.transactionId === undefined ? {} : { trans: claims.transactionId };
  return new SignJWT({ cred: claims.credentialId, ...extra })
    .setProtectedHeader({ alg: ALG, kid: tenant.signingKid, typ: 'JWT' })
    .setIssuer(tenantIssuer(config, tenant.id))
    .setSubject(claims.userId)
    .setAudience([tenant.rpId])
    .setIssuedAt(now)
    .setExpirationTime(now + PASSKEY_TOKEN_TTL_SECONDS)
    .sign(await signingKeyFor(tenant, config));
}
