import {
  type WithdrawnHandouts,
  withAdminAuthority,
  withAdministrationChange,
  withdrawAdminHandouts,
} from '../accounts/adminAuthority.js';
import { queueAccountLogouts } from '../accounts/backchannelLogout.js';
import { ClaimValidationError, withClaim, withoutClaim } from '../accounts/customClaims.js';
import { createOneTimeLink, type IssuedOneTimeLink } from '../accounts/oneTimeLinks.js';
import { revokeAccountSignIns, untilAfterRevocation } from '../accounts/revocation.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { type RowLock, usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import { badRequest, HttpError, notFound } from '../http/errors.js';
import { sendSecurityNotice } from '../mail/notices.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';

/** A user as admins see them. */
export interface UserView {
  id: string;
  email: string;
  name: string | null;
  is_admin: boolean;
  /** Whether someone proved they receive mail at the address (a link sent there was used). */
  email_verified: boolean;
  disabled: boolean;
  disabled_at: string | null;
  created_at: string;
}

export function userView(user: User): UserView {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    is_admin: user.is_admin,
    email_verified: user.email_verified,
    disabled: user.disabled_at !== null,
    disabled_at: user.disabled_at ? new Date(user.disabled_at).toISOString() : null,
    created_at: new Date(user.created_at).toISOString(),
  };
}

/** At most this many users per page, whoever asks. */
export const MAX_USERS_PAGE = 500;

export interface UsersPage {
  users: UserView[];
  /** The cursor of the next page (pass it as `after`), when there is one. */
  next?: string;
}

/**
 * A page of users in email order. `search` keeps those whose email or name contains it
 * (case-insensitive); `after` is the previous page's `next`.
 */
export async function listUsers(
  db: Db,
  options: { search?: string; after?: string; limit?: number } = {},
): Promise<UsersPage> {
  const limit = Math.min(options.limit ?? MAX_USERS_PAGE, MAX_USERS_PAGE);
  // One row more than asked says whether there is a next page.
  const rows = await usersQueries.page(db, { ...options, limit: limit + 1 });
  const users = rows.slice(0, limit).map(userView);
  return rows.length > limit ? { users, next: users.at(-1)!.email } : { users };
}

/** Every user (matching `search`), page by page: for the CLI, whose scripts expect the whole list. */
export async function listAllUsers(db: Db, search?: string): Promise<UserView[]> {
  const all: UserView[] = [];
  let after: string | undefined;
  do {
    const page = await listUsers(db, { search, after });
    all.push(...page.users);
    after = page.next;
  } while (after);
  return all;
}

/** Finds a user by id (the OIDC `sub`) or by email, whichever the admin typed. */
export async function findUser(db: Db, idOrEmail: string, lock?: RowLock): Promise<User | undefined> {
  return idOrEmail.includes('@')
    ? usersQueries.findByEmail(db, idOrEmail, lock)
    : usersQueries.findById(db, idOrEmail, lock);
}

/**
 * Finds the user an admin change is for, in its transaction, and holds the row until it
 * ends. A takeover (confirmEmailOwner) holds the account it ends, deletes it and gives the
 * owner a new one with a new id: a change that read the row unlocked meanwhile landed on
 * nothing and still said it was done (a claim), or on a row gone by then (a group's foreign
 * key, a 500). Held, the change waits for the takeover and then finds no such user (404);
 * the admin tries again with the email and reaches the owner's new account.
 */
export function findUserToChange(trx: Db, idOrEmail: string): Promise<User | undefined> {
  return findUser(trx, idOrEmail, 'update');
}

/** The answer for an id or email that names no account (404). */
export const noUserFor = (idOrEmail: string) => notFound(`No user with id or email ${idOrEmail}`);

/**
 * The row an update of a held user returned. Held (findUserToChange), it is there; should it
 * not be, the change is a 404 and rolls back, never a success that changed nothing.
 */
