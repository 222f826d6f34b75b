import type { Db } from '../connect.js';
import type { ResourceRow } from '../schema.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const resourcesQueries = {
  /** Inserts the resource; undefined when its identifier is already registered. */
  async insert(
    db: Db,
    fields: { identifier: string; name: string; scopes: string[] },
  ): Promise<ResourceRow | undefined> {
    return db
      .insertInto('resources')
      .values({ identifier: fields.identifier, name: fields.name, scopes: JSON.stringify(fields.scopes) })
      .onConflict((oc) => oc.column('identifier').doNothing())
      .returningAll()
      .executeTakeFirst();
  },

  async findByIdentifier(db: Db, identifier: string): Promise<ResourceRow | undefined> {
    return db.selectFrom('resources').selectAll().where('identifier', '=', identifier).executeTakeFirst();
  },

  async findById(db: Db, id: string): Promise<ResourceRow | undefined> {
    // A malformed id must read as "no such resource", not as a database error.
    if (!UUID.test(id)) return undefined;
    return db.selectFrom('resources').selectAll().where('id', '=', id).executeTakeFirst();
  },

  async list(db: Db): Promise<ResourceRow[]> {
    return db.selectFrom('resources').selectAll().orderBy('identifier').execute();
  },

  async delete(db: Db, id: string): Promise<ResourceRow | undefined> {
    if (!UUID.test(id)) return undefined;
    return db.deleteFrom('resources').where('id', '=', id).returningAll().executeTakeFirst();
  },
};
