import type { Config } from '../config.js';
import { randomSecret, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { emailVerificationsQueries } from '../db/queries/emailVerifications.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import { type PageProblem, ProblemError } from '../http/errors.js';
import type { Locale } from '../i18n/locales.js';
import { mailLocale } from '../mail/compose.js';
import { queueMail, wakeMailOutboxes } from '../mail/outbox.js';

/** Why a welcome link cannot verify, with the words its page shows. */
export type VerifyLinkProblem = 'invalid' | 'used' | 'expired' | 'other_account';

const PROBLEMS: Record<VerifyLinkProblem, PageProblem> = {
  invalid: {
    status: 404,
    code: 'verify_link_invalid',
    heading: 'This link is not valid',
    message: 'Check that you opened the whole link from the newest mail.',
  },
  used: {
    status: 410,
    code: 'verify_link_used',
    heading: 'This link was already used',
    message: 'Your email address is confirmed: there is nothing more to do.',
  },
  expired: {
    status: 410,
    code: 'verify_link_expired',
    heading: 'This link has expired',
    message: 'Go to your account and choose "Send a new link".',
  },
  other_account: {
    status: 403,
    code: 'verify_link_other_account',
    heading: 'This link is for another account',
    message:
      'Sign out, then open the link again and sign in with the passkey of the account it was sent for.',
  },
};

/** The error the /verify page throws; `heading` is for the HTML page. */
export class VerifyLinkError extends ProblemError<VerifyLinkProblem> {
  constructor(problem: VerifyLinkProblem) {
    super(problem, PROBLEMS, 'verifyLinkProblems');
  }
}

// A token is exactly what randomSecret() makes: 32 bytes, base64url, 43 characters.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** The mails that carry a link verifying an address: a new account's welcome, or a new link asked for later. */
type VerificationMail = 'welcome' | 'confirmation';

/**
 * Queues the welcome mail of a new account, with a link that verifies its address, in the
 * sign-up's transaction (wake the mail outbox once it committed). Nothing without mail.
 * `template` 'confirmation' words it as a new link the person asked for instead.
 * @returns whether a mail was queued.
 */
export async function queueWelcomeMail(
  trx: Db,
  config: Config,
  user: Pick<User, 'id' | 'email' | 'locale' | 'signup_locale'>,
  requested?: Locale,
  template: VerificationMail = 'welcome',
): Promise<boolean> {
  if (!config.mail) return false;
  const token = randomSecret();
  const tokenHash = sha256Hex(token);
  const expiresAt = new Date(Date.now() + config.inviteTtlSeconds * 1000);
  await emailVerificationsQueries.replace(trx, { userId: user.id, email: user.email, tokenHash, expiresAt });
  return queueMail(
    trx,
    config,
    template,
    user.email,
    {
      email: user.email,
      url: `${config.issuer}/verify/${token}`,
      expiresAt,
      mustVerify: config.signup === 'open-verified',
    },
    mailLocale(config, user, requested),
    tokenHash,
  );
}

/**
 * Uses a welcome link from the browser of the account it was sent for: the person holds the
 * account's passkey (they are signed in) and reads its mailbox (they have the link), so the
 * address is theirs and `email_verified` becomes true. Someone else's signed-in browser
 * verifies nothing: whoever reads the mail could otherwise confirm an account a stranger
 * created with their address.
 */
export async function verifyEmailWithLink(db: Db, token: string, signedIn: User): Promise<User> {
  if (!TOKEN_SHAPE.test(token)) throw new VerifyLinkError('invalid');
  const tokenHash = sha256Hex(token);
  return db.transaction().execute(async (trx) => {
    // The account's row before the link's, as a takeover holds them: it deletes the account,
    // and this link with it (on delete cascade). Held the other way round, the two deadlocked.
    // Gone, the account was taken over meanwhile, and its link went with it.
    if (!(await usersQueries.findById(trx, signedIn.id, 'update'))) throw new VerifyLinkError('invalid');
    const link = await emailVerificationsQueries.findByHash(trx, tokenHash);
    if (!link) throw new VerifyLinkError('invalid');
    if (link.user_id !== signedIn.id) throw new VerifyLinkError('other_account');
    if (link.used_at) throw new VerifyLinkError('used');
    if (link.expires_at.getTime() <= Date.now()) throw new VerifyLinkError('expired');
    if (link.email.toLowerCase() !== signedIn.email.toLowerCase()) throw new VerifyLinkError('invalid');
    if (!(await emailVerificationsQueries.consume(trx, tokenHash))) throw new VerifyLinkError('used');
    const user = await usersQueries.update(trx, signedIn.id, { emailVerified: true });
    await auditQueries.record(trx, `user:${signedIn.id}`, 'user.email_verified', signedIn.id, {
      via: 'welcome_link',
    });
    return user!;
  });
}

/**
 * Mails a new link that verifies the address (the older one stops working), for a person whose
 * welcome mail did not arrive or whose link expired: a mail of its own, which asks to confirm
 * the address and does not welcome anyone again.
 */
export async function resendWelcomeMail(
  db: Db,
  config: Config,
  user: Pick<User, 'id' | 'email' | 'locale' | 'signup_locale'>,
  requested?: Locale,
): Promise<void> {
  const queued = await db.transaction().execute(async (trx) => {
    // The account's row before its links', as their use holds them (verifyEmailWithLink): the
    // new link's row needs the account (its foreign key), and taken the other way round, the
    // older links first, the two deadlocked. Gone, the account was taken over meanwhile.
    if (!(await usersQueries.findById(trx, user.id, 'update'))) return false;
    await auditQueries.record(trx, `user:${user.id}`, 'user.welcome_resend', user.id, {});
    return queueWelcomeMail(trx, config, user, requested, 'confirmation');
  });
  if (queued) wakeMailOutboxes();
}