function updated(user: User | undefined, idOrEmail: string): User {
  if (!user) throw noUserFor(idOrEmail);
  return user;
}

/** The answer when a change would leave Sesame without an administrator who can sign in. */
export const lastAdminError = (user: Pick<User, 'email'>, what: string) =>
  new HttpError(
    409,
    'last_admin',
    `${user.email} is the last administrator and cannot be ${what}; make another account an administrator first (sesame users promote ID-OR-EMAIL)`,
  );

/**
 * Refuses (with {@link lastAdminError}) when `user` is the only administrator who can sign
 * in. Run it in the transaction that makes the change, opened by withAdministrationChange
 * (under the administrators lock, whoever the actor): then two admins demoting or deleting
 * each other at once cannot both pass.
 */
async function keepAnAdministrator(trx: Db, user: User, what: string): Promise<void> {
  if (!user.is_admin || user.disabled_at) return;
  if ((await usersQueries.countActiveAdmins(trx, user.id)) === 0) throw lastAdminError(user, what);
}

/**
 * The answer when promoting an account whose address nobody proved: with open sign-up anyone
 * can make an account with any address, so the person behind it may not be the one the admin
 * means. An admin invite reaches whoever reads that mailbox instead.
 */
export const unverifiedPromotionError = (user: Pick<User, 'email'>) =>
  new HttpError(
    409,
    'email_unverified',
    `nobody has proved they receive mail at ${user.email}: whoever signed up with it may not own it. Send an admin invite instead (\`sesame users invite --email ${user.email} --admin\`): whoever opens it takes the account over as an administrator, with a new account and a new \`sub\` (apps see a new user; what they kept for the old \`sub\` stays with it), and the old account's passkeys and sign-ins end`,
  );

/**
 * The answer when a group or a claim is given to an account whose address nobody proved
 * (see addGroupMember, changeUserClaim): as with {@link unverifiedPromotionError}, the person
 * behind it may not be the one the admin means, and groups and claims are what apps decide
 * access on. `unverified` says the admin knows whose it is; the owner of the address, should
 * they take the account over, gets them too (see confirmEmailOwner).
 */
export const unverifiedAccountError = (user: Pick<User, 'email'>) =>
  new HttpError(
    409,
    'email_unverified',
    `nobody has proved they receive mail at ${user.email}: whoever signed up with it may not own it`,
    { fields: { user: 'has an unverified email address' } },
  );

/**
 * Makes an account an administrator (idempotent; audited when it changes something). An
 * account whose address nobody proved is refused ({@link unverifiedPromotionError}) unless
 * `unverified` says the admin knows whose it is.
 * @returns the user, or undefined when there is none.
 */
export async function promoteUser(
  db: Db,
  config: Config,
  idOrEmail: string,
  actor: Actor,
  options: { unverified?: boolean } = {},
): Promise<UserView | undefined> {
  let promoted: User | undefined;
  const view = await withAdminAuthority(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    if (user.is_admin) return userView(user);
    if (!user.email_verified && !options.unverified) throw unverifiedPromotionError(user);
    promoted = updated(await usersQueries.update(trx, user.id, { isAdmin: true }), idOrEmail);
    await auditQueries.record(trx, actor, 'user.promote', user.id, {
      email: user.email,
      ...(!user.email_verified && { email_verified: false }),
    });
    return userView(promoted);
  });
  // Told only when it changed: promoting an administrator again mails nothing.
  if (promoted) await sendSecurityNotice(db, config, undefined, promoted, 'admin_granted');
  return view;
}

/**
 * A user after a change that ended their administration: what they had handed out as an
 * administrator is withdrawn (see withdrawAdminHandouts), and listed here.
 */
export interface UserWithdrawnView extends UserView {
  /** The admin API keys they had created, revoked now. */
  revoked_api_keys: string[];
  /** How many unused one-time links they (or those keys) had issued, cancelled now. */
  cancelled_links: number;
}

