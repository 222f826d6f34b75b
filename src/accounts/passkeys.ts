import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { credentialsQueries, type StoredCredential } from '../db/queries/credentials.js';
import { stepUpsQueries } from '../db/queries/stepUps.js';
import { type RowLock, usersQueries } from '../db/queries/users.js';
import { conflict, HttpError, notFound, unauthorized } from '../http/errors.js';
import { translatorFor } from '../i18n/catalog.js';
import type { Locale } from '../i18n/locales.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';
import { authenticatorName } from '../webauthn/authenticatorNames.js';
import type { VerifiedRegistration } from '../webauthn/registration.js';
import { endEverySignInOf } from './revocation.js';
import { sessionEnded, signInEnded } from './signInEnded.js';

/**
 * Adding or deleting a passkey, and, on the admin pages, issuing a one-time link, minting a
 * credential (a client secret, an admin API key, a passkey API key), editing a client or
 * deleting a client, user or passkey API app, need a passkey assertion from the last five
 * minutes: a browser left signed in is not enough to change how an account is protected, to
 * hand out a way into one or into Sesame, or to do what cannot be undone. Five minutes
 * matches the challenge lifetime, so one step-up covers one add-passkey ceremony.
 */
export const STEP_UP_MAX_AGE_SECONDS = 5 * 60;

/**
 * Passkeys an account may have, at most: more than anyone uses, few enough that adding and
 * deleting passkeys over and over (each change mails a notice) cannot run on without one
 * being removed first, and that the account page and every sign-in's list stay short.
 */
export const MAX_PASSKEYS_PER_ACCOUNT = 20;

/** Refused when an account has {@link MAX_PASSKEYS_PER_ACCOUNT} passkeys already. */
export const tooManyPasskeys = () =>
  conflict(
    `You have the most passkeys an account may have (${MAX_PASSKEYS_PER_ACCOUNT}). Remove one first.`,
    { reason: 'too_many_passkeys' },
  ).localized('errors.tooManyPasskeys', { max: String(MAX_PASSKEYS_PER_ACCOUNT) });

/** Passkey names are labels a person picks; 64 characters fit any device name. */
export const PASSKEY_NAME_MAX = 64;

/**
 * A new passkey as stored for an account: named after its authenticator when the AAGUID
 * names one, else "Passkey" in the language of the page it was made on. Either is only a
 * first name; the person renames it on the account page.
 */
export function namedPasskey(credential: VerifiedRegistration['credential'], locale: Locale) {
  return { ...credential, name: credential.name ?? translatorFor(locale).t('account.unnamedPasskey') };
}

/** A passkey as the account page shows it. */
export interface PasskeySummary {
  id: string;
  name: string;
  /** The passkey provider (e.g. "iCloud Keychain") from the AAGUID, when known. */
  provider: string | undefined;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** Backup eligible (WebAuthn L3 §6.1.3 BE flag): a synced passkey, not bound to one device. */
  synced: boolean;
  /** Blocked as a suspected copy (accounts/suspectedClone.ts): it signs in nowhere; its owner deletes it. */
  blocked: boolean;
}

export const stepUpRequired = () =>
  new HttpError(403, 'step_up_required', 'Confirm with one of your passkeys to continue.').localized(
    'errors.stepUpRequired',
  );

const passkeyNotFound = () => notFound('No such passkey on your account.').localized('errors.noSuchPasskey');

function summarize(credential: StoredCredential): PasskeySummary {
  return {
    id: credential.id,
    name: credential.name,
    provider: authenticatorName(credential.aaguid),
    createdAt: credential.createdAt,
    lastUsedAt: credential.lastUsedAt,
    synced: credential.backupEligible,
    blocked: credential.suspectedCloneAt !== null,
  };
}

/** The person's passkeys, oldest first. */
export async function listPasskeys(db: Db, userId: string): Promise<PasskeySummary[]> {
  return (await credentialsQueries.listForUser(db, userId)).map(summarize);
}

