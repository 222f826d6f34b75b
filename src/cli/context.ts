import os from 'node:os';
import { type Config, loadConfig } from '../config.js';
import { type DatabaseHandle, databaseUrlForLog, openDatabase } from '../db/connect.js';
import { migrationState } from '../db/migrate.js';
import { issuerMismatch } from '../db/serverIssuer.js';
import { secretForCommands } from '../keysAtRest.js';
import { printable } from '../text.js';

/** A one-line failure the CLI prints as `sesame: <message>` before exiting non-zero. */
export class CliError extends Error {
  override name = 'CliError';
}

/**
 * Who the audit log names for a change made with this command: `cli:<os username>`, so a
 * shared server's log tells which operator ran it. A process without a passwd entry (an
 * arbitrary container uid) is named by its uid.
 */
export function cliActor(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

/** Whether the command prints JSON (--json): then its stderr holds nothing but an error. */
let printsJson = false;

/** Set before each command runs (cli/main.ts), from its --json. */
export function setPrintsJson(json: boolean): void {
  printsJson = json;
}

/**
 * The database a command opens, as one line for the operator: the data directory, or the
 * Postgres URL with its password masked. A command run with other settings than the
 * server's (another directory's, or DATABASE_URL set only for the server) shows it here.
 */
function databaseLine(config: Pick<Config, 'databaseUrl' | 'dataDir'>): string {
  return config.databaseUrl
    ? `using Postgres at ${databaseUrlForLog(config.databaseUrl)}`
    : `using the embedded database in ${config.dataDir}`;
}

/**
 * Refuses a database an older Sesame migrated that lacks some of this version's migrations.
 * A read-only command (`clients list`) upgraded it silently before, under servers of the
 * older version still running on it: their passkey API, for one, then answered 500.
 */
async function refuseOlderSchema(db: DatabaseHandle['db']): Promise<void> {
  const { ranAny, pending } = await migrationState(db);
  if (!ranAny || pending.length === 0) return;
  throw new CliError(
    `the database is an older Sesame's: it lacks ${pending.length} migration(s) of this version (${pending[0]}${pending.length > 1 ? ' …' : ''}); ` +
      'back it up and stop the servers of the older version, then run `sesame migrate` (or start this version) and this command again',
  );
}

/**
 * Refuses `sesame migrate` through a server that runs on the embedded database while it lacks
 * a migration: a server migrates at its start, so that one is an older Sesame, which the new
 * schema would break under its feet.
 */
async function refuseMigratingUnderServer(db: DatabaseHandle['db'], dataDir: string): Promise<void> {
  const { pending } = await migrationState(db);
  if (pending.length === 0) return;
  throw new CliError(
    `an older Sesame's server runs on the embedded database in ${dataDir}, and the migrations would break it: stop it, then run \`sesame migrate\` again (or start this version)`,
  );
}

/**
 * Runs one command against the database the server uses (same config). A database no Sesame
 * has used yet is migrated first, so the CLI works before the server's first start; one an
 * older Sesame migrated is upgraded only by `sesame migrate` (`migrates`) or a server's start:
 * the servers of that older version may still run on it, and a new schema breaks them
 * (docs/operations.md, Upgrades), so any other command refuses it with one line and changes
 * nothing. On a terminal, and unless the command prints JSON, it first says on stderr which
 * database that is; a script's stderr keeps only the one line of an error. `sealsKeys`: the
 * command seals the stored keys itself (`keys reseal`), with KEY_ENCRYPTION_SECRET as set.
 */
export async function withDatabase<T>(
  run: (db: DatabaseHandle['db'], config: Config, migrationsApplied: string[]) => Promise<T>,
  { sealsKeys = false, migrates = false } = {},
): Promise<T> {
  const config = loadConfig();
  if (!printsJson && process.stderr.isTTY)
    process.stderr.write(`sesame: ${printable(databaseLine(config))}\n`);
  // Beside a running server on the embedded database, the command works through the server.
  const database = await openDatabase(config, { poolSize: 2, throughRunningServer: true });
  try {
    // A warning, not a refusal: most commands print no link. JSON's stderr holds errors only.
    const mismatch = database.throughRunningServer
      ? issuerMismatch(config.dataDir, config.issuer)
      : undefined;
    if (mismatch && !printsJson) process.stderr.write(`sesame: ${printable(mismatch)}\n`);
    if (!migrates) await refuseOlderSchema(database.db);
    else if (database.throughRunningServer) await refuseMigratingUnderServer(database.db, config.dataDir);
    const applied = await database.migrate();
    // A command that writes a key must seal it the way the server does: the same secret,
    // or none while the servers run without one (secretForCommands).
    const keyEncryptionSecret = await secretForCommands(database.db, config);
    return await run(database.db, sealsKeys ? config : { ...config, keyEncryptionSecret }, applied);
  } finally {
    await database.close();
  }
}

/**
 * Prints the JSON form for scripts, or the human form. The human form goes to a terminal:
 * its control characters are shown escaped (src/text.ts `printable`), so a name or email
 * someone chose cannot send the admin's terminal commands (JSON escapes them itself).
 */
export function output(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${printable(human(), true)}\n`);
}

/** A plain text table: one header row, columns padded to their widest cell; a newline in a cell is shown escaped, not as a row. */
export function table(headers: string[], cells: string[][]): string {
  if (cells.length === 0) return '(none)';
  const rows = cells.map((row) => row.map((cell) => printable(cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Commander's collector for repeatable options (`--redirect-uri a --redirect-uri b`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
