import { Kysely, Migrator, PostgresAdapter, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrations } from '../../migrations/index.js';
import type { Db } from './connect.js';
import type { Database } from './schema.js';

/**
 * The key of the migration lock: Kysely's own, so an instance still on an older Sesame
 * (which takes it as a session lock) and a newer one (which takes it per transaction)
 * exclude each other during a rolling upgrade.
 */
const MIGRATION_LOCK_KEY = '3853314791062309107';

/**
 * How long a start (or a `sesame` command) waits for another instance's migration, or for a
 * table a migration must alter, before it gives up and says so. Migrations here take
 * seconds; a minute means something is stuck, and waiting longer only hides it.
 */
const MIGRATION_LOCK_TIMEOUT_MS = 60_000;

/** Raised when the migration could not get its lock in time; its message says what to check. */
export class MigrationLockTimeoutError extends Error {
  override name = 'MigrationLockTimeoutError';
}

/**
 * Applies every pending migration. Kysely takes a lock (an advisory lock on Postgres), so
 * instances starting together do not race. Used on the embedded database, which is one
 * session in one process; Postgres goes through {@link migratePostgresToLatest}.
 * @returns the names of the migrations that ran now.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  return runMigrator(sesameMigrator(db));
}

/**
 * Kysely's migrator over every migration, allowing unordered ones: some reached main after a
 * later-numbered one had (0005–0006 after 0007, 0008 after 0009, 0013 after 0014, 0017–0018
 * after 0019–0020), and a database migrated between the two was refused by Kysely's check that
 * what ran is a prefix of the sorted list ("corrupted migrations"), so it could never be
 * upgraded. A migration a database ran that this version lacks is still refused.
 */
function sesameMigrator(db: Kysely<Database>, options: { disableTransactions?: boolean } = {}): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    allowUnorderedMigrations: true,
    ...options,
  });
}

/**
 * What the database ran of this version's migrations, read without a lock or a change:
 * whether it ran any (a database no Sesame has used yet ran none) and the names of those it
 * has not run yet.
 */
export async function migrationState(db: Db): Promise<{ ranAny: boolean; pending: string[] }> {
  const known = await sesameMigrator(db).getMigrations();
  return {
    ranAny: known.some((migration) => migration.executedAt !== undefined),
    pending: known.filter((migration) => migration.executedAt === undefined).map(({ name }) => name),
  };
}

