import { withAdminAuthority } from '../accounts/adminAuthority.js';
import type { Config } from '../config.js';
import { openAtRest, randomSecret, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type AppSecretRead, appSecretsQueries } from '../db/queries/appSecrets.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { sealContext } from '../sealContext.js';
import { TTL } from './ttl.js';

/** The app_secrets row that holds the keys cookies are signed with. */
export const COOKIE_KEYS_SECRET = 'cookie_keys';
/** What the row's value is sealed for (see sealAtRest). */
const SEALED_FOR = sealContext.appSecret(COOKIE_KEYS_SECRET);

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
 * How long a new cookie key only verifies before it signs. Every instance must know it before
 * any signs with it: one whose change notices stall (up to 20 s, rowChangeListener) would
 * refuse a cookie another instance signed anew with it, and sign the person out for good.
 */
export const COOKIE_KEY_ACTIVATION_SECONDS = 60;

/**
 * A stored key. A plain string signs: the only form before keys were rotated, so a stored
 * list of strings reads as it always did. A new key carries when it starts signing
 * (`activates_at`), and verifies until then. A replaced key carries when it stops signing
 * (`retired_at`, the new key's activation), and verifies for {@link COOKIE_KEY_GRACE_SECONDS}
 * after that.
 */
type StoredCookieKey = string | { key: string; retired_at: string } | { key: string; activates_at: string };

/** The keys that verify now, the signing one first, and when that changes by itself. */
export interface CookieKeys {
  keys: string[];
  /** Milliseconds until a replaced key's grace ends; undefined when none is ahead. */
  nextChangeInMs?: number;
}

/** When a replaced key stops verifying, in ms since the epoch; never for a current or new key. */
function graceEnd(entry: StoredCookieKey): number {
  return typeof entry === 'string' || !('retired_at' in entry)
    ? Infinity
    : Date.parse(entry.retired_at) + COOKIE_KEY_GRACE_SECONDS * 1000;
}

/** When a key signs (ms since the epoch): from `since` (-Infinity: always) until `until`. */
function signingSpan(entry: StoredCookieKey): { since: number; until: number } {
  if (typeof entry === 'string') return { since: -Infinity, until: Infinity };
  if ('activates_at' in entry) return { since: Date.parse(entry.activates_at), until: Infinity };
  return { since: -Infinity, until: Date.parse(entry.retired_at) };
}

function keyOf(entry: StoredCookieKey): string {
  return typeof entry === 'string' ? entry : entry.key;
}

function isStoredCookieKey(entry: unknown): entry is StoredCookieKey {
  if (typeof entry === 'string') return entry.length > 0;
  if (typeof entry !== 'object' || entry === null) return false;
  const { key, retired_at, activates_at } = entry as Record<string, unknown>;
  const when = retired_at ?? activates_at;
  return (
    typeof key === 'string' &&
    key.length > 0 &&
    (retired_at === undefined) !== (activates_at === undefined) &&
    typeof when === 'string' &&
    !Number.isNaN(Date.parse(when))
  );
}

function openStored(
  stored: string,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): StoredCookieKey[] {
  const entries: unknown = JSON.parse(openAtRest(stored, config, SEALED_FOR));
  if (!Array.isArray(entries) || !entries.every(isStoredCookieKey))
    throw new Error('the stored cookie keys are not a list of keys');
  return entries;
}

function sealStored(
  entries: StoredCookieKey[],
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): string {
  return sealAtRest(JSON.stringify(entries), config.keyEncryptionSecret, SEALED_FOR);
}

/** The first key ever: made once and shared by every instance through the database. */
function firstKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<AppSecretRead> {
  return appSecretsQueries.getOrCreate(db, COOKIE_KEYS_SECRET, () => sealStored([randomSecret()], config));
}

/**
 * Keys that sign and verify cookies, made on first use. The key that signs now comes first
 * (the newest of those that sign), then the others that verify: a new one not signing yet,
 * replaced ones, newest first, while their grace lasts: a key past it no longer verifies,
 * whether or not the cleanup has deleted it yet. The database's clock decides, so every
 * instance agrees on which key signs.
 */
