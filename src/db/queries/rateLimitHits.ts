import { sql } from 'kysely';
import type { Db } from '../connect.js';

/** A key's hits in its current window, and how long until that window ends. */
export interface WindowHits {
  hits: number;
  msLeft: number;
}

export const rateLimitHitsQueries = {
  /**
   * Counts `count` hits on `key` in one statement: a new window of `windowSeconds` when there
   * is none or the last one ended, else `count` more in the current window. The upsert locks
   * the row, so hits from many instances at once are each counted.
   */
  async hit(db: Db, key: string, windowSeconds: number, count = 1): Promise<WindowHits> {
    const row = await db
      .insertInto('rate_limit_hits')
      .values({ key, hits: count, expires_at: sql<Date>`now() + make_interval(secs => ${windowSeconds})` })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          hits: sql<number>`case when rate_limit_hits.expires_at <= now() then excluded.hits else rate_limit_hits.hits + excluded.hits end`,
          expires_at: sql<Date>`case when rate_limit_hits.expires_at <= now() then excluded.expires_at else rate_limit_hits.expires_at end`,
        }),
      )
      .returning([
        'hits',
        sql<number>`ceil(extract(epoch from expires_at - now()) * 1000)::integer`.as('ms_left'),
      ])
      .executeTakeFirstOrThrow();
    return { hits: row.hits, msLeft: row.ms_left };
  },

  /** The key's hits in its current window, or none when it has no window running. */
  async find(db: Db, key: string): Promise<WindowHits | undefined> {
    const row = await db
      .selectFrom('rate_limit_hits')
      .select([
        'hits',
        sql<number>`ceil(extract(epoch from expires_at - now()) * 1000)::integer`.as('ms_left'),
      ])
      .where('key', '=', key)
      .where('expires_at', '>', sql<Date>`now()`)
      .executeTakeFirst();
    return row ? { hits: row.hits, msLeft: row.ms_left } : undefined;
  },

  /** Forgets windows that ended; safe when several instances sweep at once. */
  async deleteExpired(db: Db): Promise<number> {
    const result = await db
      .deleteFrom('rate_limit_hits')
      .where('expires_at', '<=', sql<Date>`now()`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },
};
