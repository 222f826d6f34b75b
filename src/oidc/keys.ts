import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { withAdminAuthority } from '../accounts/adminAuthority.js';
import type { Config } from '../config.js';
import { openAtRest, randomId, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { signingKeysQueries } from '../db/queries/signingKeys.js';
import { sealContext } from '../sealContext.js';
import { TTL } from './ttl.js';

/** Algorithms Sesame signs with; ES256 first, so it is the default where a client does not choose. */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;

/**
 * A retired key stays in the JWKS as long as anything it signed can still be presented.
 * That is not an ID token's hour: an app keeps the ID token of a sign-in and presents it as
 * `id_token_hint` when the person signs out (or asks for a silent sign-in), and the provider
 * accepts an expired hint but not one whose key it no longer has, so the sign-out would fail
 * with "could not validate id_token_hint" and leave the person signed in. An app holds that
 * token while it can keep the person signed in without Sesame: as long as a refresh token or
 * a Sesame session lives, whichever is longer; the ID token's own lifetime and a day of
 * margin on top. After that the key is deleted (private part included) by the cleanup.
 */
export const RETIRED_KEY_GRACE_SECONDS = Math.max(TTL.RefreshToken, TTL.Session) + TTL.IdToken + 24 * 3600;

async function makeKey(alg: string): Promise<{ kid: string; jwk: JWK }> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' && { modulusLength: 2048 }),
  });
  const kid = `${alg.toLowerCase()}-${randomId(9)}`;
  return { kid, jwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' } };
}

async function addKey(
  db: Db,
  alg: string,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  activateInSeconds: number,
): Promise<{ kid: string; activatesAt: Date }> {
  const { kid, jwk } = await makeKey(alg);
  const sealed = sealAtRest(JSON.stringify(jwk), config.keyEncryptionSecret, sealContext.signingKey(kid));
  return { kid, activatesAt: await signingKeysQueries.insert(db, kid, alg, sealed, activateInSeconds) };
}

/**
 * Creates a signing key for every algorithm that has none yet (first start). Instances
 * starting together on one database take turns, so they end up with the same keys. Nobody
 * holds an older JWKS yet, so these sign at once.
 */
export async function ensureSigningKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<string[]> {
  const have = new Set(await signingKeysQueries.activeAlgs(db));
  if (SIGNING_ALGS.every((alg) => have.has(alg))) return [];
  return db.transaction().execute(async (trx) => {
    await signingKeysQueries.lockKeyCreation(trx);
    const haveNow = new Set(await signingKeysQueries.activeAlgs(trx));
    const created: string[] = [];
    for (const alg of SIGNING_ALGS) {
      if (!haveNow.has(alg)) created.push((await addKey(trx, alg, config, 0)).kid);
    }
    return created;
  });
}

/**
 * How long a new key is published before it signs by default: apps cache the JWKS (jose and
 * openid-client for minutes, some libraries for up to an hour), and a token signed by a key
 * their cached copy lacks fails until they refetch.
 */
export const KEY_ACTIVATION_DELAY_SECONDS = 3600;

/**
 * The longest delay the CLI's `--activate-in` and the admin API's `activate_in` take for a new
 * key: a year is past any rotation's need, and a delay far beyond it makes a time the database
 * cannot hold (an error, not a refusal that names the flag or field).
 */
export const MAX_KEY_ACTIVATION_DELAY_SECONDS = 365 * 24 * 3600;

/**
 * Adds a new key per algorithm, published at once and signing after `activateInSeconds`;
 * the current keys sign until then and stay published for {@link RETIRED_KEY_GRACE_SECONDS}
 * more, so tokens they signed still verify. `activateInSeconds: 0` switches at once (a key
 * thought exposed). `revokePrevious` (only with `activateInSeconds: 0`: otherwise nothing
 * could sign until the new keys activate) deletes every earlier key in the same transaction,
 * so running servers stop publishing and signing with them as soon as the change is
 * announced; what they signed stops verifying. Who did it goes into the audit log.
 */
