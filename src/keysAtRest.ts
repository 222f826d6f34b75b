import { type Config, ConfigError } from './config.js';
import { isSealed, openAtRest, sealAtRest } from './crypto.js';
import type { Db } from './db/connect.js';
import { type KeyStore, keysAtRestQueries, type StoredKey } from './db/queries/keysAtRest.js';
import type { Logger } from './logger.js';

/**
 * Refuses a KEY_ENCRYPTION_SECRET that cannot read the stored keys: unset while keys are
 * encrypted, or a different secret from the one they were encrypted with. Starting anyway
 * would fail later, on the first token or cookie, or leave keys sealed under two secrets.
 */
export async function checkKeyEncryptionSecret(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<void> {
  assertSecretReadsKeys(await keysAtRestQueries.listAll(db), config.keyEncryptionSecret);
}

/**
 * For a command beside servers that share the database: refuses a secret that cannot read
 * the stored keys (as {@link checkKeyEncryptionSecret}), then says which secret the command
 * writes keys with, since the servers read what it writes. With the secret set but every
 * stored key in plain text, the servers run without it (a server with it seals every key at
 * its start), so a key sealed now would be one they cannot open: they would go on with the
 * keys they have (a revoked cookie key still signing) and refuse to start again. Such a key
 * is written in plain text, as theirs are, and sealed with the others by the first server
 * started with the secret. One read of the keys serves both.
 */
export async function secretForCommands(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret'>,
): Promise<string | undefined> {
  const secret = config.keyEncryptionSecret;
  const keys = await keysAtRestQueries.listAll(db);
  assertSecretReadsKeys(keys, secret);
  if (!secret) return undefined;
  return keys.length > 0 && !keys.some((key) => isSealed(key.value)) ? undefined : secret;
}

function assertSecretReadsKeys(keys: StoredKey[], secret: string | undefined): void {
  const sealed = keys.filter((key) => isSealed(key.value));
  if (sealed.length === 0) return;
  if (!secret) {
    throw new ConfigError(
      `KEY_ENCRYPTION_SECRET is not set, but ${sealed.length} stored keys are encrypted: set the secret they were encrypted with`,
    );
  }
  const unreadable = sealed.filter((key) => {
    try {
      openAtRest(key.value, secret);
      return false;
    } catch {
      return true;
    }
  });
  if (unreadable.length) {
    throw new ConfigError(
      `KEY_ENCRYPTION_SECRET does not decrypt the stored keys (${unreadable.length} of ${sealed.length} encrypted keys): set the secret they were encrypted with`,
    );
  }
}

/**
 * At start: checks the secret against the stored keys (see {@link checkKeyEncryptionSecret}),
 * then, with a secret set, encrypts every key still stored in plain text (written before the
 * secret was set) and says how many. Without a secret on an https issuer, i.e. in
 * production, it warns that the private keys are readable by anyone who reads the database.
 */
export async function sealKeysAtRest(
  db: Db,
  config: Pick<Config, 'keyEncryptionSecret' | 'issuer'>,
  log: Logger,
): Promise<void> {
  const secret = config.keyEncryptionSecret;
  const keys = await keysAtRestQueries.listAll(db);
  assertSecretReadsKeys(keys, secret);
  if (!secret) {
    if (config.issuer.startsWith('https:')) {
      log.warn(
        'KEY_ENCRYPTION_SECRET is not set: signing and cookie keys are stored unencrypted, readable by anyone who can read the database or its backups',
      );
    }
    return;
  }
  const sealed: Record<KeyStore, number> = { signing_keys: 0, cookie_keys: 0, passkey_tenant_keys: 0 };
  for (const key of keys.filter((k) => !isSealed(k.value))) {
    if (await keysAtRestQueries.replace(db, key, sealAtRest(key.value, secret))) sealed[key.store]++;
  }
  if (Object.values(sealed).some((count) => count > 0)) {
    log.info('encrypted keys stored in plain text with KEY_ENCRYPTION_SECRET', sealed);
  }
}
