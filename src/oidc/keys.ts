import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Config } from '../config.js';
import { openAtRest, randomId, randomSecret, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { appSecretsQueries } from '../db/queries/appSecrets.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { signingKeysQueries } from '../db/queries/signingKeys.js';
import { TTL } from './ttl.js';

/** Algorithms Sesame signs with; ES256 first, so it is the default where a client does not choose. */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;

/**
 * A retired key stays in the JWKS as long as anything it signed can still be presented:
 * the longest-lived signed artefact is an ID token; one day of margin on top.
 */
const RETIRED_KEY_GRACE_SECONDS = TTL.IdToken + 24 * 3600;

async function makeKey(alg: string): Promise<{ kid: string; jwk: JWK }> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' && { modulusLength: 2048 }),
  });
  const kid = `${alg.toLowerCase()}-${randomId(9)}`;
  return { kid, jwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' } };
}

async function addKey(db: Db, alg: string, config: Pick<Config, 'keyEncryptionSecret'>): Promise<string> {
  const { kid, jwk } = await makeKey(alg);
  await signingKeysQueries.insert(db, kid, alg, sealAtRest(JSON.stringify(jwk), config.keyEncryptionSecret));
  return kid;
}

/**
 * Creates a signing key for every algorithm that has none yet (first start). Instances
 * starting together on one database take turns, so they end up with the same keys.
 */
export async function ensureSigningKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<string[]> {
  const have = new Set(await signingKeysQueries.activeAlgs(db));
  if (SIGNING_ALGS.every((alg) => have.has(alg))) return [];
  return db.transaction().execute(async (trx) => {
    await signingKeysQueries.lockKeyCreation(trx);
    const haveNow = new Set(await signingKeysQueries.activeAlgs(trx));
    const created: string[] = [];
    for (const alg of SIGNING_ALGS) {
      if (!haveNow.has(alg)) created.push(await addKey(trx, alg, config));
    }
    return created;
  });
}

/**
 * Adds a new key per algorithm and retires the previous ones, recording who did it in the
 * audit log. Retired keys stay published for {@link RETIRED_KEY_GRACE_SECONDS}, so tokens
 * they signed still verify.
 */
export async function rotateSigningKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
  actor: Actor,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await signingKeysQueries.lockKeyCreation(trx);
    const kids: string[] = [];
    for (const alg of SIGNING_ALGS) {
      const kid = await addKey(trx, alg, config);
      await signingKeysQueries.retireOthers(trx, alg, kid);
      kids.push(kid);
    }
    await auditQueries.record(trx, actor, 'signing_keys.rotate', null, { kids });
    return kids;
  });
}

/**
 * The private JWKS for the provider. Newest keys first: oidc-provider signs with the first
 * key that fits the algorithm, so the newest active key signs and older ones only verify.
 */
export async function loadSigningJwks(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<{ keys: JWK[] }> {
  const rows = await signingKeysQueries.listPublished(db, RETIRED_KEY_GRACE_SECONDS);
  const active = rows.filter((r) => !r.retired_at);
  const retired = rows.filter((r) => r.retired_at);
  return {
    keys: [...active, ...retired].map((r) =>
      JSON.parse(openAtRest(r.private_jwk, config.keyEncryptionSecret)),
    ),
  };
}

/** Keys that sign cookies; made once and shared by every instance through the database. */
export async function loadCookieKeys(db: Db, config: Pick<Config, 'keyEncryptionSecret'>): Promise<string[]> {
  const stored = await appSecretsQueries.getOrCreate(db, 'cookie_keys', () =>
    sealAtRest(JSON.stringify([randomSecret()]), config.keyEncryptionSecret),
  );
  return JSON.parse(openAtRest(stored, config.keyEncryptionSecret));
}
