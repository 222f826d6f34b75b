import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { OneTimeTokenRow } from '../schema.js';
import { deleteExpiredBefore } from './agedRows.js';

/** What a one-time link is for: create an account on use, or add a passkey to an existing one. */
export type OneTimeTokenPurpose = 'invite' | 'recovery';

export const oneTimeTokensQueries = {
  async insert(
    db: Db,
    values: {
      tokenHash: string;
      purpose: OneTimeTokenPurpose;
      email: string;
      userId: string | null;
      grantAdmin: boolean;
      createdBy: string;
      expiresAt: Date;
    },
  ): Promise<OneTimeTokenRow> {
    return db
      .insertInto('one_time_tokens')
      .values({
        token_hash: values.tokenHash,
        purpose: values.purpose,
        email: values.email,
        user_id: values.userId,
        grant_admin: values.grantAdmin,
        created_by: values.createdBy,
        expires_at: values.expiresAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  /**
   * Removes links that expired more than `days` ago, used or not: a link is answered as used
   * or expired while it is kept, and after that as not valid, which says as much. The audit
   * log keeps who issued and used each one.
   */
  deleteExpiredBefore(db: Db, days: number): Promise<number> {
    return deleteExpiredBefore(db, 'one_time_tokens', days);
  },

  /** The link a token hash names, used or not, expired or not: the caller says which is which. */
  async findByHash(db: Db, tokenHash: string): Promise<OneTimeTokenRow | undefined> {
    return db
      .selectFrom('one_time_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
  },

  /**
   * Marks the link used in one statement, only if it is still unused and unexpired: of two
   * concurrent uses exactly one gets the row back. Run it in the transaction that creates
   * what the link grants, so a failure later leaves the link usable.
   */
  async consume(db: Db, tokenHash: string): Promise<OneTimeTokenRow | undefined> {
    return db
      .updateTable('one_time_tokens')
      .set({ used_at: sql<Date>`now()` })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
  },

  /** Expires every unused link any of `actors` issued (their `created_by`) now; returns how many. */
  async invalidateUnusedCreatedBy(db: Db, actors: string[]): Promise<number> {
    if (actors.length === 0) return 0;
    const result = await db
      .updateTable('one_time_tokens')
      .set({ expires_at: sql<Date>`now()` })
      .where('created_by', 'in', actors)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  },

  /**
   * Expires every unused link for an email (case-insensitive) now, or with `createdBy` only
   * those that actor issued; returns how many.
   */
  async invalidateUnusedForEmail(db: Db, email: string, createdBy?: string): Promise<number> {
    const result = await db
      .updateTable('one_time_tokens')
      .set({ expires_at: sql<Date>`now()` })
      .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .$if(createdBy !== undefined, (query) => query.where('created_by', '=', createdBy!))
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  },

  /**
   * Lets go of the used links of an account about to be deleted (taken over by the owner of
   * its address, see confirmEmailOwner), which would go with it; returns their ids, for
   * {@link attachToUser}. Unused ones stay, and go with the account they were issued for.
   */
  async detachUsedFromUser(db: Db, userId: string): Promise<string[]> {
    const rows = await db
      .updateTable('one_time_tokens')
      .set({ user_id: null })
      .where('user_id', '=', userId)
      .where('used_at', 'is not', null)
      .returning('id')
      .execute();
    return rows.map((row) => row.id);
  },

  /** Gives the links `ids` to an account (see {@link detachUsedFromUser}): a used link still reads as used. */
  async attachToUser(db: Db, ids: string[], userId: string): Promise<void> {
    if (ids.length === 0) return;
    await db.updateTable('one_time_tokens').set({ user_id: userId }).where('id', 'in', ids).execute();
  },
};
