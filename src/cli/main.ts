import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { DataDirBusyError } from '../db/dataDirLock.js';
import { KEY_ACTIVATION_DELAY_SECONDS, rotateSigningKeys } from '../oidc/keys.js';
import { ROOT } from '../paths.js';
import { printable } from '../text.js';
import { registerApiKeyCommands } from './apiKeys.js';
import { registerClientCommands } from './clients.js';
import { CliError, cliActor, output, withDatabase } from './context.js';
import { activationFromFlags, seconds } from './flags.js';
import { registerGroupCommands } from './groups.js';
import { registerPasskeyApiCommands } from './passkeyApi.js';
import { registerResourceCommands } from './resources.js';
import { registerUserCommands } from './users.js';

/** Commander's messages start with `error:` and may wrap; the CLI prints one line, its control characters escaped. */
function oneLine(message: string): string {
  return printable(
    message
      .replace(/^error:\s*/, '')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
};

const program = new Command('sesame')
  .description('Administer a Sesame identity provider (uses the same configuration as the server)')
  .version(version, '-V, --version', 'print the Sesame version')
  // Usage mistakes are one line like every other error: `sesame: <what is wrong> (see --help)`.
  .configureOutput({
    outputError: (message, write) => write(`sesame: ${oneLine(message)} (see --help)\n`),
  })
  .exitOverride();

/** `sesame clients` in `sesame: ... (see sesame clients --help)`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/**
 * A group run without a subcommand (`sesame clients`) would print its whole help as an
 * error; instead it says in one line which subcommands it has, and exits 1 like every error.
 * Commander drops the implicit `help` subcommand of a group that has an action, so it is
 * added back explicitly.
 */
function requireSubcommands(command: Command): void {
  if (command.commands.length === 0) return;
  for (const sub of command.commands) requireSubcommands(sub);
  const path = commandPath(command);
  const names = command.commands.map((sub) => sub.name()).join(', ');
  command
    .helpCommand(true)
    .allowExcessArguments()
    .action((_options, self: Command) => {
      const [unknown] = self.args;
      if (unknown !== undefined) throw new CliError(`unknown command '${unknown}' (see ${path} --help)`);
      throw new CliError(`missing command: ${names} (see ${path} --help)`);
    });
}

registerClientCommands(program);
registerApiKeyCommands(program);
registerUserCommands(program);
registerGroupCommands(program);
registerPasskeyApiCommands(program);
registerResourceCommands(program);

program
  .command('keys')
  .description('manage token signing keys')
  .command('rotate')
  .description(
    'add new signing keys: published at once, signing after a delay; the old ones sign until then and stay published until tokens they signed expire',
  )
  .option(
    '--activate-in <seconds>',
    'how long apps get to fetch the new keys before they sign (0: at once, for a key thought exposed)',
    seconds,
    KEY_ACTIVATION_DELAY_SECONDS,
  )
  .option(
    '--revoke-previous',
    "also remove every earlier key from the JWKS and from signing at once (a key known exposed); tokens it signed stop verifying. Implies --activate-in 0. Passkey API apps have keys of their own: see 'sesame passkey-api rotate-signing-key'",
  )
  .option('--json', 'print JSON')
  .action((opts: { activateIn: number; revokePrevious?: boolean; json?: boolean }, command: Command) => {
    const activation = activationFromFlags(opts, command, 'the new keys');
    return withDatabase(async (db, config) => {
      const { kids, activatesAt, revokedKids } = await rotateSigningKeys(db, config, cliActor(), activation);
      output(
        Boolean(opts.json),
        {
          kids,
          activates_at: activatesAt.toISOString(),
          ...(opts.revokePrevious && { revoked_kids: revokedKids }),
        },
        () =>
          [
            `New signing keys: ${kids.join(', ')}`,
            `Published now; they sign from ${activatesAt.toISOString()}. Running servers pick them up at once (within 2 s behind a pooler without DATABASE_DIRECT_URL).`,
            ...(opts.revokePrevious
              ? [
                  `Revoked: ${revokedKids.join(', ') || 'none'}. Tokens they signed no longer verify; apps that check ID tokens will ask people to sign in again.`,
                ]
              : []),
          ].join('\n'),
      );
    });
  });

program
  .command('migrate')
  .description('apply pending database migrations')
  .option('--json', 'print JSON')
  .action((opts) =>
    withDatabase(async (_db, _config, applied) => {
      output(opts.json, { applied }, () =>
        applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date',
      );
    }),
  );

requireSubcommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else if (error instanceof CliError || error instanceof ConfigError || error instanceof DataDirBusyError) {
    process.stderr.write(`sesame: ${oneLine(error.message)}\n`);
    process.exitCode = 1;
  } else {
    // A driver's error (Postgres unreachable, a failed query) may be empty or span lines.
    const message = oneLine((error as Error)?.message || String(error)) || 'failed';
    process.stderr.write(`sesame: ${message}\n`);
    process.exitCode = 1;
  }
}