/**
 * Renames one of the person's passkeys (the name is validated at the edge). The name it has
 * already changes nothing and records nothing: a script posting it over and over would
 * otherwise fill the audit log.
 */
export async function renamePasskey(
  db: Db,
  userId: string,
  credentialId: string,
  name: string,
): Promise<void> {
  const passkey = await credentialsQueries.findById(db, credentialId);
  if (passkey?.userId !== userId) throw passkeyNotFound();
  if (passkey.name === name) return;
  if (!(await credentialsQueries.rename(db, userId, credentialId, name))) throw passkeyNotFound();
  await auditQueries.record(db, `user:${userId}`, 'passkey.rename', userId, { credential: credentialId });
}

/**
 * Deletes one of the person's passkeys, never the last: without a passkey nobody could sign
 * in to the account again. A passkey is deleted because it is lost or not the person's, so
 * whatever it may have signed in goes with it, as sessions and device grants do not record
 * which passkey signed them in: every sign-in of the account ends for good, as with "sign
 * out everywhere" (see endEverySignInOf): sessions, sign-ins under way, codes, every step-up
 * and the devices approved with a code (RFC 8628). Apps with a backchannel_logout_uri are
 * told; the tokens they were given in browsers stay. The browser that deleted it proved a
 * passkey in its step-up and is signed in again by the caller, if
 * maySignInAfterRevocation lets it. The sign-in and its step-up are checked in the
 * transaction, under the account row (see {@link holdSteppedUpSignIn}): a stolen session's
 * delete that was checked before "sign out everywhere" or a sign-out of that browser
 * committed would otherwise land after it, make the account's last revocation its own, and
 * be signed in again. Returns the ids
 * that remain, for the Signal API, the name of the passkey that went, for the notice, and
 * the revocation's instant.
 */
export async function deletePasskey(
  db: Db,
  signIn: AccountSignIn,
  credentialId: string,
): Promise<{ remaining: string[]; name: string; signInsEndedAt: Date }> {
  const { userId } = signIn;
  const deleted = await db.transaction().execute(async (trx) => {
    // `update`, not `share`: ending the sign-ins below writes the row, and two deletes that
    // both held it shared would each wait for the other to let go.
    await holdSteppedUpSignIn(trx, signIn, 'update');
    const name = await credentialsQueries.deleteUnlessLast(trx, userId, credentialId);
    if (name === undefined) return undefined;
    const ended = await endEverySignInOf(trx, userId, { tokens: false });
    await auditQueries.record(trx, `user:${userId}`, 'passkey.delete', userId, {
      credential: credentialId,
      sessions: ended.removed,
      devices: ended.devices,
    });
    return { name, signInsEndedAt: ended.at };
  });
  if (deleted === undefined) {
    if (await credentialsQueries.findById(db, credentialId).then((c) => c?.userId === userId)) {
      throw lastPasskey();
    }
    throw passkeyNotFound();
  }
  wakeBackchannelOutboxes();
  const remaining = (await credentialsQueries.listForUser(db, userId)).map((c) => c.id);
  return { remaining, ...deleted };
}

/** Refuses up front when the passkey is the person's only one, before any step-up is asked for. */
export async function assertDeletable(db: Db, userId: string, credentialId: string): Promise<void> {
  const credentials = await credentialsQueries.listForUser(db, userId);
  if (!credentials.some((c) => c.id === credentialId)) throw passkeyNotFound();
  if (credentials.length < 2) throw lastPasskey();
}

const lastPasskey = () =>
  conflict(
    'This is your only passkey: without it you could not sign in. Add another passkey first, then delete this one.',
    { reason: 'last_passkey' },
  ).localized('errors.lastPasskey');

/** The account page's sign-in a passkey is added or deleted in, as the request found it at its start. */
export interface AccountSignIn {
  userId: string;
  sessionUid: string;
  /** When that sign-in proved a passkey (seconds since the epoch). */
  loginTs: number | undefined;
}

