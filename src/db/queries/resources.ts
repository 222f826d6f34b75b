import { sql } from 'kysely';
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

  /** Sets the scopes one client may get by client_credentials (undefined: none, the client removed). */
  async setMachineClient(
    db: Db,
    id: string,
    clientId: string,
    scopes: string[] | undefined,
  ): Promise<ResourceRow | undefined> {
    if (!UUID.test(id)) return undefined;
    return db
      .updateTable('resources')
      .set({
        machine_clients:
          scopes === undefined
            ? sql<string>`machine_clients - ${clientId}::text`
            : sql<string>`machine_clients || jsonb_build_object(${clientId}::text, ${JSON.stringify(scopes)}::jsonb)`,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  async delete(db: Db, id: string): Promise<ResourceRow | undefined> {
    if (!UUID.test(id)) return undefined;
    return db.deleteFrom('resources').where('id', '=', id).returningAll().executeTakeFirst();
  },
};
