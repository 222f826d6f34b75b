import type { Command } from 'commander';
import { parseClaimValue, unreleasedClaimNames } from '../accounts/customClaims.js';
import {
  addGroupMember,
  changeGroupClaim,
  createGroup,
  deleteGroup,
  groupMembers,
  listGroups,
  removeGroupMember,
  renameGroup,
} from '../admin/groups.js';
import { HttpError } from '../http/errors.js';
import { confirmOrRefuse } from './confirm.js';
import { CliError, cliActor, output, table, withDatabase } from './context.js';
import { refusalLine, UNVERIFIED_FLAG_HELP } from './flags.js';

/** The services' errors as the CLI's one line; a bad name is about the flag that gave it. */
async function guard<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof HttpError) {
      const fields = (error.details?.fields ?? {}) as Record<string, string>;
      throw new CliError(fields.name && error.status === 400 ? `--name: ${fields.name}` : refusalLine(error));
    }
    throw error;
  }
}

/** `sesame groups ...`: groups of users, for `groups` claims, shared claims and which apps they may use. */
export function registerGroupCommands(program: Command): void {
  const groups = program.command('groups').description('manage groups of users');

  groups
    .command('create')
    .description('create a group')
    .requiredOption('--name <name>', 'the group name, as apps see it in the groups claim')
    .option('--json', 'print JSON')
    .action((opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const group = await createGroup(db, opts.name, cliActor());
          output(opts.json, group, () => `Created group ${group.name} (${group.id})`);
        }),
      ),
    );

  groups
    .command('list')
    .description('list groups by name')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = await listGroups(db);
        output(opts.json, all, () =>
          table(
            ['ID', 'NAME', 'MEMBERS', 'CLAIMS'],
            all.map((g) => [g.id, g.name, String(g.member_count ?? 0), Object.keys(g.claims).join(',')]),
          ),
        );
      }),
    );

  groups
    .command('show <group>')
    .description('show a group, its claims and members')
    .option('--json', 'print JSON')
    .action((idOrName: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const { group, members } = await groupMembers(db, idOrName);
          output(
            opts.json,
            { ...group, unreleased_claims: unreleasedClaimNames(group.claims), members },
            () =>
              [
                `id:      ${group.id}`,
                `name:    ${group.name}`,
                `claims:  ${JSON.stringify(group.claims)}`,
                ...unreleasedLine(group.claims),
                `members:\n${members.map((m) => `  ${m.email}${m.email_verified ? '' : ' (unverified)'}`).join('\n') || '  (none)'}`,
              ].join('\n'),
          );
        }),
      ),
    );

  groups
    .command('rename <group>')
    .description('rename a group (apps see the new name in the next token)')
    .requiredOption('--name <name>', 'the new name')
    .option('--json', 'print JSON')
    .action((idOrName: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const group = await renameGroup(db, idOrName, opts.name, cliActor());
          output(opts.json, group, () => `Renamed group ${idOrName} to ${group.name}`);
        }),
      ),
    );

  groups
    .command('delete <group>')
    .description(
      'delete a group; its members leave it and apps that allowed it no longer admit them (refused while it is an app’s only allowed group)',
    )
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (idOrName: string, opts) => {
      await confirmOrRefuse(`Delete group ${idOrName}?`, opts.yes);
      return guard(() =>
        withDatabase(async (db) => {
          const group = await deleteGroup(db, idOrName, cliActor());
          output(
            opts.json,
            { id: group.id, name: group.name, deleted: true },
            () => `Deleted group ${group.name}`,
          );
        }),
      );
    });

  groups
    .command('add-member <group> <user>')
    .description('add a user (id or email) to a group')
    .option('--unverified', `add them ${UNVERIFIED_FLAG_HELP}`, false)
    .option('--json', 'print JSON')
    .action((idOrName: string, idOrEmail: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const done = await addGroupMember(db, idOrName, idOrEmail, cliActor(), {
            unverified: opts.unverified,
          });
          output(opts.json, done, () => `${done.email} is in group ${done.group}`);
        }),
      ),
    );

  groups
    .command('remove-member <group> <user>')
    .description('remove a user (id or email) from a group')
    .option('--json', 'print JSON')
    .action((idOrName: string, idOrEmail: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const done = await removeGroupMember(db, idOrName, idOrEmail, cliActor());
          output(opts.json, done, () => `${done.email} is not in group ${done.group}`);
        }),
      ),
    );

  groups
    .command('set-claim <group> <key> <value>')
    .description(
      "set a claim released to the group's members with the profile scope (VALUE: JSON, else text)",
    )
    .option('--json', 'print JSON')
    .action((idOrName: string, key: string, value: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const group = await changeGroupClaim(db, idOrName, key, parseClaimValue(value), cliActor());
          output(
            opts.json,
            group,
            () => `Group ${group.name}: ${key} = ${JSON.stringify(group.claims[key])}`,
          );
        }),
      ),
    );

  groups
    .command('unset-claim <group> <key>')
    .description('remove a claim from a group')
    .option('--json', 'print JSON')
    .action((idOrName: string, key: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const group = await changeGroupClaim(db, idOrName, key, undefined, cliActor());
          output(opts.json, group, () => `Group ${group.name}: ${key} removed`);
        }),
      ),
    );
}

/** A line naming the stored claims that are not released (see unreleasedClaimNames); none when all are. */
function unreleasedLine(claims: Record<string, unknown>): string[] {
  const names = unreleasedClaimNames(claims);
  return names.length
    ? [`not released: ${names.join(', ')} (names or values Sesame no longer allows; unset them)`]
    : [];
}
