import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { SigningKeyRow } from '../schema.js';
import { graceStart, signsNow } from './keySchedule.js';

export interface PublishedSigningKey extends SigningKeyRow {
  /** This key signs now (activated, not yet retired). */
  signing: boolean;
  /** Seconds until it activates; zero or negative once it has. */
  activates_in_seconds: number;
  /** Seconds until a retired key's grace ends and it is no longer published; null while not retired. */
  unpublished_in_seconds: number | null;
}

export const signingKeysQueries = {
  /**
   * Serialises key creation across instances; call it inside a transaction, which holds the
   * lock until it ends. Two servers starting on an empty database would otherwise each create
   * keys, and each publish only its own until restarted.
   */
  async lockKeyCreation(db: Db): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext('sesame.signing_keys'))`.execute(db);
  },

  /**
   * Keys still published: pending, signing, and retired ones whose tokens may not have expired
   * yet, most recently activated first. The database clock decides what is due, so servers
   * whose clocks differ still agree on which key signs.
   */
  async listPublished(db: Db, retiredGraceSeconds: number): Promise<PublishedSigningKey[]> {
    return db
      .selectFrom('signing_keys')
      .selectAll()
      .select([
        signsNow.as('signing'),
        sql<number>`extract(epoch from activates_at - now())::float8`.as('activates_in_seconds'),
        sql<
          number | null
        >`extract(epoch from retired_at + make_interval(secs => ${retiredGraceSeconds}) - now())::float8`.as(
          'unpublished_in_seconds',
        ),
      ])
      .where((eb) =>
        eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', graceStart(retiredGraceSeconds))]),
      )
      .orderBy('activates_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
  },

  /** Adds a key that signs from `activateInSeconds` from now; returns when that is. */
  async insert(
    db: Db,
    kid: string,
    alg: string,
    privateJwk: string,
    activateInSeconds: number,
  ): Promise<Date> {
    const { activates_at } = await db
      .insertInto('signing_keys')
      .values({
        kid,
        alg,
        private_jwk: privateJwk,
        // To the millisecond, as a JavaScript Date holds it: the other keys are retired at the Date
        // read back, and a stored value finer than that left a gap of up to 1 ms with no key signing.
        activates_at: sql<Date>`date_trunc('milliseconds', now() + make_interval(secs => ${activateInSeconds}))`,
      })
      .returning('activates_at')
      .executeTakeFirstOrThrow();
    return activates_at;
  },

  /** The other keys of the algorithm stop signing when the named key starts. */
  async retireOthersAt(db: Db, alg: string, keepKid: string, at: Date): Promise<void> {
    await db
      .updateTable('signing_keys')
      .set({ retired_at: at })
      .where('alg', '=', alg)
      .where('kid', '!=', keepKid)
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', at)]))
      .execute();
  },

  /**
   * Removes every key but the named ones, so nothing publishes or signs with them again;
   * returns the kids removed. The delete is announced like any row change (migration 0007).
   */
  async deleteAllExcept(db: Db, keepKids: string[]): Promise<string[]> {
    const rows = await db
      .deleteFrom('signing_keys')
      .where('kid', 'not in', keepKids)
      .returning('kid')
      .execute();
    return rows.map((r) => r.kid);
  },

  /** Deletes the keys retired more than `retiredGraceSeconds` ago; returns how many. */
  async deleteRetiredBefore(db: Db, retiredGraceSeconds: number): Promise<number> {
    const result = await db
      .deleteFrom('signing_keys')
      .where('retired_at', '<=', graceStart(retiredGraceSeconds))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
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