function withdrawnView(user: User, withdrawn: WithdrawnHandouts): UserWithdrawnView {
  return { ...userView(user), revoked_api_keys: withdrawn.apiKeys, cancelled_links: withdrawn.links };
}

const NOTHING_WITHDRAWN: WithdrawnHandouts = { apiKeys: [], links: 0 };

/**
 * Takes administration away from an account (idempotent), unless it is the last
 * administrator who can sign in: then {@link lastAdminError}. The admin API keys the account
 * created and the unused links it issued go with it.
 * @returns the user, or undefined when there is none.
 */
export async function demoteUser(
  db: Db,
  idOrEmail: string,
  actor: Actor,
): Promise<UserWithdrawnView | undefined> {
  return withAdministrationChange(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    if (!user.is_admin) return withdrawnView(user, NOTHING_WITHDRAWN);
    await keepAnAdministrator(trx, user, 'demoted');
    const demoted = updated(await usersQueries.update(trx, user.id, { isAdmin: false }), idOrEmail);
    await auditQueries.record(trx, actor, 'user.demote', user.id, { email: user.email });
    return withdrawnView(demoted, await withdrawAdminHandouts(trx, user.id, actor));
  });
}

/**
 * Disables an account: the person can no longer sign in, and everything they hold now
 * stops working too — their sessions, grants, codes, access and refresh tokens, the unused
 * links for the account, and the admin API keys and unused links they handed out as an
 * administrator. The last administrator who can sign in cannot be disabled
 * ({@link lastAdminError}).
 * @returns the user, or undefined when there is none.
 */
export async function disableUser(
  db: Db,
  idOrEmail: string,
  actor: Actor,
): Promise<UserWithdrawnView | undefined> {
  const done = await withAdministrationChange(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    await keepAnAdministrator(trx, user, 'disabled');
    const disabled = user.disabled_at
      ? user
      : updated(await usersQueries.update(trx, user.id, { disabledAt: new Date() }), idOrEmail);
    // Revoked for good, not only deleted: enabling the account again brings none of it back.
    const at = await revokeAccountSignIns(trx, user.id, { tokens: true });
    await queueAccountLogouts(trx, user.id, { grants: true });
    const revoked = await oidcModelsQueries.destroyByAccountId(trx, user.id);
    // A link for the account (recovery, invite) would otherwise work again once it is enabled.
    await oneTimeTokensQueries.invalidateUnusedForEmail(trx, user.email);
    if (!user.disabled_at) await auditQueries.record(trx, actor, 'user.disable', user.id, { revoked });
    return { view: withdrawnView(disabled, await withdrawAdminHandouts(trx, user.id, actor)), at };
  });
  if (!done) return undefined;
  wakeBackchannelOutboxes();
  await untilAfterRevocation(done.at);
  return done.view;
}

/** Lets a disabled person sign in again (their old sessions and tokens stay revoked). */
export async function enableUser(db: Db, idOrEmail: string, actor: Actor): Promise<UserView | undefined> {
  return withAdminAuthority(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    if (!user.disabled_at) return userView(user);
    const enabled = updated(await usersQueries.update(trx, user.id, { disabledAt: null }), idOrEmail);
    await auditQueries.record(trx, actor, 'user.enable', user.id);
    return userView(enabled);
  });
}

/**
 * Deletes an account for good: its passkeys and pending links go with the row (foreign
 * keys cascade), its sessions, grants and tokens are removed from the OIDC storage, and the
 * admin API keys and unused links it handed out as an administrator are withdrawn.
 * Whatever a request in flight still saves for it is never found: an instance whose
 * account does not exist reads as revoked (src/oidc/revocation.ts).
 * The last administrator who can sign in cannot be deleted ({@link lastAdminError}).
 */
