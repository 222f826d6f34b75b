import { withAdminAuthority } from '../accounts/adminAuthority.js';
import { ClaimValidationError, withClaim, withoutClaim } from '../accounts/customClaims.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { groupsQueries } from '../db/queries/groups.js';
import type { GroupRow } from '../db/schema.js';
import { badRequest, conflict, HttpError, notFound } from '../http/errors.js';
import {
  CONTROL_CHARACTERS_REFUSED,
  hasNoControlCharacters,
  INVISIBLE_NAME_REFUSED,
  isVisibleText,
} from '../text.js';
import { findUserToChange, noUserFor, unverifiedAccountError } from './users.js';

/** A group as admins see it. */
export interface GroupView {
  id: string;
  name: string;
  claims: Record<string, unknown>;
  member_count?: number;
  created_at: string;
}

export function groupView(row: GroupRow & { member_count?: number }): GroupView {
  return {
    id: row.id,
    name: row.name,
    claims: row.claims ?? {},
    ...(row.member_count !== undefined && { member_count: row.member_count }),
    created_at: new Date(row.created_at).toISOString(),
  };
}

export const GROUP_NAME_MAX_LENGTH = 100;

/**
 * A group name as it appears in `groups` claims: 1–100 characters, no control characters,
 * something visible (a name of only U+200B is blank on every page), no leading or trailing
 * space, and not shaped like an id (a name that looks like a uuid would make `GROUP`
 * arguments ambiguous).
 */
export function checkGroupName(raw: unknown): string {
  if (typeof raw !== 'string')
    throw badRequest('name: must be a string', { fields: { name: 'must be a string' } });
  const name = raw.trim();
  const problem =
    name.length === 0
      ? 'is required'
      : name.length > GROUP_NAME_MAX_LENGTH
        ? `must be at most ${GROUP_NAME_MAX_LENGTH} characters`
        : !hasNoControlCharacters(name)
          ? CONTROL_CHARACTERS_REFUSED
          : !isVisibleText(name)
            ? INVISIBLE_NAME_REFUSED
            : /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(name)
              ? 'must not look like a group id'
              : undefined;
  if (problem) throw badRequest(`name: ${problem}`, { fields: { name: problem } });
  return name;
}

const nameTaken = (name: string) =>
  conflict(`A group named ${name} already exists`, { fields: { name: 'is already taken' } });
export const noGroup = (idOrName: string) => notFound(`No group with id or name ${idOrName}`);

/** A claim rule broken by the input, as the 400 the API and the CLI show. */
function claimError(error: unknown): never {
  if (error instanceof ClaimValidationError)
    throw badRequest(error.message, { fields: { [error.field]: error.message } });
  throw error;
}

export async function listGroups(db: Db): Promise<GroupView[]> {
  return (await groupsQueries.list(db)).map(groupView);
}

export async function findGroup(db: Db, idOrName: string): Promise<GroupRow | undefined> {
  return groupsQueries.findByIdOrName(db, idOrName);
}

export async function createGroup(db: Db, rawName: unknown, actor: Actor): Promise<GroupView> {
  const name = checkGroupName(rawName);
  return withAdminAuthority(db, actor, async (trx) => {
    const row = await groupsQueries.insert(trx, name);
    if (!row) throw nameTaken(name);
    await auditQueries.record(trx, actor, 'group.create', row.id, { name });
    return groupView(row);
  });
}

export async function renameGroup(
  db: Db,
  idOrName: string,
  rawName: unknown,
  actor: Actor,
): Promise<GroupView> {
  const name = checkGroupName(rawName);
  return withAdminAuthority(db, actor, async (trx) => {
    const group = await groupsQueries.findByIdOrName(trx, idOrName);
    if (!group) throw noGroup(idOrName);
    const row = await groupsQueries.rename(trx, group.id, name);
    if (row === 'taken') throw nameTaken(name);
    if (!row) throw noGroup(idOrName);
    await auditQueries.record(trx, actor, 'group.rename', group.id, { from: group.name, to: name });
    return groupView(row);
  });
}

/**
 * The refusal to delete a group that some clients allow alone (409): with no allowed group
 * left they would admit everyone. The API gets their ids; pages name them by `clients`.
 */
export class OnlyAllowedGroupError extends HttpError {
  constructor(
    readonly group: string,
    readonly clients: { client_id: string; name: string }[],
  ) {
    const ids = clients.map((client) => client.client_id);
    super(
      409,
      'conflict',
      `${group} is the only group that ${ids.length === 1 ? 'client' : 'clients'} ${ids.join(', ')} admit${ids.length === 1 ? 's' : ''}: without it they would admit everyone; give them another allowed group, or allow all groups, first`,
      { clients: ids },
    );
  }
}

