import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { usersQueries } from '../db/queries/users.js';
import type { Logger } from '../logger.js';
import { queueSecurityNotice } from '../mail/notices.js';
import { wakeMailOutboxes } from '../mail/outbox.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';
import type { RowCaches } from '../oidc/rowCaches.js';
import { SuspectedClone } from '../webauthn/errors.js';
import { endEverySignInOf, untilAfterRevocation } from './revocation.js';

type Services = {
  db: Db;
  config: Config;
  log: Pick<Logger, 'warn'>;
  caches: Pick<RowCaches, 'models'>;
};

/**
 * Blocks the passkey of a {@link SuspectedClone}: a correctly signed assertion whose counter
 * did not rise proves a second copy of its private key, and the copy controls its counter,
 * so refusing only that assertion would let it in on its next try with a higher one and lock
 * the owner out. In one transaction: the passkey is marked (credentials.suspected_clone_at),
 * every sign-in of the account ends and every grant and token apps hold is revoked, as a
 * recovery link does (see endEverySignInOf with `tokens`: either copy may have signed in any
 * of them, so an app's refresh token may be the copy's holder's, and a step-up of the copy's
 * could add a passkey of its own), apps with a backchannel_logout_uri are told, the audit
 * log records `passkey.clone_suspected` (`revoked`: the rows of the account's sessions,
 * grants, codes and tokens deleted), and the owner's notice mail is queued. Only the first
 * detection does so (a concurrent one finds it blocked already).
 */
export async function blockSuspectedClone(
  { db, config, log, caches }: Services,
  suspect: SuspectedClone,
): Promise<void> {
  const blocked = await db.transaction().execute(async (trx) => {
    // The account's row before the passkey's, as every change that holds an account takes them
    // (a recovery removing its passkeys, a takeover, a deletion): the other way round, the two
    // deadlocked.
    const owned = await credentialsQueries.findById(trx, suspect.credentialId);
    const owner = owned && (await usersQueries.findById(trx, owned.userId, 'update'));
    if (!owner) return undefined;
    const credential = await credentialsQueries.blockAsClone(trx, suspect.credentialId);
    if (!credential) return undefined;
    const ended = await endEverySignInOf(trx, credential.userId, { tokens: true });
    await auditQueries.record(trx, 'system', 'passkey.clone_suspected', credential.userId, {
      credential: credential.id,
      name: credential.name,
      storedCounter: suspect.storedCounter,
      presentedCounter: suspect.presentedCounter,
      revoked: ended.removed,
      devices: ended.devices,
    });
    // In the owner's language, not the request's: the request may be the copy's holder's.
    const mailed = await queueSecurityNotice(trx, config, owner, 'passkey_blocked', {
      passkeyName: credential.name,
    });
    return { credential, mailed, at: ended.at };
  });
  if (!blocked) return;
  caches.models.forgetAll();
  wakeBackchannelOutboxes();
  if (blocked.mailed) wakeMailOutboxes();
  log.warn('passkey blocked: its signature counter went backwards, a copy of it exists', {
    user: blocked.credential.userId,
    credential: blocked.credential.id.slice(0, 12),
    storedCounter: suspect.storedCounter,
    presentedCounter: suspect.presentedCounter,
  });
  // The refusal goes out once the revocation's second is over: the owner's next sign-in, with
  // another passkey, falls after it (a sign-in in that second reads as revoked).
  await untilAfterRevocation(blocked.at);
}

/**
 * Runs a passkey check (a sign-in's or a step-up's); when it finds a {@link SuspectedClone},
 * blocks the passkey ({@link blockSuspectedClone}) before the refusal goes out.
 */
export async function blockingClones<T>(services: Services, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (caught) {
    if (caught instanceof SuspectedClone) {
      await blockSuspectedClone(services, caught);
    }
    throw caught;
  }
}
