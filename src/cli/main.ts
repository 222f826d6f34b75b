import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { DataDirBusyError } from '../db/dataDirLock.js';
import { rotateSigningKeys } from '../oidc/keys.js';
import { registerApiKeyCommands } from './apiKeys.js';
import { registerClientCommands } from './clients.js';
import { CliError, output, withDatabase } from './context.js';
import { registerPasskeyApiCommands } from './passkeyApi.js';
import { registerUserCommands } from './users.js';

/** Commander's messages start with `error:` and may wrap; the CLI prints one line. */
function oneLine(message: string): string {
  return message
    .replace(/^error:\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

const program = new Command('sesame')
  .description('Administer a Sesame identity provider (uses the same configuration as the server)')
  // Usage mistakes are one line like every other error: `sesame: <what is wrong> (see --help)`.
  .configureOutput({
    outputError: (message, write) => write(`sesame: ${oneLine(message)} (see --help)\n`),
  })
  .exitOverride();

registerClientCommands(program);
registerApiKeyCommands(program);
registerUserCommands(program);
registerPasskeyApiCommands(program);

program
  .command('keys')
  .description('manage token signing keys')
  .command('rotate')
  .description('add new signing keys; the old ones stay published until tokens they signed expire')
  .option('--json', 'print JSON')
  .action((opts) =>
    withDatabase(async (db, config) => {
      const kids = await rotateSigningKeys(db, config);
      output(
        opts.json,
        { kids },
        () =>
          `New signing keys: ${kids.join(', ')}\nA running server starts signing with them after its next restart.`,
      );
    }),
  );

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

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else if (error instanceof CliError || error instanceof ConfigError || error instanceof DataDirBusyError) {
    process.stderr.write(`sesame: ${error.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`sesame: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
