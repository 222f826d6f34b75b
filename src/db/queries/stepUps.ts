import { sql } from 'kysely';
import type { Db } from '../connect.js';

export const stepUpsQueries = {
  /** Records that the person behind this provider session just proved a passkey. */
  async record(db: Db, sessionUid: string, userId: string): Promise<void> {
    await db
      .insertInto('step_ups')
      .values({ session_uid: sessionUid, user_id: userId })
      .onConflict((oc) =>
        oc.column('session_uid').doUpdateSet({ user_id: userId, verified_at: sql<Date>`now()` }),
      )
      .execute();
  },

  /** Whether this session's person proved a passkey within the last `maxAgeSeconds`. */
  async isRecent(db: Db, sessionUid: string, userId: string, maxAgeSeconds: number): Promise<boolean> {
    const row = await db
      .selectFrom('step_ups')
      .select('session_uid')
      .where('session_uid', '=', sessionUid)
      .where('user_id', '=', userId)
      .where('verified_at', '>', sql<Date>`now() - ${maxAgeSeconds} * interval '1 second'`)
      .executeTakeFirst();
    return row !== undefined;
  },

  /** Forgets step-ups older than `maxAgeSeconds`; they can never count again. */
  async deleteOlderThan(db: Db, maxAgeSeconds: number): Promise<number> {
    const result = await db
      .deleteFrom('step_ups')
      .where('verified_at', '<', sql<Date>`now() - ${maxAgeSeconds} * interval '1 second'`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /** Forgets every step-up of an account (it changed hands). */
  async deleteForUser(db: Db, userId: string): Promise<number> {
    const result = await db.deleteFrom('step_ups').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  },
};
