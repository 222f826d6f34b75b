import { withAdminAuthority } from './accounts/adminAuthority.js';
import { type Config, ConfigError } from './config.js';
import { isSealed, openSealed, sealAtRest } from './crypto.js';
import type { Db } from './db/connect.js';
import { type Actor, auditQueries } from './db/queries/audit.js';
import { type KeyStore, keysAtRestQueries, type StoredKey } from './db/queries/keysAtRest.js';
import { mailOutboxQueries } from './db/queries/mailOutbox.js';
import type { Logger } from './logger.js';
import { sealContext } from './sealContext.js';

/** KEY_ENCRYPTION_SECRET, and the secret it replaces while the keys are re-sealed. */
type KeySecrets = Pick<Config, 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>;

/**
 * Refuses a KEY_ENCRYPTION_SECRET that cannot read the stored keys: unset while keys are
 * encrypted, or a different secret from the one they were encrypted with (and
 * KEY_ENCRYPTION_SECRET_PREVIOUS, when set, is not that one either). Starting anyway would
 * fail later, on the first token or cookie, or leave keys sealed under secrets nobody has.
 */
export async function checkKeyEncryptionSecret(db: Db, config: KeySecrets): Promise<void> {
  assertSecretsReadKeys(await keysAtRestQueries.listAll(db), config);
}

/**
 * For a command beside servers that share the database: refuses secrets that cannot read
 * the stored keys (as {@link checkKeyEncryptionSecret}), then says which secret the command
 * writes keys with, since the servers read what it writes. With the secret set but every
 * stored key in plain text, the servers run without it (a server with it seals every key at
 * its start), so a key sealed now would be one they cannot open: they would go on with the
 * keys they have (a revoked cookie key still signing) and refuse to start again. Such a key
 * is written in plain text, as theirs are, and sealed with the others by the first server
 * started with the secret. One read of the keys serves both.
 */
export async function secretForCommands(db: Db, config: KeySecrets): Promise<string | undefined> {
  const secret = config.keyEncryptionSecret;
  const keys = await keysAtRestQueries.listAll(db);
  assertSecretsReadKeys(keys, config);
  if (!secret) return undefined;
  return keys.length > 0 && !keys.some((key) => isSealed(key.value)) ? undefined : secret;
}

/** The row a stored key is sealed for (see sealContext). */
function sealedFor(key: StoredKey): string {
  if (key.store === 'passkey_tenant_keys') return sealContext.passkeyTenantKey(key.tenantId, key.id);
  return key.store === 'signing_keys' ? sealContext.signingKey(key.id) : sealContext.appSecret(key.id);
}

/**
 * A stored value opened: in plain text, or with the secret that opens it (`unbound`: the
 * current one, in the envelope of a Sesame before values were bound to their rows);
 * undefined when neither does.
 * @throws SealedElsewhereError for a value sealed for another row.
 */
function openStored(stored: string, secrets: KeySecrets, context: string) {
  if (!isSealed(stored)) return { plaintext: stored, by: 'plain' as const };
  const opened = openSealed(stored, secrets, context);
  if (!opened) return undefined;
  const by = opened.by === 'current' && !opened.bound ? ('unbound' as const) : opened.by;
  return { plaintext: opened.plaintext, by };
}

type OpenedKey = { key: StoredKey; plaintext: string };

/**
 * The stored keys by how they are sealed: in plain text, with the current secret (bound to
 * their rows, or not yet), with the previous one, with neither.
 */
function sealedBy(keys: StoredKey[], secrets: KeySecrets) {
  const sorted = {
    plain: [] as OpenedKey[],
    current: [] as OpenedKey[],
    unbound: [] as OpenedKey[],
    previous: [] as OpenedKey[],
  };
  const unreadable: StoredKey[] = [];
  for (const key of keys) {
    const opened = openStored(key.value, secrets, sealedFor(key));
    if (opened) sorted[opened.by].push({ key, plaintext: opened.plaintext });
    else unreadable.push(key);
  }
  return { ...sorted, unreadable };
}

