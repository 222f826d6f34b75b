import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { isConnectionFailure } from '../db/connectionFailure.js';
import { DataDirBusyError } from '../db/dataDirLock.js';
import { ROOT } from '../paths.js';
import { printable } from '../text.js';
import { registerApiKeyCommands } from './apiKeys.js';
import { registerClientCommands } from './clients.js';
import { CliError, output, setPrintsJson, withDatabase } from './context.js';
import { registerGroupCommands } from './groups.js';
import { registerKeyCommands } from './keys.js';
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
  .exitOverride()
  .hook('preAction', (_program, command) => {
    setPrintsJson(Boolean(command.opts().json));
    refuseFlagsTakenAsValues(command);
    refuseRepeatedValues(command, process.argv.slice(2));
  });

/**
 * Commander gives an option that takes a value the next word even when that word is one of
 * the command's own flags: `clients update ID --name --first-party` renamed the client to
 * "--first-party" (shown on its consent page) and left it as it was, and `groups create
 * --name --json` made a group "--json" and printed no JSON. Such a value is the value missing.
 */
function refuseFlagsTakenAsValues(command: Command): void {
  const flags = new Set(['--help', '-h']);
  for (let at: Command | null = command; at; at = at.parent)
    for (const option of at.options)
      for (const flag of [option.long, option.short]) if (flag) flags.add(flag);
  for (const option of command.options) {
    if (!option.required && !option.optional) continue;
    const name = option.attributeName();
    if (command.getOptionValueSource(name) !== 'cli') continue;
    const value: unknown = command.getOptionValue(name);
    for (const given of Array.isArray(value) ? value : [value]) {
      if (typeof given === 'string' && flags.has(given.split('=')[0]!))
        throw new CliError(`option '${option.flags}' argument missing: ${given} is an option (see --help)`);
    }
  }
}

/**
 * Commander keeps the last of an option given twice: `clients update ID --name Notes --name
 * Photos` renamed the client to "Photos" without a word, and a script that added a flag to a
 * line that already had it changed something other than it meant. An option that takes one
 * value is refused when given twice; those that collect one value per use (`--redirect-uri`)
 * take each. `args` are the words after `sesame`; a `--` ends the options.
 */
function refuseRepeatedValues(command: Command, args: readonly string[]): void {
  const words = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  for (const option of command.options) {
    if (!option.required && !option.optional) continue;
    const name = option.attributeName();
    if (command.getOptionValueSource(name) !== 'cli' || Array.isArray(command.getOptionValue(name))) continue;
    const uses = words.filter(
      (word) => word === option.long || word === option.short || word.startsWith(`${option.long}=`),
    ).length;
    if (uses > 1)
      throw new CliError(`option '${option.flags}' given ${uses} times: give it once (see --help)`);
  }
}

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
registerKeyCommands(program);

program
  .command('migrate')
  .description('apply pending database migrations')
  .option('--json', 'print JSON')
  .action((opts) =>
    withDatabase(
      async (_db, _config, applied) => {
        output(opts.json, { applied }, () =>
          applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date',
        );
      },
      { migrates: true },
    ),
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
    const connecting = isConnectionFailure(error) ? 'cannot connect to the database: ' : '';
    process.stderr.write(`sesame: ${connecting}${message}\n`);
    process.exitCode = 1;
  }
}
