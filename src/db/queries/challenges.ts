import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { runSql, runWriteWithoutFlushWait } from '../rawSql.js';

/** A challenge as stored: what it is for, what it is bound to, and data the ceremony carries to its end. */
export interface StoredChallenge {
  challenge: string;
  purpose: string;
  binding: string;
  userId: string | null;
  data: Record<string, unknown>;
}

/**
 * Takes a challenge out in one statement ($1 challenge, $2 purpose, $3 binding), so it can be
 * used once only, and only for the purpose and binding it was issued for, before it expires.
 * A challenge presented with the wrong binding is left in place: a stranger cannot burn
 * another person's challenge.
 */
export const TAKE_CHALLENGE = takeChallengeIf();

/** {@link TAKE_CHALLENGE}, taking the challenge only where `condition` (SQL) holds too. */
export function takeChallengeIf(condition?: string): string {
  return `delete from webauthn_challenges
  where challenge = $1 and purpose = $2 and binding = $3 and expires_at > now()${condition ? ` and ${condition}` : ''}
  returning user_id, data`;
}

/** What {@link TAKE_CHALLENGE} returns. */
interface TakenChallengeRow {
  user_id: string | null;
  data: Record<string, unknown>;
}

export const challengesQueries = {
  // Both statements run once or twice per ceremony: SQL text written once (rawSql.ts). A
  // challenge lost in a crash of Postgres only fails its ceremony, so it is stored without
  // waiting for the WAL flush; taking it out is a synchronous commit (rawSql.ts).
  async insert(db: Db, value: StoredChallenge, expiresAt: Date): Promise<void> {
    await runWriteWithoutFlushWait(
      db,
      `insert into webauthn_challenges (challenge, purpose, binding, user_id, data, expires_at)
      values ($1, $2, $3, $4, $5, $6)`,
      [value.challenge, value.purpose, value.binding, value.userId, JSON.stringify(value.data), expiresAt],
    );
  },

  /** The challenge, taken out of storage ({@link TAKE_CHALLENGE}), or undefined when there is none to take. */
  async consume(
    db: Db,
    challenge: string,
    purpose: string,
    binding: string,
  ): Promise<StoredChallenge | undefined> {
    const { rows } = await runSql<TakenChallengeRow>(db, TAKE_CHALLENGE, [challenge, purpose, binding]);
    const row = rows[0];
    if (!row) return undefined;
    return { challenge, purpose, binding, userId: row.user_id, data: row.data };
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