export async function deleteUser(
  db: Db,
  idOrEmail: string,
  actor: Actor,
): Promise<UserWithdrawnView | undefined> {
  const deleted = await withAdministrationChange(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    await keepAnAdministrator(trx, user, 'deleted');
    await queueAccountLogouts(trx, user.id, { grants: true });
    const withdrawn = await withdrawAdminHandouts(trx, user.id, actor);
    if (!(await usersQueries.delete(trx, user.id))) throw noUserFor(idOrEmail);
    const revoked = await oidcModelsQueries.destroyByAccountId(trx, user.id);
    await auditQueries.record(trx, actor, 'user.delete', user.id, { email: user.email, revoked });
    return withdrawnView(user, withdrawn);
  });
  if (deleted) wakeBackchannelOutboxes();
  return deleted;
}

/**
 * Issues a one-time link that lets its holder register a passkey for this email (an
 * invitation), as an admin when `admin` is set. The link is shown once; Sesame keeps a hash.
 */
export async function inviteUser(
  db: Db,
  config: Config,
  input: { email: string; admin: boolean },
  actor: Actor,
): Promise<IssuedLinkView> {
  const link = await createOneTimeLink(db, config, {
    email: input.email,
    admin: input.admin,
    purpose: 'invite',
    actor,
  });
  return issuedLinkView(link);
}

/**
 * A link as admins see it: with SMTP_URL set it was also mailed, and says so (`emailed: true`);
 * `takes_over_account: true` when the account it is for has an address nobody proved, so
 * using the link takes the account from whoever signed up with it.
 */
export interface IssuedLinkView {
  url: string;
  expires_at: string;
  emailed?: true;
  takes_over_account?: true;
}

function issuedLinkView(link: IssuedOneTimeLink): IssuedLinkView {
  return {
    url: link.url,
    expires_at: link.expiresAt.toISOString(),
    ...(link.emailed && { emailed: true }),
    ...(link.takesOverAccount && { takes_over_account: true }),
  };
}

/**
 * Issues a recovery link for an existing account: its holder can register a new passkey
 * for it (a lost phone, a new laptop). Shown once to the admin, who passes it on.
 */
export async function issueRecoveryLink(
  db: Db,
  config: Config,
  idOrEmail: string,
  actor: Actor,
): Promise<({ user: UserView } & IssuedLinkView) | undefined> {
  const user = await findUser(db, idOrEmail);
  if (!user) return undefined;
  const link = await createOneTimeLink(db, config, { email: user.email, purpose: 'recovery', actor });
  return { user: userView(user), ...issuedLinkView(link) };
}

/**
 * Sets (`value` given) or removes (`undefined`) one admin-set claim of a user. Setting one on
 * an account whose address nobody proved is refused ({@link unverifiedAccountError}) unless
 * `unverified` says the admin knows whose it is.
 */
export async function changeUserClaim(
  db: Db,
  idOrEmail: string,
  key: string,
  value: unknown,
  actor: Actor,
  options: { unverified?: boolean } = {},
): Promise<{ id: string; email: string; claims: Record<string, unknown> } | undefined> {
  return withAdminAuthority(db, actor, async (trx) => {
    const user = await findUserToChange(trx, idOrEmail);
    if (!user) return undefined;
    if (value !== undefined && !user.email_verified && !options.unverified)
      throw unverifiedAccountError(user);
    let claims: Record<string, unknown>;
    try {
      claims = value === undefined ? withoutClaim(user.claims, key) : withClaim(user.claims, key, value);
    } catch (error) {
      if (error instanceof ClaimValidationError)
        throw badRequest(error.message, { fields: { [error.field]: error.message } });
      throw error;
    }
    updated(await usersQueries.setClaims(trx, user.id, claims), idOrEmail);
    await auditQueries.record(
      trx,
      actor,
      value === undefined ? 'user.unset_claim' : 'user.set_claim',
      user.id,
      { key, ...(value !== undefined && !user.email_verified && { email_verified: false }) },
    );
    return { id: user.id, email: user.email, claims };
  });
}
