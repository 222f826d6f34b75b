import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config.js';
import { watchPool } from '../metrics.js';
import { lockDataDir } from './dataDirLock.js';
import { migratePostgresToLatest, migrateToLatest } from './migrate.js';
import { type ListenHandlers, listenOnPGlite, listenOnPostgres, type Subscription } from './notifications.js';
import { PGliteDialect } from './pgliteDialect.js';
import { seedFromTemplate } from './pgliteTemplate.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** An open database and how to close it. */
export interface DatabaseHandle {
  db: Db;
  kind: 'postgres' | 'embedded';
  /** Where the data lives, for the start-up log: a directory, or the URL without its password. */
  location: string;
  /** Subscribes to a Postgres notification channel (NOTIFY is delivered after commit). */
  listen(channel: string, handlers: ListenHandlers): Promise<Subscription>;
  /** Applies every pending migration; resolves to the names of those that ran now. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

// int8 (counters, bigserial ids) arrives as a string by default; timestamps stay Dates.
pg.types.setTypeParser(20, (value) => Number(value));

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** Opens Postgres when DATABASE_URL is set, else the embedded PGlite database in DATA_DIR. */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'databaseDirectUrl'>>,
  options: { poolSize?: number; onPoolError?: (error: Error) => void } = {},
): Promise<DatabaseHandle> {
  if (config.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: config.databaseUrl,
      max: options.poolSize ?? 10,
      // Fail (and say so) rather than hang when the database host does not answer.
      connectionTimeoutMillis: 10_000,
    });
    // An idle connection that breaks (Postgres restarted, network cut) is an 'error' event on
    // the pool; unhandled, it would kill the process. The pool drops that connection and the
    // next query opens a new one, so logging it is enough.
    pool.on('error', (error) => options.onPoolError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    // LISTEN and migrations need one server session throughout, which a transaction-mode
    // pooler in front of DATABASE_URL does not give; DATABASE_DIRECT_URL names one that does.
    const directUrl = config.databaseDirectUrl ?? config.databaseUrl;
    const unwatchPool = watchPool(pool);
    return {
      db,
      kind: 'postgres',
      location: redact(config.databaseUrl),
      listen: (channel, handlers) => listenOnPostgres(directUrl, db, channel, handlers),
      migrate: () => migratePostgresToLatest(directUrl),
      close: () => {
        unwatchPool();
        return db.destroy();
      },
    };
  }
  const release = lockDataDir(config.dataDir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const pgDir = path.join(config.dataDir, 'pg');
    seedFromTemplate(pgDir);
    const pglite = await PGlite.create(pgDir);
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return {
      db,
      kind: 'embedded',
      location: config.dataDir,
      listen: (channel, handlers) => listenOnPGlite(db, pglite, channel, handlers),
      migrate: () => migrateToLatest(db),
      close: async () => {
        await db.destroy();
        release();
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}