/**
 * Deletes a group: its members leave it, and apps that also allow other groups no longer
 * admit anyone through it. An app that allows only this group is a refusal
 * ({@link OnlyAllowedGroupError}), so the admin changes its allowed groups first.
 */
export async function deleteGroup(db: Db, idOrName: string, actor: Actor): Promise<GroupView> {
  return withAdminAuthority(db, actor, async (trx) => {
    // Before the check: a concurrent change of some app's groups would leave it without any.
    await groupsQueries.lockAllowedGroups(trx);
    const group = await groupsQueries.findByIdOrName(trx, idOrName);
    if (!group) throw noGroup(idOrName);
    const onlyGroupOf = await groupsQueries.clientsAllowingOnly(trx, group.id);
    if (onlyGroupOf.length > 0) throw new OnlyAllowedGroupError(group.name, onlyGroupOf);
    await groupsQueries.delete(trx, group.id);
    await auditQueries.record(trx, actor, 'group.delete', group.id, { name: group.name });
    return groupView(group);
  });
}

/** The group and the user of a membership change, the user's row held (see findUserToChange). */
async function groupAndUser(trx: Db, idOrName: string, idOrEmail: string) {
  const group = await groupsQueries.findByIdOrName(trx, idOrName);
  if (!group) throw noGroup(idOrName);
  const user = await findUserToChange(trx, idOrEmail);
  if (!user) throw noUserFor(idOrEmail);
  return { group, user };
}

/**
 * Adds a user to a group (idempotent; audited when it changes something). An account whose
 * address nobody proved is refused ({@link unverifiedAccountError}) unless `unverified` says
 * the admin knows whose it is: groups decide which apps a person may use.
 */
export async function addGroupMember(
  db: Db,
  idOrName: string,
  idOrEmail: string,
  actor: Actor,
  options: { unverified?: boolean } = {},
) {
  return withAdminAuthority(db, actor, async (trx) => {
    const { group, user } = await groupAndUser(trx, idOrName, idOrEmail);
    if (!user.email_verified && !options.unverified) throw unverifiedAccountError(user);
    const added = await groupsQueries.addMember(trx, group.id, user.id);
    if (added)
      await auditQueries.record(trx, actor, 'group.add_member', group.id, {
        user: user.id,
        email: user.email,
        ...(!user.email_verified && { email_verified: false }),
      });
    return { group: group.name, group_id: group.id, user_id: user.id, email: user.email, member: true };
  });
}

/** Removes a user from a group (idempotent; audited when it changes something). */
export async function removeGroupMember(db: Db, idOrName: string, idOrEmail: string, actor: Actor) {
  return withAdminAuthority(db, actor, async (trx) => {
    const { group, user } = await groupAndUser(trx, idOrName, idOrEmail);
    const removed = await groupsQueries.removeMember(trx, group.id, user.id);
    if (removed)
      await auditQueries.record(trx, actor, 'group.remove_member', group.id, {
        user: user.id,
        email: user.email,
      });
    return { group: group.name, group_id: group.id, user_id: user.id, email: user.email, member: false };
  });
}

export async function groupMembers(db: Db, idOrName: string) {
  const group = await groupsQueries.findByIdOrName(db, idOrName);
  if (!group) throw noGroup(idOrName);
  return { group: groupView(group), members: await groupsQueries.members(db, group.id) };
}

/** Sets (`value` given) or removes (`undefined`) one claim of a group. */
export async function changeGroupClaim(
  db: Db,
  idOrName: string,
  key: string,
  value: unknown,
  actor: Actor,
): Promise<GroupView> {
  return withAdminAuthority(db, actor, async (trx) => {
    const group = await groupsQueries.findByIdOrName(trx, idOrName);
    if (!group) throw noGroup(idOrName);
    let claims: Record<string, unknown>;
    try {
      claims = value === undefined ? withoutClaim(group.claims, key) : withClaim(group.claims, key, value);
    } catch (error) {
      claimError(error);
    }
    const row = await groupsQueries.setClaims(trx, group.id, claims);
    await auditQueries.record(
      trx,
      actor,
      value === undefined ? 'group.unset_claim' : 'group.set_claim',
      group.id,
      {
        key,
      },
    );
    return groupView(row!);
  });
}
