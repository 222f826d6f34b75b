import type { Db } from '../connect.js';

export const appSecretsQueries = {
  async get(db: Db, name: string): Promise<string | undefined> {
    const row = await db
      .selectFrom('app_secrets')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    return row?.value;
  },

  /** Stores the value unless one is there already, and returns whichever won: instances starting together agree. */
  async getOrCreate(db: Db, name: string, make: () => string): Promise<string> {
    await db
      .insertInto('app_secrets')
      .values({ name, value: make() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const value = await this.get(db, name);
    if (value === undefined) throw new Error(`app secret ${name} vanished`);
    return value;
  },
};
