import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { User } from '../schema.js';

export const usersQueries = {
  async findById(db: Db, id: string): Promise<User | undefined> {
    // A malformed id must read as "no such user", not as a database error.
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
    return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  },

  async findByEmail(db: Db, email: string): Promise<User | undefined> {
    return db
      .selectFrom('users')
      .selectAll()
      .where(sql<string>`lower(email)`, '=', email.toLowerCase())
      .executeTakeFirst();
  },

  async insert(
    db: Db,
    values: { id?: string; email: string; name: string | null; isAdmin?: boolean; emailVerified?: boolean },
  ): Promise<User> {
    return db
      .insertInto('users')
      .values({
        ...(values.id && { id: values.id }),
        email: values.email,
        name: values.name,
        is_admin: values.isAdmin ?? false,
        email_verified: values.emailVerified ?? false,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  async list(db: Db): Promise<User[]> {
    return db.selectFrom('users').selectAll().orderBy('created_at').orderBy('email').execute();
  },

  async update(
    db: Db,
    id: string,
    fields: { name?: string | null; isAdmin?: boolean; emailVerified?: boolean; disabledAt?: Date | null },
  ): Promise<User | undefined> {
    return db
      .updateTable('users')
      .set({
        ...(fields.name !== undefined && { name: fields.name }),
        ...(fields.isAdmin !== undefined && { is_admin: fields.isAdmin }),
        ...(fields.emailVerified !== undefined && { email_verified: fields.emailVerified }),
        ...(fields.disabledAt !== undefined && { disabled_at: fields.disabledAt }),
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  async delete(db: Db, id: string): Promise<boolean> {
    const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