export async function loadCookieKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
): Promise<CookieKeys> {
  const { value, now } =
    (await appSecretsQueries.read(db, COOKIE_KEYS_SECRET)) ?? (await firstKeys(db, config));
  const at = now.getTime();
  const entries = openStored(value, config).filter((entry) => graceEnd(entry) > at);
  const signs = (entry: StoredCookieKey) => {
    const { since, until } = signingSpan(entry);
    return since <= at && at < until;
  };
  // The newest signing key first: the one that started signing last (a new key once active).
  const startOf = (entry: StoredCookieKey) => Math.max(signingSpan(entry).since, -8.64e15);
  const signing = entries.filter(signs).sort((a, b) => startOf(b) - startOf(a));
  const verifying = entries.filter((entry) => !signs(entry)).sort((a, b) => graceEnd(b) - graceEnd(a));
  if (signing.length === 0) throw new Error('no current cookie key is stored');
  const ahead = entries
    .flatMap((entry) => {
      const { since, until } = signingSpan(entry);
      return [since, until, graceEnd(entry)];
    })
    .filter((when) => Number.isFinite(when) && when > at);
  return {
    keys: [...signing, ...verifying].map(keyOf),
    nextChangeInMs: ahead.length ? Math.max(Math.min(...ahead) - at, 0) : undefined,
  };
}

/** What a rotation did. */
export interface CookieKeyRotation {
  /** When the new key starts signing. */
  activatesAt: Date;
  /** Earlier keys that still verify, and until when (null when none does). */
  previousKeys: number;
  previousKeysVerifyUntil: Date | null;
  /** Earlier keys deleted: every one with `revokePrevious`, else those past their grace. */
  removedKeys: number;
}

/** A rotation as `sesame keys rotate-cookie-key --json` and the admin API answer it. */
export function cookieKeyRotationView(rotation: CookieKeyRotation) {
  return {
    signs_from: rotation.activatesAt.toISOString(),
    previous_keys: rotation.previousKeys,
    previous_keys_verify_until: rotation.previousKeysVerifyUntil?.toISOString() ?? null,
    removed_keys: rotation.removedKeys,
  };
}

/**
 * Makes a new key that verifies at once and signs every cookie from
 * {@link COOKIE_KEY_ACTIVATION_SECONDS} on, when every instance knows it. The keys it
 * replaces sign until then and go on verifying for {@link COOKIE_KEY_GRACE_SECONDS} after,
 * so nobody is signed out; with `revokePrevious` the new key signs at once and the others are
 * deleted (a key thought exposed): every browser is signed out of Sesame and sign-ins in
 * progress start again. Keys past their grace are deleted either way. Running
 * servers pick the change up from its row notice. Who did it goes into the audit log.
 */
export async function rotateCookieKey(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  actor: Actor,
  { revokePrevious = false }: { revokePrevious?: boolean } = {},
): Promise<CookieKeyRotation> {
  return withAdminAuthority(db, actor, async (trx) => {
    await firstKeys(trx, config);
    const { value, now } = (await appSecretsQueries.read(trx, COOKIE_KEYS_SECRET, { forUpdate: true }))!;
    const stored = openStored(value, config);
    const activatesAt = new Date(now.getTime() + (revokePrevious ? 0 : COOKIE_KEY_ACTIVATION_SECONDS * 1000));
    const retiredAt = activatesAt.toISOString();
    // Every key still verifying is replaced: those signing stop when the new one starts; one
    // still waiting to sign (a rotation less than a minute ago) signed nothing and goes.
    const previous = revokePrevious
      ? []
      : stored
          .filter((entry) => graceEnd(entry) > now.getTime())
          .filter((entry) => signingSpan(entry).since <= now.getTime())
          .map((entry) =>
            typeof entry === 'string' || 'activates_at' in entry
              ? { key: keyOf(entry), retired_at: retiredAt }
              : entry,
          );
    const next: StoredCookieKey = revokePrevious
      ? randomSecret()
      : { key: randomSecret(), activates_at: activatesAt.toISOString() };
    await appSecretsQueries.replace(trx, COOKIE_KEYS_SECRET, sealStored([next, ...previous], config));
    const rotation: CookieKeyRotation = {
      activatesAt,
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
  config: Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
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
