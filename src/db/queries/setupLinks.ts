import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { SetupLinkRow } from '../schema.js';

/** The first-run setup link (migration 0010): at most one is live. */
export const setupLinksQueries = {
  /** Stores a new link in place of every older one, which stops working at once. */
  async replace(db: Db, values: { tokenHash: string; expiresAt: Date }): Promise<SetupLinkRow> {
    await db.deleteFrom('setup_links').execute();
    return db
      .insertInto('setup_links')
      .values({ token_hash: values.tokenHash, expires_at: values.expiresAt })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  /** Removes every setup link: an administrator exists, so none may work. Returns how many. */
  async deleteAll(db: Db): Promise<number> {
    const result = await db.deleteFrom('setup_links').executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /** The link a token hash names, expired or not: the caller says which. */
  async findByHash(db: Db, tokenHash: string): Promise<SetupLinkRow | undefined> {
    return db.selectFrom('setup_links').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  },

  /**
   * Uses the link up in one statement, only if it has not expired: of two concurrent uses
   * exactly one gets the row back. Run it in the transaction that creates the administrator,
   * so a failure later leaves the link usable.
   */
  async consume(db: Db, tokenHash: string): Promise<SetupLinkRow | undefined> {
    return db
      .deleteFrom('setup_links')
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
  },
};
