import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { ApiKeyRow, ApiKeyScope } from '../schema.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const apiKeysQueries = {
  async insert(
    db: Db,
    key: { name: string; keyHash: string; scope: ApiKeyScope; createdBy: string },
  ): Promise<ApiKeyRow> {
    return db
      .insertInto('api_keys')
      .values({ name: key.name, key_hash: key.keyHash, scope: key.scope, created_by: key.createdBy })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  async list(db: Db): Promise<ApiKeyRow[]> {
    return db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
  },

  async findById(db: Db, id: string): Promise<ApiKeyRow | undefined> {
    // A malformed id reads as "no such key", not as a database error.
    if (!UUID.test(id)) return undefined;
    return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  },

  /** The unrevoked key with this hash; the unique index on key_hash makes it one row at most. */
  async findActiveByHash(db: Db, keyHash: string): Promise<ApiKeyRow | undefined> {
    return db
      .selectFrom('api_keys')
      .selectAll()
      .where('key_hash', '=', keyHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
  },

  /** Marks a key used; at most once a minute per key, so a busy script does not write on every call. */
  async touch(db: Db, id: string): Promise<void> {
    await db
      .updateTable('api_keys')
      .set({ last_used_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb('last_used_at', 'is', null),
          eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`),
        ]),
      )
      .execute();
  },

  /** Revokes every active key `createdBy` made; returns them. */
  async revokeCreatedBy(db: Db, createdBy: string): Promise<ApiKeyRow[]> {
    return db
      .updateTable('api_keys')
      .set({ revoked_at: sql<Date>`now()` })
      .where('created_by', '=', createdBy)
      .where('revoked_at', 'is', null)
      .returningAll()
      .execute();
  },

  /** The ids of every key `createdBy` made, revoked or not. */
  async idsCreatedBy(db: Db, createdBy: string): Promise<string[]> {
    const rows = await db.selectFrom('api_keys').select('id').where('created_by', '=', createdBy).execute();
    return rows.map((row) => row.id);
  },

  /** Revokes an active key; returns it, or undefined when no active key has this id. */
  async revoke(db: Db, id: string): Promise<ApiKeyRow | undefined> {
    if (!UUID.test(id)) return undefined;
    return db
      .updateTable('api_keys')
      .set({ revoked_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  },
};
