import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { deleteExpiredBefore } from './agedRows.js';

/** Who may send the form and what it does: a token is spent only under the binding it was issued with. */
export interface AdminFormBinding {
  sessionUid: string;
  userId: string;
  action: string;
}

/** Single-use tokens of the admin forms that mint a secret once (migration 0030). */
export const adminFormTokensQueries = {
  async insert(db: Db, tokenHash: string, binding: AdminFormBinding, expiresAt: Date): Promise<void> {
    await db
      .insertInto('admin_form_tokens')
      .values({
        token_hash: tokenHash,
        session_uid: binding.sessionUid,
        user_id: binding.userId,
        action: binding.action,
        expires_at: expiresAt,
      })
      .execute();
  },

  /**
   * Spends the token in one statement, only if it is unspent, unexpired and bound as given:
   * of two concurrent sends exactly one gets true (the other waits for its row lock, then
   * finds it spent). Run it in the transaction that does the form's work, so a failure
   * leaves the token unspent.
   */
  async spend(db: Db, tokenHash: string, binding: AdminFormBinding): Promise<boolean> {
    const spent = await db
      .updateTable('admin_form_tokens')
      .set({ spent_at: sql<Date>`now()` })
      .where('token_hash', '=', tokenHash)
      .where('session_uid', '=', binding.sessionUid)
      .where('user_id', '=', binding.userId)
      .where('action', '=', binding.action)
      .where('spent_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returning('token_hash')
      .executeTakeFirst();
    return spent !== undefined;
  },

  /** Whether the token, bound as given, was spent: the form's work was done once already. */
  async wasSpent(db: Db, tokenHash: string, binding: AdminFormBinding): Promise<boolean> {
    const row = await db
      .selectFrom('admin_form_tokens')
      .select('token_hash')
      .where('token_hash', '=', tokenHash)
      .where('session_uid', '=', binding.sessionUid)
      .where('user_id', '=', binding.userId)
      .where('action', '=', binding.action)
      .where('spent_at', 'is not', null)
      .executeTakeFirst();
    return row !== undefined;
  },

  /** Removes tokens, spent or not, that expired more than `days` ago. */
  deleteExpiredBefore(db: Db, days: number): Promise<number> {
    return deleteExpiredBefore(db, 'admin_form_tokens', days);
  },
};
