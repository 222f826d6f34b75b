import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { SigningKeyRow } from '../schema.js';

export const signingKeysQueries = {
  /**
   * Serialises key creation across instances; call it inside a transaction, which holds the
   * lock until it ends. Two servers starting on an empty database would otherwise each create
   * keys, and each publish only its own until restarted.
   */
  async lockKeyCreation(db: Db): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext('sesame.signing_keys'))`.execute(db);
  },

  /** Keys still published: active ones and retired ones whose tokens may not have expired yet. Newest first. */
  async listPublished(db: Db, retiredGraceSeconds: number): Promise<SigningKeyRow[]> {
    return db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('retired_at', 'is', null),
          eb('retired_at', '>', sql<Date>`now() - make_interval(secs => ${retiredGraceSeconds})`),
        ]),
      )
      .orderBy('created_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
  },

  async insert(db: Db, kid: string, alg: string, privateJwk: string): Promise<void> {
    await db.insertInto('signing_keys').values({ kid, alg, private_jwk: privateJwk }).execute();
  },

  /** Retires the active keys of an algorithm, except the one named. */
  async retireOthers(db: Db, alg: string, keepKid: string): Promise<void> {
    await db
      .updateTable('signing_keys')
      .set({ retired_at: sql<Date>`now()` })
      .where('alg', '=', alg)
      .where('kid', '!=', keepKid)
      .where('retired_at', 'is', null)
      .execute();
  },

  async activeAlgs(db: Db): Promise<string[]> {
    const rows = await db
      .selectFrom('signing_keys')
      .select('alg')
      .where('retired_at', 'is', null)
      .distinct()
      .execute();
    return rows.map((r) => r.alg);
  },
};