export async function rotateSigningKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  actor: Actor,
  {
    activateInSeconds = KEY_ACTIVATION_DELAY_SECONDS,
    revokePrevious = false,
  }: { activateInSeconds?: number; revokePrevious?: boolean } = {},
): Promise<{ kids: string[]; activatesAt: Date; revokedKids: string[] }> {
  if (revokePrevious && activateInSeconds !== 0) {
    throw new Error('revoking the previous keys needs the new ones to sign at once (activateInSeconds: 0)');
  }
  return withAdminAuthority(db, actor, async (trx) => {
    await signingKeysQueries.lockKeyCreation(trx);
    const kids: string[] = [];
    let activatesAt = new Date();
    for (const alg of SIGNING_ALGS) {
      const added = await addKey(trx, alg, config, activateInSeconds);
      await signingKeysQueries.retireOthersAt(trx, alg, added.kid, added.activatesAt);
      kids.push(added.kid);
      activatesAt = added.activatesAt;
    }
    await auditQueries.record(trx, actor, 'signing_keys.rotate', null, {
      kids,
      activates_at: activatesAt.toISOString(),
    });
    let revokedKids: string[] = [];
    if (revokePrevious) {
      revokedKids = await signingKeysQueries.deleteAllExcept(trx, kids);
      await auditQueries.record(trx, actor, 'signing_keys.revoke', null, { kids: revokedKids });
    }
    return { kids, activatesAt, revokedKids };
  });
}

/**
 * A rotation as `sesame keys rotate --json` prints it and the admin API answers it: the new
 * keys' ids, when they sign, and with `revokePrevious` the ids of the keys deleted.
 */
export function signingKeyRotationView(
  { kids, activatesAt, revokedKids }: { kids: string[]; activatesAt: Date; revokedKids: string[] },
  revokePrevious: boolean,
) {
  return {
    kids,
    activates_at: activatesAt.toISOString(),
    ...(revokePrevious && { revoked_kids: revokedKids }),
  };
}

/** The provider's private JWKS, and when the key that signs next changes. */
export interface SigningJwks {
  jwks: { keys: JWK[] };
  /**
   * Milliseconds until what is published or signs changes by itself: a pending key starts
   * signing, or a retired key's grace ends; undefined when neither is ahead.
   */
  nextChangeInMs?: number;
}

/**
 * Every published key, signing keys first: oidc-provider signs with the first key that fits
 * the algorithm, so the current key of each algorithm signs while pending and retired ones
 * are only published (for verifying, and for caching ahead of their turn).
 */
export async function loadSigningJwks(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<SigningJwks> {
  const rows = await signingKeysQueries.listPublished(db, RETIRED_KEY_GRACE_SECONDS);
  const ordered = [...rows.filter((r) => r.signing), ...rows.filter((r) => !r.signing)];
  const changes = rows.flatMap((r) => [
    ...(r.activates_in_seconds > 0 ? [r.activates_in_seconds] : []),
    ...(r.unpublished_in_seconds !== null ? [Math.max(r.unpublished_in_seconds, 0)] : []),
  ]);
  return {
    jwks: {
      keys: ordered.map((r) => JSON.parse(openAtRest(r.private_jwk, config, sealContext.signingKey(r.kid)))),
    },
    nextChangeInMs: changes.length ? Math.ceil(Math.min(...changes) * 1000) : undefined,
  };
}

/**
 * Deletes the keys whose grace after retirement has ended (no longer published: see
 * {@link loadSigningJwks}), so no private key outlives its use in the database and its
 * backups; returns how many. The deletion is announced like any row change.
 */
export async function removeUnpublishedSigningKeys(db: Db): Promise<number> {
  return signingKeysQueries.deleteRetiredBefore(db, RETIRED_KEY_GRACE_SECONDS);
}