/**
 * Holds the account row as `lock` says, then the browser session's row, until the
 * transaction ends (the account row first, then its session, then its passkeys: the
 * project's lock order), and refuses unless the sign-in still holds the account, its browser
 * was not signed out, and it proved a passkey in the last five minutes. The request checked
 * them at its start, but "sign out everywhere", a recovery or a takeover may have committed
 * since (each writes this row, or deletes it, and ends the step-ups in the same
 * transaction), or a sign-out of that browser (which deletes its session alone and leaves
 * its step-up): the check either runs before them, and they wait for the change, or finds
 * what they left (see {@link signInEnded} and {@link sessionEnded}).
 */
async function holdSteppedUpSignIn(trx: Db, signIn: AccountSignIn, lock: RowLock): Promise<void> {
  const user = await usersQueries.findById(trx, signIn.userId, lock);
  if (signInEnded(user, signIn) || (await sessionEnded(trx, signIn))) {
    throw unauthorized('Sign in first').localized('errors.signInFirst');
  }
  await requireRecentStepUp(trx, signIn.sessionUid, signIn.userId);
}

/**
 * Stores a passkey registered from the account page, if the sign-in that added it still
 * holds the account and it has fewer than {@link MAX_PASSKEYS_PER_ACCOUNT}. The request
 * checked the sign-in at its start, but the ceremony takes a while: meanwhile the email's
 * owner may have taken the account over (confirmEmailOwner deletes it). Holding the account
 * row until commit orders the two: a passkey stored first is deleted with the account, and
 * one stored after is refused here, as the account is gone. The row is held `update`, so
 * that two adds at once count the passkeys one after the other and cannot both pass the cap.
 */
export async function addPasskey(
  db: Db,
  signIn: AccountSignIn,
  registration: VerifiedRegistration,
  locale: Locale,
): Promise<PasskeySummary> {
  const { userId } = signIn;
  try {
    await db.transaction().execute(async (trx) => {
      await holdSteppedUpSignIn(trx, signIn, 'update');
      if ((await credentialsQueries.countForUser(trx, userId)) >= MAX_PASSKEYS_PER_ACCOUNT) {
        throw tooManyPasskeys();
      }
      await credentialsQueries.insert(trx, { ...namedPasskey(registration.credential, locale), userId });
      await auditQueries.record(trx, `user:${userId}`, 'passkey.add', userId, {
        credential: registration.credential.id,
      });
    });
  } catch (error) {
    if ((error as { code?: string }).code === '23505') {
      throw conflict('This passkey is already registered.').localized('errors.passkeyAlreadyRegistered');
    }
    throw error;
  }
  const stored = await credentialsQueries.findById(db, registration.credential.id);
  return summarize(stored!);
}

/** Refuses up front, before a passkey ceremony, when the account has its most passkeys (see addPasskey). */
export async function assertRoomForPasskey(db: Db, userId: string): Promise<void> {
  if ((await credentialsQueries.countForUser(db, userId)) >= MAX_PASSKEYS_PER_ACCOUNT)
    throw tooManyPasskeys();
}

/** Records a passkey assertion made for a step-up in this provider session. */
export async function recordStepUp(db: Db, sessionUid: string, userId: string): Promise<void> {
  await stepUpsQueries.record(db, sessionUid, userId);
  // Old step-ups can never count again; sweeping them here keeps the table small.
  await stepUpsQueries.deleteOlderThan(db, STEP_UP_MAX_AGE_SECONDS * 2);
}

/** Refuses with 403 `step_up_required` unless this session proved a passkey in the last five minutes. */
export async function requireRecentStepUp(db: Db, sessionUid: string, userId: string): Promise<void> {
  if (!(await stepUpsQueries.isRecent(db, sessionUid, userId, STEP_UP_MAX_AGE_SECONDS))) {
    throw stepUpRequired();
  }
}