/** @returns the keys sorted by how they are sealed; throws the one-line ConfigError when some key opens with neither secret. */
function assertSecretsReadKeys(keys: StoredKey[], secrets: KeySecrets): ReturnType<typeof sealedBy> {
  const sorted = sealedBy(keys, secrets);
  const sealed = keys.length - sorted.plain.length;
  if (sealed > 0 && !secrets.keyEncryptionSecret) {
    throw new ConfigError(
      `KEY_ENCRYPTION_SECRET is not set, but ${sealed} stored keys are encrypted: set the secret they were encrypted with`,
    );
  }
  if (sorted.unreadable.length) {
    const which = secrets.keyEncryptionSecretPrevious
      ? 'neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS decrypts'
      : 'KEY_ENCRYPTION_SECRET does not decrypt';
    throw new ConfigError(
      `${which} the stored keys (${sorted.unreadable.length} of ${sealed} encrypted keys): set the secret they were encrypted with`,
    );
  }
  return sorted;
}

const noKeys = (): Record<KeyStore, number> => ({ signing_keys: 0, cookie_keys: 0, passkey_tenant_keys: 0 });

/** Seals each key with the secret, if it is still as read; counts those written, by table. */
async function sealEach(db: Db, keys: OpenedKey[], secret: string): Promise<Record<KeyStore, number>> {
  const counts = noKeys();
  for (const { key, plaintext } of keys) {
    if (await keysAtRestQueries.replace(db, key, sealAtRest(plaintext, secret, sealedFor(key)))) {
      counts[key.store]++;
    }
  }
  return counts;
}

/**
 * At start: checks the secrets against the stored keys (see {@link checkKeyEncryptionSecret}),
 * then, with a secret set, encrypts every key still stored in plain text (written before the
 * secret was set) and seals anew those an older Sesame sealed with it without binding them to
 * their rows, says how many, and how many are still sealed with the previous secret
 * (`sesame keys reseal` re-seals them). Without a secret on an https issuer, i.e. in
 * production, it warns that the private keys are readable by anyone who reads the database.
 */
export async function sealKeysAtRest(
  db: Db,
  config: KeySecrets & Pick<Config, 'issuer'>,
  log: Logger,
): Promise<void> {
  const secret = config.keyEncryptionSecret;
  const keys = assertSecretsReadKeys(await keysAtRestQueries.listAll(db), config);
  if (!secret) {
    if (config.issuer.startsWith('https:')) {
      log.warn(
        'KEY_ENCRYPTION_SECRET is not set: signing and cookie keys are stored unencrypted, readable by anyone who can read the database or its backups',
      );
    }
    return;
  }
  const sealed = await sealEach(db, keys.plain, secret);
  if (Object.values(sealed).some((count) => count > 0)) {
    log.info('encrypted keys stored in plain text with KEY_ENCRYPTION_SECRET', sealed);
  }
  // Every instance runs this version (an upgrade stops them all first), so all read the new envelope.
  const bound = await sealEach(db, keys.unbound, secret);
  if (Object.values(bound).some((count) => count > 0)) {
    log.info('sealed keys anew, each bound to its row (an older Sesame had sealed them without)', bound);
  }
  if (keys.previous.length) {
    log.info(
      'stored keys are encrypted with KEY_ENCRYPTION_SECRET_PREVIOUS: run `sesame keys reseal` once every instance has both secrets',
      { keys: keys.previous.length },
    );
  }
}

/** What {@link resealKeys} did, by table: keys (and queued mails' bodies) now sealed with KEY_ENCRYPTION_SECRET. */
export interface Reseal {
  /**
   * Were sealed with KEY_ENCRYPTION_SECRET_PREVIOUS, or with KEY_ENCRYPTION_SECRET by an older
   * Sesame that did not bind them to their rows.
   */
  resealed: Record<KeyStore | 'mail_outbox', number>;
  /** Were in plain text (written before a secret was set). */
  sealed: Record<KeyStore | 'mail_outbox', number>;
  /** Already sealed with KEY_ENCRYPTION_SECRET, bound to their rows: left as they are. */
  unchanged: Record<KeyStore | 'mail_outbox', number>;
  /** Queued mails whose bodies open with neither secret: left as they are (they are not sent). */
  unreadableMails: number;
}

