import { sql } from 'kysely';
import type { Db } from '../connect.js';

/** A challenge as stored: what it is for, what it is bound to, and data the ceremony carries to its end. */
export interface StoredChallenge {
  challenge: string;
  purpose: string;
  binding: string;
  userId: string | null;
  data: Record<string, unknown>;
}

export const challengesQueries = {
  async insert(db: Db, value: StoredChallenge, ttlSeconds: number): Promise<void> {
    await db
      .insertInto('webauthn_challenges')
      .values({
        challenge: value.challenge,
        purpose: value.purpose,
        binding: value.binding,
        user_id: value.userId,
        data: JSON.stringify(value.data),
        expires_at: new Date(Date.now() + ttlSeconds * 1000),
      })
      .execute();
  },

  /**
   * Takes the challenge out in one statement, so it can be used once only, and only for the
   * purpose and binding it was issued for, before it expires. A challenge presented with the
   * wrong binding is left in place: a stranger cannot burn another person's challenge.
   */
  async consume(
    db: Db,
    challenge: string,
    purpose: string,
    binding: string,
  ): Promise<StoredChallenge | undefined> {
    const row = await db
      .deleteFrom('webauthn_challenges')
      .where('challenge', '=', challenge)
      .where('purpose', '=', purpose)
      .where('binding', '=', binding)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      challenge: row.challenge,
      purpose: row.purpose,
      binding: row.binding,
      userId: row.user_id,
      data: row.data as unknown as Record<string, unknown>,
    };
  },

  async deleteExpired(db: Db): Promise<number> {
    const result = await db
      .deleteFrom('webauthn_challenges')
      .where('expires_at', '<', sql<Date>`now()`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /** Drops every pending ceremony of an account (it changed hands). */
  async deleteForUser(db: Db, userId: string): Promise<number> {
    const result = await db
      .deleteFrom('webauthn_challenges')
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },
};