async function runMigrator(migrator: Migrator): Promise<string[]> {
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const newer = newerDatabaseError(error);
    if (newer) throw newer;
    // The driver's message alone ("relation ... already exists") does not say which
    // migration stopped; the operator needs its name to look into it. Every migration of
    // the run is rolled back with it.
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error : new Error(String(error));
    if (!failed) throw reason;
    // With the driver's SQLSTATE, which callers tell a lock timeout (55P03) by.
    throw Object.assign(
      new Error(`migration ${failed} failed, and none was applied: ${reason.message}`, { cause: reason }),
      { code: (reason as { code?: unknown }).code },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Kysely's refusal of a database that ran a migration this version lacks, said as what it means. */
function newerDatabaseError(error: unknown): Error | undefined {
  const missing = /previously executed migration (\S+) is missing/.exec(String((error as Error)?.message));
  return missing
    ? new Error(
        `the database was migrated by a newer Sesame (it ran migration ${missing[1]}, which this version does not have): run that version or a newer one`,
      )
    : undefined;
}

/** Kysely's Postgres adapter without its session-level lock: the caller holds a transaction-scoped one. */
class LockHeldByCallerAdapter extends PostgresAdapter {
  override async acquireMigrationLock(): Promise<void> {}
  override async releaseMigrationLock(): Promise<void> {}
}

class LockHeldByCallerDialect extends PostgresDialect {
  override createAdapter() {
    return new LockHeldByCallerAdapter();
  }
}

/** A name as SQL takes it: as it is when it needs no quotes (`sesame`), else quoted (`"sesame-prod"`). */
function asIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : pg.escapeIdentifier(name);
}

/**
 * Why the database user may not create Sesame's tables, or undefined when it may. Kysely
 * creates its own table first and, when that fails, looks whether the table is there inside
 * the failed transaction: the operator read only "current transaction is aborted", not the
 * "permission denied for schema public" of a database created by another role (Postgres 15
 * and later let only the database's owner create tables in public).
 */
async function creationRefused(client: pg.Client): Promise<string | undefined> {
  const found = await client
    .query<{ role: string; schema: string | null; database: string; may: boolean | null }>(
      `select current_user as role, current_schema() as schema, current_database() as database,
              has_schema_privilege(current_schema(), 'CREATE') as may`,
    )
    .then((result) => result.rows[0])
    .catch(() => undefined);
  if (!found || found.may === true) return undefined;
  const [role, schema, database] = [found.role, found.schema, found.database].map((name) =>
    name === null ? null : asIdentifier(name),
  );
  if (schema === null)
    return `no schema of the search_path of role ${role} exists in database ${database}: create one it may use, or reset its search_path`;
  return (
    `role ${role} may not create tables in schema ${schema} of database ${database}: make it the database's owner ` +
    `(ALTER DATABASE ${database} OWNER TO ${role}; createdb -O ${role} for a new one) or GRANT CREATE ON SCHEMA ${schema} TO ${role}`
  );
}

/**
 * Applies every pending migration on Postgres inside one transaction on one connection,
 * holding a transaction-scoped advisory lock (`pg_advisory_xact_lock`). Kysely's own lock is
 * session-level and released by a separate statement, which a transaction-mode pooler
 * (PgBouncer, hosted poolers) may send to another server connection, leaving the lock held
 * on a pooled connection for every later start to wait on. A transaction's lock ends with
 * the transaction whatever happens: commit, rollback, or a dropped connection. Safe through
 * a transaction-mode pooler too, since the pooler keeps a transaction on one server session.
 * @param connectionString DATABASE_DIRECT_URL (or DATABASE_URL).
 * @param lockTimeoutMs how long to wait for a lock (tests shorten it).
 * @returns the names of the migrations that ran now.
 * @throws MigrationLockTimeoutError when another migration held the lock for a minute.
 */
export async function migratePostgresToLatest(
  connectionString: string,
  lockTimeoutMs = MIGRATION_LOCK_TIMEOUT_MS,
): Promise<string[]> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000 });
  await client.connect();
  // Kysely runs every statement on this one client, inside the transaction opened below.
  const onePool = { connect: async () => Object.assign(client, { release() {} }), end: async () => {} };
  const db = new Kysely<Database>({ dialect: new LockHeldByCallerDialect({ pool: onePool }) });
  try {
    await client.query('begin');
    try {
      await sql`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`.execute(db);
      await sql`select pg_advisory_xact_lock(${sql.lit(MIGRATION_LOCK_KEY)}::bigint)`.execute(db);
      const applied = await runMigrator(sesameMigrator(db, { disableTransactions: true }));
      await client.query('commit');
      return applied;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      const code = (error as { code?: string }).code;
      if (code === '55P03') {
        throw new MigrationLockTimeoutError(
          `waited ${lockTimeoutMs / 1000} s for a lock another session holds (another instance migrating, ` +
            'or a long transaction on a table the migration alters); see pg_locks and try again',
        );
      }
      // Only a refusal (42501), or the aborted transaction Kysely's look for its table reports
      // after one (25P02), may be the schema's: a role without CREATE that runs a database its
      // owner migrated fails otherwise for other reasons, and was told to take the database over.
      const refused = code === '42501' || code === '25P02' ? await creationRefused(client) : undefined;
      if (refused) throw new Error(refused, { cause: error });
      throw error;
    }
  } finally {
    await client.end().catch(() => {});
  }
}
