import type { Config } from '../config.js';
import { randomSecret, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { type RowLock, usersQueries } from '../db/queries/users.js';
import type { OneTimeTokenRow, User } from '../db/schema.js';
import { badRequest, conflict, HttpError, notFound, type PageProblem, ProblemError } from '../http/errors.js';
import type { Locale } from '../i18n/locales.js';
import { mailLocale } from '../mail/compose.js';
import { queueMail, wakeMailOutboxes } from '../mail/outbox.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';
import { isPlainEmailAddress, normalizeEmail } from '../text.js';
import type { VerifiedRegistration } from '../webauthn/registration.js';
import { withAdminAuthority } from './adminAuthority.js';
import { confirmEmailOwner } from './emailOwnership.js';
import { MAX_PASSKEYS_PER_ACCOUNT, namedPasskey } from './passkeys.js';
import { endEverySignInOf, maySignInAfterRevocation } from './revocation.js';

/**
 * A recovery link a person mails to themselves ("Lost your passkey?") lives 30 minutes:
 * they asked for it just now, and whoever reads that mailbox later gets nothing from it.
 */
export const SELF_RECOVERY_LINK_TTL_SECONDS = 30 * 60;

/** The actor of links a person mails to themselves from "Lost your passkey?" (the link's created_by). */
export const SELF_SERVICE_ACTOR = 'self-service';

/** A freshly issued link. The URL holds the only copy of the token: show it once. */
export interface IssuedOneTimeLink {
  id: string;
  url: string;
  expiresAt: Date;
  /** Whether the link was also queued as a mail to the address (SMTP_URL set). */
  emailed: boolean;
  /**
   * The address has an account nobody proved it for: whoever uses the link takes that account
   * over, and whoever signed up with the address loses it (see confirmEmailOwner).
   */
  takesOverAccount: boolean;
}

/**
 * Issues a one-time link that lets its holder register a passkey: for the existing account
 * with that email (recovery), or for a new account created when the link is used (invite,
 * with is_admin when `admin` is set). The token is 256 random bits; only its SHA-256 is
 * stored, it works once, and it expires after INVITE_TTL_HOURS.
 *
 * `purpose: 'recovery'` insists on an existing account (404 otherwise); without it, or with
 * 'invite', an existing account still gets a recovery link, never a second account. An
 * admin invitation for an account whose owner proved the address is refused (409): see
 * `sesame users promote`; for one nobody proved, it is an admin invite that takes the
 * account over when used.
 * No link is issued for a disabled account (409 `account_disabled`): enable it first.
 *
 * Issuing a link invalidates the older unused links for the same email: the newest link an
 * admin handed out is the only one that works, so a link sent to a wrong or stale address
 * can be cancelled by issuing another. A self-service link replaces only the earlier
 * self-service ones: anyone may ask for it, and asking must not cancel a link an admin gave.
 */
export async function createOneTimeLink(
  db: Db,
  config: Config,
  input: {
    email: string;
    admin?: boolean;
    purpose?: 'invite' | 'recovery';
    actor: string;
    /** Asked for by the person on the "Lost your passkey?" page: a shorter life, and a mail that says so. */
    selfService?: boolean;
    /** The language of the request that asked for the link, for a mail to someone who chose none. */
    locale?: Locale;
  },
): Promise<IssuedOneTimeLink> {
  const email = normalizeEmail(input.email);
  if (!isPlainEmailAddress(email)) throw badRequest('Enter a valid email address');
  const token = randomSecret();
  const url = `${config.issuer}/link/${token}`;
  const ttlSeconds = input.selfService ? SELF_RECOVERY_LINK_TTL_SECONDS : config.inviteTtlSeconds;
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  // An admin demoted or disabled meanwhile, or a key revoked, issues nothing: their unused
  // links were just cancelled.
  const { row, emailed, takesOverAccount } = await withAdminAuthority(db, input.actor, async (trx) => {
    // The account's row before its links', as a link's use holds them (redeemOneTimeLink): the
    // new link's row needs the account (its foreign key), and taken the other way round, the
    // links first, the two deadlocked.
    const existing = await usersQueries.findByEmail(trx, email, 'update');
    if (input.purpose === 'recovery' && !existing) throw notFound('No account has that email address');
    // "Lost your passkey?" never recovers an administrator (see requestSelfRecovery), also one
    // made an administrator since it looked the account up.
    if (input.selfService && existing?.is_admin) {
      throw conflict(
        'The account is an administrator: only an administrator or the CLI issues its recovery link',
      );
    }
    // Its page would only say the account is disabled: a link that cannot work is not handed out.
    if (existing?.disabled_at) {
      throw new HttpError(
        409,
        'account_disabled',
        `${existing.email} is disabled; enable it first (\`sesame users enable ${existing.email}\`), then issue the link`,
        { fields: { email: 'is disabled' } },
      );
    }
    // An admin invitation never turns into a recovery link that quietly drops the admin part.
    // The owner of a proven address is the account's owner: making them an admin is `promote`.
    if (existing?.email_verified && input.admin) {
      throw conflict(
        `${existing.email} already has an account and its owner proved the address; use \`sesame users promote ${existing.email}\` to make it an administrator`,
        { fields: { email: 'already has an account' } },
      );
    }
    // Whether the link recovers or creates is decided by the account, not by the caller's
    // hint: a link can never create a second account for an email that has one. An admin
    // invitation for an account nobody proved the address of stays an invite: whoever signed
    // up with the address may not own it, so the link takes the account over on use (see
    // confirmEmailOwner) and only then makes it an administrator.
    const purpose = existing && !input.admin ? 'recovery' : 'invite';
    await oneTimeTokensQueries.invalidateUnusedForEmail(
      trx,
      email,
      input.selfService ? SELF_SERVICE_ACTOR : undefined,
    );
    const tokenHash = sha256Hex(token);
    const issued = await oneTimeTokensQueries.insert(trx, {
      tokenHash,
      purpose,
      email: existing?.email ?? email,
      userId: purpose === 'recovery' ? existing!.id : null,
      grantAdmin: purpose === 'invite' && (input.admin ?? false),
      createdBy: input.actor,
      expiresAt,
    });
    await auditQueries.record(trx, input.actor, `link.${purpose}.create`, existing?.id ?? null, {
      link: issued.id,
      email: issued.email,
      admin: issued.grant_admin,
      expires_at: expiresAt.toISOString(),
    });
    const locale = mailLocale(config, existing, input.locale);
    const emailed =
      purpose === 'invite'
        ? await queueMail(
            trx,
            config,
            'invite',
            issued.email,
            {
              email: issued.email,
              url,
              expiresAt,
              admin: issued.grant_admin,
            },
            locale,
            tokenHash,
          )
        : await queueMail(
            trx,
            config,
            'recovery',
            issued.email,
            {
              email: issued.email,
              url,
              expiresAt,
              selfService: input.selfService ?? false,
            },
            locale,
            tokenHash,
          );
    return { row: issued, emailed, takesOverAccount: existing !== undefined && !existing.email_verified };
  });
  if (emailed) wakeMailOutboxes();
  return { id: row.id, url, expiresAt: row.expires_at, emailed, takesOverAccount };
}

/**
 * Revokes every sign-in, grant and token of the account for good, telling apps by back-channel
 * logout (wake the outbox once committed). @returns the instant, for maySignInAfterRevocation.
 */
async function endEverySignIn(trx: Db, userId: string): Promise<Date> {
  const { at, removed } = await endEverySignInOf(trx, userId, { tokens: true });
  await auditQueries.record(trx, `user:${userId}`, 'user.signed_out_everywhere', userId, {
    revoked: removed,
  });
  return at;
}

/**
 * Why a link cannot be used, with the words the link page shows. A link the person mailed
 * themselves from "Lost your passkey?" that was used or expired says so in its own words:
 * they ask for the next one there, not an administrator.
 */
export type LinkProblem =
  | 'invalid'
  | 'used'
  | 'expired'
  | 'used_self_service'
  | 'expired_self_service'
  | 'disabled'
  | 'administrator'
  | 'account_exists'
  | 'passkey_registered'
  | 'too_many_passkeys'
  | 'stale';

const LINK_PROBLEMS: Record<LinkProblem, PageProblem> = {
  invalid: {
    status: 404,
    code: 'link_invalid',
    heading: 'This link is not valid',
    message: 'Check that you opened the whole link, or ask an administrator for a new one.',
  },
  used: {
    status: 410,
    code: 'link_used',
    heading: 'This link was already used',
    message:
      'Each link works once. Sign in with the passkey you created, or ask an administrator for a new link.',
  },
  expired: {
    status: 410,
    code: 'link_expired',
    heading: 'This link has expired',
    message: 'Ask an administrator for a new link.',
  },
  used_self_service: {
    status: 410,
    code: 'link_used',
    heading: 'This link was already used',
    message: 'Each link works once. Sign in with the passkey you created, or ask for a new link.',
  },
  expired_self_service: {
    status: 410,
    code: 'link_expired',
    heading: 'This link has expired',
    message: 'A link you ask for yourself works for 30 minutes, and only the newest one. Ask for a new link.',
  },
  disabled: {
    status: 403,
    code: 'account_disabled',
    heading: 'This account is disabled',
    message: 'Ask an administrator to enable it.',
  },
  administrator: {
    status: 403,
    code: 'admin_self_recovery',
    heading: 'This link does not recover an administrator',
    message:
      'This account is now an administrator, and administrators’ accounts are not recovered with a link asked for by mail. Nothing was changed. Ask another administrator for a recovery link, or whoever runs the server.',
  },
  account_exists: {
    status: 409,
    code: 'account_exists',
    heading: 'This account already exists',
    message: 'An account with this email was created meanwhile. Ask an administrator for a recovery link.',
  },
  passkey_registered: {
    status: 409,
    code: 'passkey_registered',
    heading: 'This passkey is already registered',
    message:
      'It belongs to an account already. The link was not used: create a new passkey with it, on another device or password manager if this one offers no other.',
  },
  too_many_passkeys: {
    status: 409,
    code: 'too_many_passkeys',
    heading: 'This account has the most passkeys it may have',
    message: `You have the most passkeys an account may have (${MAX_PASSKEYS_PER_ACCOUNT}). Remove one first, on your account page, or tick "Remove my other passkeys" and try again.`,
  },
  stale: {
    status: 409,
    code: 'link_stale',
    heading: 'This page is out of date',
    message:
      'The account for this link changed while you were creating the passkey. Reload the page and try again.',
  },
};

/** The error a route throws for a link problem; `heading` is for the HTML page. */
export class LinkError extends ProblemError<LinkProblem> {
  constructor(problem: LinkProblem) {
    super(problem, LINK_PROBLEMS, 'linkProblems');
  }

  /** Whether the person asked for the link themselves, and asks for the next one at /recover. */
  get selfService(): boolean {
    return this.problem === 'used_self_service' || this.problem === 'expired_self_service';
  }
}

/**
 * A link that can be used now, and the account it gives a passkey to: the one it recovers,
 * or, for an invite, an account someone created for the email without proving it (which the
 * link's holder takes over); none for an invite that creates the account.
 */
export interface UsableLink {
  link: OneTimeTokenRow;
  user: User | undefined;
}

// A token is exactly what randomSecret() makes: 32 bytes, base64url, 43 characters.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** The account a link gives a passkey to now (see {@link UsableLink}). */
function accountOf(db: Db, link: OneTimeTokenRow, lock?: RowLock): Promise<User | undefined> {
  if (link.purpose === 'recovery') {
    return link.user_id ? usersQueries.findById(db, link.user_id, lock) : Promise.resolve(undefined);
  }
  return usersQueries.findByEmail(db, link.email, lock);
}

/**
 * Holds the account a presented link is for, before its link is used. The takeover of an
 * administrator's unproven account (see confirmEmailOwner) ends an administrator's authority,
 * and first takes the administrators lock, as every such change does (withAdministrationChange):
 * it cancels the links they issued, which are other accounts' links. Two such takeovers at once,
 * each by a link the other's earlier holder issued, each held its own link and waited for the
 * other's: a deadlock. Now the second waits for the first, and finds its link cancelled. (Read
 * unlocked first: the lock comes before any account's row. An account made an administrator in
 * the instant between has issued no links yet.)
 */
async function holdAccountOf(trx: Db, link: OneTimeTokenRow): Promise<void> {
  const account = await accountOf(trx, link);
  if (account?.is_admin && !account.email_verified) await usersQueries.lockAdministrators(trx);
  await accountOf(trx, link, 'update');
}

async function problemWith(db: Db, link: OneTimeTokenRow | undefined): Promise<LinkProblem | undefined> {
  if (!link) return 'invalid';
  const selfService = link.created_by === SELF_SERVICE_ACTOR;
  if (link.used_at) return selfService ? 'used_self_service' : 'used';
  if (link.expires_at.getTime() <= Date.now()) return selfService ? 'expired_self_service' : 'expired';
  const user = await accountOf(db, link);
  if (link.purpose === 'recovery' && !user) return 'invalid';
  // An invite never adds a passkey to an account whose owner proved the email: that is a recovery link's job.
  if (link.purpose === 'invite' && user?.email_verified) return 'account_exists';
  if (user?.disabled_at) return 'disabled';
  // "Lost your passkey?" never recovers an administrator (see requestSelfRecovery): a link
  // mailed before the account was made one does not either. An administrator's own link does.
  if (selfService && user?.is_admin) return 'administrator';
  return undefined;
}

/**
 * Looks a presented token up by its hash. A malformed or unknown token, a used or expired
 * link, and a link for a disabled account are each a {@link LinkError}.
 */
export async function findUsableLink(db: Db, token: string): Promise<UsableLink> {
  if (!TOKEN_SHAPE.test(token)) throw new LinkError('invalid');
  const link = await oneTimeTokensQueries.findByHash(db, sha256Hex(token));
  const problem = await problemWith(db, link);
  if (problem) throw new LinkError(problem);
  return { link: link!, user: await accountOf(db, link!) };
}

/**
 * The account a passkey registered from a link is for: its id is the passkey's user handle.
 * An existing account whose address was proven gets the passkey. One whose address was not
 * is taken over (see confirmEmailOwner): the passkey is for the owner's new account, with a
 * new id, and `takesOver` names the one it replaces. Otherwise a new account (`newAccount`).
 */
export function linkPasskeyAccount(user: User | undefined): {
  userId: string;
  data: { newAccount: boolean; takesOver?: string };
} {
  if (user?.email_verified) return { userId: user.id, data: { newAccount: false } };
  if (user) return { userId: crypto.randomUUID(), data: { newAccount: false, takesOver: user.id } };
  return { userId: crypto.randomUUID(), data: { newAccount: true } };
}

/** What a passkey ceremony started from a link is bound to: the link, never the token. */
export function linkChallengeBinding(link: Pick<OneTimeTokenRow, 'id'>): {
  purpose: string;
  binding: string;
} {
  return { purpose: 'link', binding: link.id };
}

/** The passkeys an account had when a link added one: removed with it, or kept (they still sign in). */
export interface OtherPasskeys {
  removed: number;
  kept: number;
}

/**
 * Uses a link with a verified new passkey, all in one transaction: the link is marked used
 * (only if still unused and unexpired: of two concurrent uses one wins), the account is
 * created for an invite, and the passkey is stored. Holding the link proves the email, so
 * the account ends up verified: one that was not is taken over (see confirmEmailOwner).
 * Any failure leaves the link unused. `locale` is the link page's language: the new
 * passkey's name, and kept as the account's when the link makes (or takes over) one.
 * `signIn` says whether the link's browser may be signed in now: after a recovery, only if
 * maySignInAfterRevocation lets it (a takeover makes a new account: at once).
 *
 * With `removeOtherPasskeys` (the link page's "Remove my other passkeys"), every passkey the
 * account had before the new one is deleted in the same transaction: a recovery ends the
 * lost device's sign-ins, and without this its passkey would sign straight back in.
 * `otherPasskeys` says how many went and how many still sign in, for the notice.
 */
export async function redeemOneTimeLink(
  db: Db,
  token: string,
  registration: VerifiedRegistration,
  locale: Locale,
  { removeOtherPasskeys }: { removeOtherPasskeys: boolean },
): Promise<{
  user: User;
  link: OneTimeTokenRow;
  otherPasskeys: OtherPasskeys;
  signIn: boolean;
  takenOverFrom?: string;
}> {
  const tokenHash = sha256Hex(token);
  let signedOutAt: Date | undefined;
  let takenOverFrom: string | undefined;
  let removed: string[] = [];
  try {
    const redeemed = await db.transaction().execute(async (trx) => {
      // The account's row first, then the link's, as every change that holds an account does: a
      // takeover deletes the account, and with it (on delete cascade) its other unused links. A
      // second link for the same account (an admin's recovery link and a "Lost your passkey?"
      // one) used at once, its row held first, deadlocked with it; now it waits for the account,
      // finds its link gone with it, and is told so.
      const presented = await oneTimeTokensQueries.findByHash(trx, tokenHash);
      if (presented) await holdAccountOf(trx, presented);
      const link = await oneTimeTokensQueries.consume(trx, tokenHash);
      if (!link) {
        throw new LinkError(
          (await problemWith(trx, await oneTimeTokensQueries.findByHash(trx, tokenHash))) ?? 'used',
        );
      }
      // The ceremony was started for this link (its challenge is bound to the link id) and
      // for the user handle chosen then; the passkey is stored for that same account.
      const userId = registration.challenge.userId;
      if (!userId) throw new LinkError('invalid');
      // Held until commit: a passkey the earlier holder is adding right now is stored either
      // before, and removed below, or after, and refused (see addPasskey).
      const existing = await accountOf(trx, link, 'update');
      const problem = await problemWith(trx, { ...link, used_at: null });
      if (problem) throw new LinkError(problem);
      const givenName = registration.challenge.data.name;
      const name = typeof givenName === 'string' && givenName ? givenName : null;
      let user: User;
      if (existing) {
        // The prompt was for this account as it is now: a takeover of it when its address was
        // not proven (a new user handle, see linkPasskeyAccount), else a passkey for it.
        // Otherwise someone signed up with the invited email, or proved it, meanwhile.
        const expected = existing.email_verified ? userId : registration.challenge.data.takesOver;
        if (existing.id !== expected) throw new LinkError('stale');
        ({ user, takenOverFrom } = await confirmEmailOwner(trx, existing, {
          newId: userId,
          name,
          grantAdmin: link.purpose === 'invite' && link.grant_admin,
          locale,
        }));
        // A recovery, the person's own ("Lost your passkey?") or one an admin handed out, ends
        // every other sign-in: the lost or stolen device, or whoever holds it, keeps nothing.
        // The link's user is signed in here at once. (A takeover ended the whole account.)
        if (!takenOverFrom) signedOutAt = await endEverySignIn(trx, user.id);
      } else {
        // The passkey prompt was shown for an account that is gone since (deleted): its id
        // (the `sub` apps know it by) is never given to another account (OIDC Core §2). A
        // prompt from a release before this says neither, and was for a new account then.
        if (registration.challenge.data.newAccount === false) throw new LinkError('stale');
        user = await usersQueries.insert(trx, {
          id: userId,
          email: link.email,
          name,
          isAdmin: link.grant_admin,
          emailVerified: true,
          signupLocale: locale,
        });
      }
      // The account's row is held (or new), so no passkey is added meanwhile; a takeover above
      // removed them all already.
      if (removeOtherPasskeys) removed = await credentialsQueries.deleteAllForUser(trx, user.id);
      const kept = await credentialsQueries.countForUser(trx, user.id);
      if (kept >= MAX_PASSKEYS_PER_ACCOUNT) throw new LinkError('too_many_passkeys');
      await credentialsQueries.insert(trx, {
        ...namedPasskey(registration.credential, locale),
        userId: user.id,
      });
      await auditQueries.record(trx, `user:${user.id}`, `link.${link.purpose}.use`, user.id, {
        link: link.id,
        credential: registration.credential.id,
        removed_passkeys: removed,
      });
      return {
        user,
        link,
        otherPasskeys: { removed: removed.length, kept },
        ...(takenOverFrom && { takenOverFrom }),
      };
    });
    // A takeover or a recovery queued back-channel logouts for the apps.
    if (signedOutAt || takenOverFrom) wakeBackchannelOutboxes();
    if (!signedOutAt) return { ...redeemed, signIn: true };
    // The person is signed in next; that sign-in must fall after the revocation of the others,
    // and not outlive one committed during the wait (an admin's disable, a sign-out everywhere).
    return { ...redeemed, signIn: await maySignInAfterRevocation(db, redeemed.user.id, signedOutAt) };
  } catch (error) {
    // The passkey is already registered (to anyone), or two uses raced to create one email's
    // account: told apart as at sign-up, by whether the credential id is stored.
    if ((error as { code?: string }).code === '23505') {
      const registered = await credentialsQueries.findById(db, registration.credential.id);
      throw new LinkError(registered ? 'passkey_registered' : 'account_exists');
    }
    throw error;
  }
}
