import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { deleteExpiredBefore } from './agedRows.js';

export const emailVerificationsQueries = {
  /** Stores a new verification link for the account, in place of its unused older ones. */
  async replace(db: Db, input: { userId: string; email: string; tokenHash: string; expiresAt: Date }) {
    await db
      .deleteFrom('email_verifications')
      .where('user_id', '=', input.userId)
      .where('used_at', 'is', null)
      .execute();
    await db
      .insertInto('email_verifications')
      .values({
        user_id: input.userId,
        email: input.email,
        token_hash: input.tokenHash,
        expires_at: input.expiresAt,
      })
      .execute();
  },

  /**
   * Deletes the links that expired more than `days` ago, used or not, as one-time links are
   * swept: until then an expired link's page still says it expired (and where to get a new
   * one), after that that it is not valid. The row holds the address it was sent to, which
   * need not stay once the link can do nothing.
   */
  deleteExpiredBefore(db: Db, days: number): Promise<number> {
    return deleteExpiredBefore(db, 'email_verifications', days);
  },

  async findByHash(db: Db, tokenHash: string) {
    return db
      .selectFrom('email_verifications')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
  },

  /** Marks the link used if it still is unused and unexpired; of two concurrent uses one wins. */
  async consume(db: Db, tokenHash: string) {
    return db
      .updateTable('email_verifications')
      .set({ used_at: sql`now()` })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
  },
};
