import type { Config } from '../config.js';
import { randomSecret, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { setupLinksQueries } from '../db/queries/setupLinks.js';
import { usersQueries } from '../db/queries/users.js';
import type { SetupLinkRow, User } from '../db/schema.js';
import { HttpError } from '../http/errors.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { sendSecurityNotice } from '../mail/notices.js';
import { wakeMailOutboxes } from '../mail/outbox.js';
import type { CheckedAssertion } from '../webauthn/authentication.js';
import { accountDisabled, unknownCredential, verificationFailed } from '../webauthn/errors.js';
import type { VerifiedRegistration } from '../webauthn/registration.js';
import { queueWelcomeMail } from './emailVerification.js';
import { namedPasskey } from './passkeys.js';

/** Why a setup link cannot be used, with the words its page shows. */
export type SetupLinkProblem = 'invalid' | 'expired' | 'admin_exists' | 'account_exists' | 'address_unproven';

const SETUP_LINK_PROBLEMS: Record<
  SetupLinkProblem,
  { status: number; code: string; heading: string; message: string }
> = {
  invalid: {
    status: 404,
    code: 'setup_link_invalid',
    heading: 'This setup link is not valid',
    message:
      'Each start of Sesame prints a new setup link while it has no administrator, and the older ones stop working. Use the newest one from the log.',
  },
  expired: {
    status: 410,
    code: 'setup_link_expired',
    heading: 'This setup link has expired',
    message: 'Restart Sesame: while it has no administrator, each start prints a new setup link in its log.',
  },
  admin_exists: {
    status: 410,
    code: 'admin_exists',
    heading: 'Sesame already has an administrator',
    message: 'The setup link works only until the first administrator exists. Sign in at /admin instead.',
  },
  account_exists: {
    status: 409,
    code: 'account_exists',
    heading: 'This email already has an account',
    // Not `users promote`: the account may be a stranger's sign-up with the address; an admin
    // invite reaches the mailbox and takes such an account over (see createOneTimeLink). Its
    // owner proves it with its passkey instead (redeemSetupLinkWithAccount).
    message:
      'Use another email here, or, if that account is yours, press "Sign in with a passkey" below to make it the administrator. Or run `npx sesame users invite --email EMAIL --admin`: whoever opens the link it prints takes the account over as the administrator, unless its owner proved the address (then the command says to promote it).',
  },
  address_unproven: {
    status: 409,
    code: 'address_unproven',
    heading: "Confirm this account's email address first",
    // With mail, whoever gets mail at an unproven address can take the account over (a
    // recovery link, emailOwnership.ts), and an administrator's role goes with the address.
    message:
      "Open the link in the mail sent to this account's address, or send it again from your account page, then use this setup link again. Until the address is confirmed, whoever receives mail there could take the account over, and the administrator role with it.",
  },
};

/** The error the setup page's routes throw; `heading` is for the HTML page. */
export class SetupLinkError extends HttpError {
  readonly heading: string;

  constructor(readonly problem: SetupLinkProblem) {
    const { status, code, heading, message } = SETUP_LINK_PROBLEMS[problem];
    super(status, code, message, problem === 'account_exists' ? { fields: { email: message } } : undefined);
    this.heading = heading;
    this.headingKey = `setupProblems.${problem}.heading`;
    this.localized(`setupProblems.${problem}.message`);
    if (problem === 'account_exists') this.fieldKeys = { email: 'setupProblems.account_exists.message' };
  }

  /** The catalog key of the heading in the person's language. */
  readonly headingKey: string;
}

// A token is exactly what randomSecret() makes: 32 bytes, base64url, 43 characters.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Issues the setup link when no administrator can sign in (none, or all disabled), in place
 * of any older one; when one can, removes any leftover link and returns undefined. The token
 * is 256 random bits, only its SHA-256 is stored, and it expires after INVITE_TTL_HOURS.
 */
export async function issueSetupLink(
  db: Db,
  config: Config,
): Promise<{ url: string; expiresAt: Date } | undefined> {
  return db.transaction().execute(async (trx) => {
    await usersQueries.lockAdministrators(trx);
    if ((await usersQueries.countActiveAdmins(trx)) > 0) {
      await setupLinksQueries.deleteAll(trx);
      return undefined;
    }
    const token = randomSecret();
    const link = await setupLinksQueries.replace(trx, {
      tokenHash: sha256Hex(token),
      expiresAt: new Date(Date.now() + config.inviteTtlSeconds * 1000),
    });
    await auditQueries.record(trx, 'system', 'setup.link.create', null, {
      link: link.id,
      expires_at: link.expires_at.toISOString(),
    });
    return { url: `${config.issuer}/setup/${token}`, expiresAt: link.expires_at };
  });
}

/**
 * Called once the server listens: while no administrator exists, logs the one-time link
 * that creates the first one, at warn whatever LOG_LEVEL says (error or silent included). The URL is deliberately in the log (the only secret Sesame
 * ever logs): whoever reads the server's log runs the server. The field is `setup_url`,
 * not `url`, which the logger would redact.
 */
export async function announceSetupLink(db: Db, config: Config, log: Logger): Promise<string | undefined> {
  const link = await issueSetupLink(db, config);
  if (!link) return undefined;
  // Whatever LOG_LEVEL says: without this line nobody can become the first administrator.
  log.warnAlways('no administrator yet: open this link to create one', {
    setup_url: link.url,
    expires_at: link.expiresAt.toISOString(),
  });
  return link.url;
}

async function problemWith(db: Db, link: SetupLinkRow | undefined): Promise<SetupLinkProblem | undefined> {
  // Checked first: once an administrator exists, every setup link is dead, used or not.
  if ((await usersQueries.countActiveAdmins(db)) > 0) return 'admin_exists';
  if (!link) return 'invalid';
  if (link.expires_at.getTime() <= Date.now()) return 'expired';
  return undefined;
}

/** The setup link a presented token names, if it can be used now; otherwise a {@link SetupLinkError}. */
export async function findUsableSetupLink(db: Db, token: string): Promise<SetupLinkRow> {
  const link = TOKEN_SHAPE.test(token) ? await setupLinksQueries.findByHash(db, sha256Hex(token)) : undefined;
  const problem = await problemWith(db, link);
  if (problem) throw new SetupLinkError(problem);
  return link!;
}

/** What the passkey ceremony started from the setup page is bound to: the link, never the token. */
export function setupChallengeBinding(link: Pick<SetupLinkRow, 'id'>): { purpose: string; binding: string } {
  return { purpose: 'setup', binding: link.id };
}

/**
 * Runs `change` in the transaction that uses up the setup link `token` names, after the
 * rules every use of a setup link keeps: the administrators lock is taken first, no
 * administrator can sign in yet, the link is live, and it is used up (of two concurrent uses
 * one wins). Two people racing, even with two different links, cannot both become the first
 * administrator. Any failure leaves the link usable.
 */
async function withSetupLinkUse<T>(
  db: Db,
  token: string,
  change: (trx: Db, link: SetupLinkRow) => Promise<T>,
): Promise<T> {
  const tokenHash = sha256Hex(token);
  return db.transaction().execute(async (trx) => {
    await usersQueries.lockAdministrators(trx);
    const problem = await problemWith(trx, await setupLinksQueries.findByHash(trx, tokenHash));
    if (problem) throw new SetupLinkError(problem);
    const link = await setupLinksQueries.consume(trx, tokenHash);
    if (!link) throw new SetupLinkError('invalid');
    return change(trx, link);
  });
}

/**
 * Uses the setup link with a verified new passkey ({@link withSetupLinkUse}): the
 * administrator is created with the passkey. The
 * email was typed, not proven, so the account is not email-verified: with mail set, the
 * welcome mail goes there as at any sign-up, and its link verifies the address (under
 * SIGNUP=open-verified the administrator needs it to sign in to apps, as everyone does).
 */
export async function redeemSetupLink(
  db: Db,
  config: Config,
  token: string,
  registration: VerifiedRegistration,
  locale?: Locale,
): Promise<User> {
  const { challenge } = registration;
  let welcomed = false;
  try {
    const admin = await withSetupLinkUse(db, token, async (trx, link) => {
      const email = challenge.data.email;
      if (!challenge.userId || typeof email !== 'string') throw new SetupLinkError('invalid');
      if (await usersQueries.findByEmail(trx, email)) throw new SetupLinkError('account_exists');
      const name =
        typeof challenge.data.name === 'string' && challenge.data.name ? challenge.data.name : null;
      const user = await usersQueries.insert(trx, {
        id: challenge.userId,
        email,
        name,
        isAdmin: true,
        signupLocale: locale,
      });
      await credentialsQueries.insert(trx, {
        ...namedPasskey(registration.credential, locale ?? config.defaultLocale),
        userId: user.id,
      });
      await auditQueries.record(trx, `user:${user.id}`, 'setup.link.use', user.id, {
        link: link.id,
        email: user.email,
        credential: registration.credential.id,
      });
      welcomed = await queueWelcomeMail(trx, config, user, locale);
      return user;
    });
    if (welcomed) wakeMailOutboxes();
    return admin;
  } catch (error) {
    // The email was taken meanwhile, or the passkey is already registered.
    if ((error as { code?: string }).code === '23505') throw new SetupLinkError('account_exists');
    throw error;
  }
}

/**
 * What an assertion made on the setup page by an existing account is bound to: the link, as
 * {@link setupChallengeBinding}, under a purpose of its own, so that neither ceremony's
 * challenge answers the other's.
 */
export function setupSignInBinding(link: Pick<SetupLinkRow, 'id'>): { purpose: string; binding: string } {
  return { purpose: 'setup-sign-in', binding: link.id };
}

/**
 * Uses the setup link to make an existing account the first administrator, its owner having
 * proved it with one of its passkeys (a checked assertion, challenge bound by
 * {@link setupSignInBinding}). In the transaction of {@link withSetupLinkUse}: the account's
 * row is locked (before its passkey's, as every change that holds an account takes them), it
 * must still be active, the passkey's use is recorded as a sign-in's (an assertion that lost
 * to a newer one, or a passkey blocked meanwhile, is refused), and the account becomes an
 * administrator, audited as `setup.link.use` with `promoted`; then its owner is mailed that
 * it is one, as `users promote` does. With mail set up, the account's address must be proven
 * (`address_unproven` otherwise): whoever gets mail at an unproven address can take the
 * account over with a recovery link (emailOwnership.ts), and the administrator's role goes
 * with the address. Without mail nobody can (links come only from an administrator), and
 * whoever holds the account's passkey is its owner, as whoever holds the setup link runs the
 * server.
 */
export async function redeemSetupLinkWithAccount(
  db: Db,
  config: Config,
  log: Pick<Logger, 'warn'>,
  token: string,
  assertion: CheckedAssertion,
): Promise<User> {
  const { admin, promoted } = await withSetupLinkUse(db, token, async (trx, link) => {
    const user = await usersQueries.findById(trx, assertion.user.id, 'update');
    if (!user) throw unknownCredential();
    if (user.disabled_at) throw accountDisabled();
    if (config.mail && !user.email_verified) throw new SetupLinkError('address_unproven');
    const { credential } = assertion;
    if (
      !(await credentialsQueries.recordUse(trx, credential.id, credential.counter, credential.backupState))
    ) {
      throw verificationFailed();
    }
    const promoted = user.is_admin ? undefined : await usersQueries.update(trx, user.id, { isAdmin: true });
    await auditQueries.record(trx, `user:${user.id}`, 'setup.link.use', user.id, {
      link: link.id,
      email: user.email,
      ...(!user.email_verified && { email_verified: false }),
      credential: credential.id,
      promoted: promoted !== undefined,
    });
    return { admin: promoted ?? user, promoted: promoted !== undefined };
  });
  // As `users promote` tells the owner (the passkey may be a copy's, the link anyone's who reads the log).
  if (promoted) await sendSecurityNotice(db, config, log, admin, 'admin_granted');
  return admin;
}
