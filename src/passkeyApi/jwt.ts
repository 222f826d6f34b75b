import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import type { Config } from '../config.js';
import { openAtRest, randomId, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { passkeyTenantKeysQueries } from '../db/queries/passkeyTenantKeys.js';
import type { StoredTenant, TenantId } from '../db/queries/passkeyTenants.js';
import { sealContext } from '../sealContext.js';

/**
 * The token proves one passkey ceremony to the app's backend, which checks it right away;
 * five minutes covers clock skew and a slow network, and a stolen token is soon useless.
 */
export const PASSKEY_TOKEN_TTL_SECONDS = 5 * 60;

/**
 * How long a tenant's retired key stays in its JWKS: what it signed lives
 * {@link PASSKEY_TOKEN_TTL_SECONDS} and is checked as it arrives, so an hour on top covers
 * a slow back end and clocks that differ. Then the cleanup deletes it, private part included.
 */
export const RETIRED_TENANT_KEY_GRACE_SECONDS = PASSKEY_TOKEN_TTL_SECONDS + 3600;

const ALG = 'RS256';

/**
 * A new RS256 key for a tenant, made before the transaction that stores it (making it takes a
 * while): its kid, and its private JWK sealed for storage in the row of the tenant given,
 * which a new tenant only has inside that transaction.
 */
export async function newTenantSigningKey(
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<{ kid: string; sealedFor(tenantId: TenantId): string }> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true, modulusLength: 2048 });
  const kid = `pk-${randomId(12)}`;
  const jwk = JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: ALG, use: 'sig' });
  return {
    kid,
    sealedFor: (tenantId) =>
      sealAtRest(jwk, config.keyEncryptionSecret, sealContext.passkeyTenantKey(tenantId, kid)),
  };
}

// Keys by kid, opened once: a kid names one key for ever, so entries never go stale. Which
// kids a tenant publishes, and which one signs, is read from the database on each request, so
// a rotation or a revocation on any instance counts at once here, with or without change notices.
const MAX_CACHED_KEYS = 1000;
/** Imported private keys by kid. */
const importedKeys = new Map<string, Awaited<ReturnType<typeof importJWK>>>();
/** Public JWKs by tenant and kid: the JWKS decrypts a key only the first time it publishes it. */
const publicKeys = new Map<string, JWK>();

function remember<T>(cache: Map<string, T>, key: string, value: T): T {
  if (cache.size >= MAX_CACHED_KEYS) cache.clear();
  cache.set(key, value);
  return value;
}

/**
 * The tenant's published keys as a JWK Set (RFC 7517 §5): the one that signs, one waiting
 * for its turn, retired ones within their grace. Only the public members leave. The kids are
 * read each time; a key's public members are opened from its sealed row the first time only.
 */
export async function tenantJwks(
  db: Db,
  tenant: StoredTenant,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<{ keys: JWK[] }> {
  const kids = await passkeyTenantKeysQueries.publishedKids(db, tenant.id, RETIRED_TENANT_KEY_GRACE_SECONDS);
  // What the cache holds for them now: it may be emptied (full) before the answer is made.
  const found = new Map<string, JWK>();
  for (const kid of kids) {
    const jwk = publicKeys.get(`${tenant.id}:${kid}`);
    if (jwk) found.set(kid, jwk);
  }
  const unopened = kids.filter((kid) => !found.has(kid));
  for (const row of await passkeyTenantKeysQueries.sealed(db, tenant.id, unopened)) {
    const { kty, n, e } = JSON.parse(
      openAtRest(row.private_jwk, config, sealContext.passkeyTenantKey(tenant.id, row.kid)),
    ) as JWK;
    // Shared by every later answer: nobody may change it.
    const jwk = Object.freeze({ kty, n, e, kid: row.kid, alg: ALG, use: 'sig' });
    found.set(row.kid, remember(publicKeys, `${tenant.id}:${row.kid}`, jwk));
  }
  // A key revoked between the two reads is no longer published: it is left out.
  return { keys: kids.flatMap((kid) => found.get(kid) ?? []) };
}

/** The key that signs the tenant's tokens now (the database says which), imported once. */
async function signingKeyFor(
  db: Db,
  tenant: StoredTenant,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
) {
  const stored = await passkeyTenantKeysQueries.signing(db, tenant.id);
  if (!stored) throw new Error(`passkey API tenant ${tenant.id} has no signing key`);
  let key = importedKeys.get(stored.kid);
  if (!key) {
    key = await importJWK(
      JSON.parse(openAtRest(stored.private_jwk, config, sealContext.passkeyTenantKey(tenant.id, stored.kid))),
      ALG,
    );
    remember(importedKeys, stored.kid, key);
  }
  return { kid: stored.kid, key };
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
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  tenant: StoredTenant,
  claims: { userId: string; credentialId: string; transactionId?: string },
): Promise<string> {
  const { kid, key } = await signingKeyFor(db, tenant, config);
  const now = Math.floor(Date.now() / 1000);
  const extra = claims.transactionId === undefined ? {} : { trans: claims.transactionId };
  return new SignJWT({ cred: claims.credentialId, ...extra })
    .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
    .setIssuer(tenantIssuer(config, tenant.id))
    .setSubject(claims.userId)
    .setAudience([tenant.rpId])
    .setIssuedAt(now)
    .setExpirationTime(now + PASSKEY_TOKEN_TTL_SECONDS)
    .sign(key);
}
