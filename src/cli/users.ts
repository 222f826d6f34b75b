import type { Command } from 'commander';
import { parseClaimValue } from '../accounts/customClaims.js';
import {
  changeUserClaim,
  deleteUser,
  demoteUser,
  disableUser,
  enableUser,
  inviteUser,
  listAllUsers,
  promoteUser,
  type UserWithdrawnView,
} from '../admin/users.js';
import { HttpError } from '../http/errors.js';
import { emailSchema, issueMessage } from '../http/schemas.js';
import { confirmOrRefuse } from './confirm.js';
import { CliError, cliActor, output, table, withDatabase } from './context.js';
import { refusalLine, UNVERIFIED_FLAG_HELP } from './flags.js';

const noUser = (idOrEmail: string) => new CliError(`no user with id or email ${idOrEmail}`);

/** `sesame users ...`: see, disable, delete and invite the people who sign in through Sesame. */
export function registerUserCommands(program: Command): void {
  const users = program.command('users').description('manage user accounts');

  users
    .command('list')
    .description('list users in email order')
    .option('--search <text>', 'only users whose email or name contains the text')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = await listAllUsers(db, opts.search);
        output(opts.json, all, () =>
          table(
            ['ID', 'EMAIL', 'NAME', 'ROLE', 'STATUS', 'ADDRESS', 'CREATED'],
            all.map((u) => [
              u.id,
              u.email,
              u.name ?? '',
              u.is_admin ? 'admin' : 'user',
              u.disabled ? 'disabled' : 'active',
              u.email_verified ? 'verified' : 'unverified',
              u.created_at,
            ]),
          ),
        );
      }),
    );

  users
    .command('disable <id-or-email>')
    .description('stop a user signing in and revoke their sessions, grants and tokens')
    .option('--json', 'print JSON')
    .action((idOrEmail: string, opts) =>
      withDatabase(async (db) => {
        const user = await disableUser(db, idOrEmail, cliActor());
        if (!user) throw noUser(idOrEmail);
        output(opts.json, user, () =>
          [`Disabled ${user.email}; their sessions and tokens are revoked`, ...withdrawnLines(user)].join(
            '\n',
          ),
        );
      }),
    );

  users
    .command('enable <id-or-email>')
    .description('let a disabled user sign in again')
    .option('--json', 'print JSON')
    .action((idOrEmail: string, opts) =>
      withDatabase(async (db) => {
        const user = await enableUser(db, idOrEmail, cliActor());
        if (!user) throw noUser(idOrEmail);
        output(opts.json, user, () => `Enabled ${user.email}`);
      }),
    );

  users
    .command('promote <id-or-email>')
    .description('make an existing account a Sesame administrator')
    .option('--unverified', `promote it ${UNVERIFIED_FLAG_HELP}`, false)
    .option('--json', 'print JSON')
    .action((idOrEmail: string, opts) =>
      withDatabase(async (db, config) => {
        const user = await promoteUser(db, config, idOrEmail, cliActor(), {
          unverified: opts.unverified,
        }).catch((error: unknown) => {
          if (error instanceof HttpError && error.code === 'email_unverified')
            throw new CliError(refusalLine(error));
          throw error;
        });
        if (!user) throw noUser(idOrEmail);
        output(opts.json, user, () => `${user.email} is an administrator`);
      }),
    );

  users
    .command('demote <id-or-email>')
    .description('take administration away from an account (never from the last administrator)')
    .option('--json', 'print JSON')
    .action((idOrEmail: string, opts) =>
      withDatabase(async (db) => {
        const user = await demoteUser(db, idOrEmail, cliActor());
        if (!user) throw noUser(idOrEmail);
        output(opts.json, user, () =>
          [`${user.email} is no longer an administrator`, ...withdrawnLines(user)].join('\n'),
        );
      }),
    );

  users
    .command('delete <id-or-email>')
    .description('delete a user, their passkeys, sessions, grants and tokens')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (idOrEmail: string, opts) => {
      await confirmOrRefuse(`Delete user ${idOrEmail} with their passkeys, sessions and tokens?`, opts.yes);
      return withDatabase(async (db) => {
        const user = await deleteUser(db, idOrEmail, cliActor());
        if (!user) throw noUser(idOrEmail);
        output(
          opts.json,
          {
            id: user.id,
            email: user.email,
            deleted: true,
            revoked_api_keys: user.revoked_api_keys,
            cancelled_links: user.cancelled_links,
          },
          () => [`Deleted ${user.email}`, ...withdrawnLines(user)].join('\n'),
        );
      });
    });

  users
    .command('invite')
    .description('create a one-time link that lets its holder register a passkey for this email')
    .requiredOption('--email <email>', "the invited person's email")
    .option('--admin', 'the account becomes a Sesame administrator', false)
    .option('--json', 'print JSON')
    .action((opts) => {
      const email = emailSchema.safeParse(opts.email);
      if (!email.success) throw new CliError(`--email: ${issueMessage(email.error.issues[0]!)}`);
      return withDatabase(async (db, config) => {
        const link = await inviteUser(db, config, { email: email.data, admin: opts.admin }, cliActor());
        output(opts.json, link, () =>
          [
            `One-time link for ${email.data}${opts.admin ? ' (administrator)' : ''}:`,
            link.url,
            `It works once and expires at ${link.expires_at}.`,
            ...(link.takes_over_account
              ? [
                  `Nobody proved the address of the account ${email.data} has: whoever uses the link takes that account over${opts.admin ? ' as an administrator' : ''} with a new account and a new sub (apps see a new user; what they kept for the old sub stays with it), and the old account's passkeys, sign-ins and admin API keys end.`,
                ]
              : []),
            ...(link.emailed ? [`It was also mailed to ${email.data}.`] : []),
          ].join('\n'),
        );
      });
    });

  users
    .command('set-claim <user> <key> <value>')
    .description(
      'set a claim released with the profile scope; it wins over a group claim (VALUE: JSON, else text)',
    )
    .option('--unverified', `set it ${UNVERIFIED_FLAG_HELP}`, false)
    .option('--json', 'print JSON')
    .action((idOrEmail: string, key: string, value: string, opts) =>
      changeClaim(idOrEmail, key, parseClaimValue(value), opts),
    );

  users
    .command('unset-claim <user> <key>')
    .description("remove one of a user's claims")
    .option('--json', 'print JSON')
    .action((idOrEmail: string, key: string, opts) => changeClaim(idOrEmail, key, undefined, opts));
}

/** What the CLI says an ended administration took back: the admin's API keys and unused links. */
function withdrawnLines(user: UserWithdrawnView): string[] {
  return [
    ...user.revoked_api_keys.map((id) => `Revoked API key ${id}, which they created`),
    ...(user.cancelled_links > 0
      ? [
          `Cancelled ${user.cancelled_links} unused one-time link${user.cancelled_links === 1 ? '' : 's'} they issued`,
        ]
      : []),
  ];
}

function changeClaim(
  idOrEmail: string,
  key: string,
  value: unknown,
  { json, unverified }: { json: boolean; unverified?: boolean },
) {
  return withDatabase(async (db) => {
    const user = await changeUserClaim(db, idOrEmail, key, value, cliActor(), { unverified }).catch(
      (error: unknown) => {
        throw error instanceof HttpError ? new CliError(refusalLine(error)) : error;
      },
    );
    if (!user) throw noUser(idOrEmail);
    output(json, user, () =>
      value === undefined
        ? `${user.email}: ${key} removed`
        : `${user.email}: ${key} = ${JSON.stringify(value)}`,
    );
  });
}
