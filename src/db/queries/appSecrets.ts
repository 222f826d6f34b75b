import { sql } from 'kysely';
import type { Db } from '../connect.js';

/** An app secret as stored, and the database's clock when it was read. */
export interface AppSecretRead {
  value: string;
  /** The database's `now()`: every instance measures a stored instant against the same clock. */
  now: Date;
}

export const appSecretsQueries = {
  /**
   * The stored value and the database's clock, or undefined. `forUpdate` (in a transaction)
   * holds the row until it commits, so two changes of one secret (a rotation and the
   * cleanup, say) do not overwrite each other.
   */
  async read(db: Db, name: string, { forUpdate = false } = {}): Promise<AppSecretRead | undefined> {
    let query = db
      .selectFrom('app_secrets')
      .select(['value', sql<Date>`now()`.as('now')])
      .where('name', '=', name);
    if (forUpdate) query = query.forUpdate();
    return query.executeTakeFirst();
  },

  /** Stores the value unless one is there already, and returns whichever won: instances starting together agree. */
  async getOrCreate(db: Db, name: string, make: () => string): Promise<AppSecretRead> {
    await db
      .insertInto('app_secrets')
      .values({ name, value: make() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const read = await this.read(db, name);
    if (read === undefined) throw new Error(`app secret ${name} vanished`);
    return read;
  },

  /** Writes a new value over the stored one (the row exists: read it first). */
  async replace(db: Db, name: string, value: string): Promise<void> {
    await db.updateTable('app_secrets').set({ value }).where('name', '=', name).execute();
  },
};
