import { Migrator } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Db } from './connect.js';

/**
 * Applies every pending migration. Kysely takes a lock (an advisory lock on Postgres), so
 * instances starting together do not race.
 * @returns the names of the migrations that ran now.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
