import type { Config } from '../config.js';
import { openAtRest, randomSecret, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type AppSecretRead, appSecretsQueries } from '../db/queries/appSecrets.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { TTL } from './ttl.js';

/** The app_secrets row that holds the keys cookies are signed with. */
export const COOKIE_KEYS_SECRET = 'cookie_keys';

/**
 * How long a replaced cookie key still verifies. The signed cookie that lives longest and
 * matters is the provider's session cookie: 14 days (TTL.Session), set again under the
 * current key each time the session is used at the provider, so once this has passed every
 * session alive at the rotation has been signed anew or has ended. The others are shorter: an
 * interaction's and the account pages' return (30 minutes), the sign-out confirmation (a
 * minute), the form token's cookie (the browser's session). The remembered language
 * (sesame.lang, 400 days) is only a preference: signed by a dropped key it reads as unset
 * until the next sign-in sets it again. A day of margin on top.
 */
export const COOKIE_KEY_GRACE_SECONDS = TTL.Session + 24 * 3600;

/**
 * A stored key. A plain string signs: the only form before keys were rotated, so a stored
 * list of strings reads as it always did. A replaced key carries when it was replaced, and
 * verifies for {@link COOKIE_KEY_GRACE_SECONDS} after that.
 */
type StoredCookieKey = string | { key: string; retired_at: string };

/** The keys that verify now, the signing one first, and when that changes by itself. */
export interface CookieKeys {
  keys: string[];
  /** Milliseconds until a replaced key's grace ends; undefined when none is ahead. */
  nextChangeInMs?: number;
}

/** When a replaced key stops verifying, in ms since the epoch; never for a current key. */
function graceEnd(entry: StoredCookieKey): number {
  return typeof entry === 'string'
    ? Infinity
    : Date.parse(entry.retired_at) + COOKIE_KEY_GRACE_SECONDS * 1000;
}

function keyOf(entry: StoredCookieKey): string {
  return typeof entry === 'string' ? entry : entry.key;
}

function isStoredCookieKey(entry: unknown): entry is StoredCookieKey {
  if (typeof entry === 'string') return entry.length > 0;
  if (typeof entry !== 'object' || entry === null) return false;
  const { key, retired_at } = entry as Record<string, unknown>;
  return (
    typeof key === 'string' &&
    key.length > 0 &&
    typeof retired_at === 'string' &&
    !Number.isNaN(Date.parse(retired_at))
  );
}

function openStored(stored: string, config: Pick<Config, 'keyEncryptionSecret'>): StoredCookieKey[] {
  const entries: unknown = JSON.parse(openAtRest(stored, config.keyEncryptionSecret));
  if (!Array.isArray(entries) || !entries.every(isStoredCookieKey))
    throw new Error('the stored cookie keys are not a list of keys');
  return entries;
}

function sealStored(entries: StoredCookieKey[], config: Pick<Config, 'keyEncryptionSecret'>): string {
  return sealAtRest(JSON.stringify(entries), config.keyEncryptionSecret);
}

/** The first key ever: made once and shared by every instance through the database. */
function firstKeys(db: Db, config: Pick<Config, 'keyEncryptionSecret'>): Promise<AppSecretRead> {
  return appSecretsQueries.getOrCreate(db, COOKIE_KEYS_SECRET, () => sealStored([randomSecret()], config));
}

/**
 * Keys that sign and verify cookies, made on first use. Current keys come first (the first
 * signs), then replaced ones, newest first, while their grace lasts: a key past it no longer
 * verifies, whether or not the cleanup has deleted it yet.
 */
export async function loadCookieKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<CookieKeys> {
  const { value, now } =
    (await appSecretsQueries.read(db, COOKIE_KEYS_SECRET)) ?? (await firstKeys(db, config));
  const entries = openStored(value, config).filter((entry) => graceEnd(entry) > now.getTime());
  const current = entries.filter((entry) => typeof entry === 'string');
  const replaced = entries
    .filter((entry) => typeof entry !== 'string')
    .sort((a, b) => graceEnd(b) - graceEnd(a));
  if (current.length === 0) throw new Error('no current cookie key is stored');
  const ends = replaced.map(graceEnd);
  return {
    keys: [...current, ...replaced].map(keyOf),
    nextChangeInMs: ends.length ? Math.max(Math.min(...ends) - now.getTime(), 0) : undefined,
  };
}

/** What a rotation did. */
export interface CookieKeyRotation {
  /** Earlier keys that still verify, and until when (null when none does). */
  previousKeys: number;
  previousKeysVerifyUntil: Date | null;
  /** Earlier keys deleted: every one with `revokePrevious`, else those past their grace. */
  removedKeys: number;
}

/**
 * Makes a new key that signs every cookie from now on. The keys it replaces go on verifying
 * for {@link COOKIE_KEY_GRACE_SECONDS}, so nobody is signed out; with `revokePrevious` they
 * are deleted at once (a key thought exposed): every browser is signed out of Sesame and
 * sign-ins in progress start again. Keys past their grace are deleted either way. Running
 * servers pick the change up from its row notice. Who did it goes into the audit log.
 */
export async function rotateCookieKey(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
  actor: Actor,
  { revokePrevious = false }: { revokePrevious?: boolean } = {},
): Promise<CookieKeyRotation> {
  return db.transaction().execute(async (trx) => {
    await firstKeys(trx, config);
    const { value, now } = (await appSecretsQueries.read(trx, COOKIE_KEYS_SECRET, { forUpdate: true }))!;
    const stored = openStored(value, config);
    const retiredAt = now.toISOString();
    const previous = revokePrevious
      ? []
      : stored
          .filter((entry) => graceEnd(entry) > now.getTime())
          .map((entry) => (typeof entry === 'string' ? { key: entry, retired_at: retiredAt } : entry));
    await appSecretsQueries.replace(
      trx,
      COOKIE_KEYS_SECRET,
      sealStored([randomSecret(), ...previous], config),
    );
    const rotation: CookieKeyRotation = {
      previousKeys: previous.length,
      previousKeysVerifyUntil: previous.length ? new Date(Math.max(...previous.map(graceEnd))) : null,
      removedKeys: stored.length - previous.length,
    };
    await auditQueries.record(
      trx,
      actor,
      revokePrevious ? 'cookie_keys.revoke' : 'cookie_keys.rotate',
      null,
      {
        previous_keys: rotation.previousKeys,
        previous_keys_verify_until: rotation.previousKeysVerifyUntil?.toISOString() ?? null,
        removed_keys: rotation.removedKeys,
      },
    );
    return rotation;
  });
}

/**
 * Deletes the replaced keys whose grace has ended, so no key outlives its use in the
 * database and its backups; returns how many. The change is announced like any row change.
 */
export async function removeExpiredCookieKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const read = await appSecretsQueries.read(trx, COOKIE_KEYS_SECRET, { forUpdate: true });
    if (!read) return 0;
    const stored = openStored(read.value, config);
    const kept = stored.filter((entry) => graceEnd(entry) > read.now.getTime());
    if (kept.length === stored.length) return 0;
    await appSecretsQueries.replace(trx, COOKIE_KEYS_SECRET, sealStored(kept, config));
    return stored.length - kept.length;
  });
}