/**
 * `sesame keys reseal`: seals every stored private key, and the bodies of mails not yet sent,
 * with KEY_ENCRYPTION_SECRET, in one transaction: those sealed with
 * KEY_ENCRYPTION_SECRET_PREVIOUS, those an older Sesame sealed without binding them to their
 * rows, and those still in plain text. After it the previous secret opens nothing and can go.
 * Refuses (ConfigError, nothing written) when a key opens with neither secret, and (the
 * one line naming both rows) when a key was sealed for another row. Running servers are told
 * of each changed key row and read it again: they must have both secrets by then. Who did it
 * goes into the audit log.
 */
export async function resealKeys(db: Db, secrets: KeySecrets, actor: Actor): Promise<Reseal> {
  const secret = secrets.keyEncryptionSecret;
  if (!secret) {
    throw new ConfigError('KEY_ENCRYPTION_SECRET is not set: set the secret to seal the stored keys with');
  }
  return withAdminAuthority(db, actor, async (trx) => {
    const keys = assertSecretsReadKeys(await keysAtRestQueries.listAll(trx, { forUpdate: true }), secrets);
    // Every key in plain text: no server has started with a secret, and servers may be running
    // without one, which could read nothing sealed here (a revoked cookie key would go on
    // signing there). A start with the secret seals the keys itself.
    const sealed = keys.current.length + keys.unbound.length + keys.previous.length;
    if (keys.plain.length > 0 && sealed === 0) {
      throw new ConfigError(
        'every stored key is in plain text: start Sesame with KEY_ENCRYPTION_SECRET, which encrypts them itself',
      );
    }
    const result: Reseal = {
      resealed: { ...(await sealEach(trx, [...keys.previous, ...keys.unbound], secret)), mail_outbox: 0 },
      sealed: { ...(await sealEach(trx, keys.plain, secret)), mail_outbox: 0 },
      unchanged: { ...noKeys(), mail_outbox: 0 },
      unreadableMails: 0,
    };
    for (const { key } of keys.current) result.unchanged[key.store]++;
    for (const mail of await mailOutboxQueries.listBodiesForUpdate(trx)) {
      const text = openMailBody(mail.text_body, secrets, sealContext.mailBody(mail.id, 'text_body'));
      const html = openMailBody(mail.html_body, secrets, sealContext.mailBody(mail.id, 'html_body'));
      if (!text || !html) {
        result.unreadableMails++;
      } else if (text.by === 'current' && html.by === 'current') {
        result.unchanged.mail_outbox++;
      } else {
        const bodies = {
          text: sealAtRest(text.plaintext, secret, sealContext.mailBody(mail.id, 'text_body')),
          html: sealAtRest(html.plaintext, secret, sealContext.mailBody(mail.id, 'html_body')),
        };
        if (await mailOutboxQueries.replaceBodies(trx, mail, bodies)) {
          result[text.by === 'plain' && html.by === 'plain' ? 'sealed' : 'resealed'].mail_outbox++;
        }
      }
    }
    await auditQueries.record(trx, actor, 'keys.reseal', null, {
      resealed: result.resealed,
      sealed: result.sealed,
      unreadable_mails: result.unreadableMails,
    });
    return result;
  });
}

/**
 * A queued mail's body opened (see openStored); undefined also for one sealed for another row
 * or cut short, which no instance can send either: left for the outbox to give up.
 */
function openMailBody(stored: string, secrets: KeySecrets, context: string) {
  try {
    return openStored(stored, secrets, context);
  } catch {
    return undefined;
  }
}
