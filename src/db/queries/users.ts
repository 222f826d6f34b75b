import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { User } from '../schema.js';

/**
 * The key of the transaction-level advisory lock that every change to who administers Sesame
 * takes first (promote, demote, disable, delete, the setup link). Checking "is there another
 * administrator?" and then writing is only race-free when such changes run one at a time:
 * under READ COMMITTED two transactions demoting the last two admins would each still see
 * the other one. Any fixed 64-bit number works; this one spells nothing.
 */
const ADMINISTRATORS_LOCK = 7_264_185_930_113;

/**
 * How a read in a transaction holds the account row until it ends: `update` for a change
 * of who holds the account (a takeover, a recovery), `share` for a write that is only right
 * while the account stays as read (adding a passkey). The two exclude each other, so a
 * passkey is added either before a takeover, which then removes it, or after it, when the
 * adding session reads as revoked.
 */
export type RowLock = 'update' | 'share';

/** `query` holding the rows it reads as `lock` says, or not at all. */
function lockedAs<Q extends { forUpdate(): Q; forShare(): Q }>(query: Q, lock: RowLock | undefined): Q {
  return lock === 'update' ? query.forUpdate() : lock === 'share' ? query.forShare() : query;
}

export const usersQueries = {
  /**
   * Waits until no other transaction changes who administers Sesame, and holds that until
   * this transaction ends. Call it first, in the transaction that checks and writes.
   */
  async lockAdministrators(db: Db): Promise<void> {
    await sql`select pg_advisory_xact_lock(${sql.lit(ADMINISTRATORS_LOCK)})`.execute(db);
  },

  /** How many administrators can sign in (not disabled), leaving out `exceptId`. */
  async countActiveAdmins(db: Db, exceptId?: string): Promise<number> {
    let query = db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('is_admin', '=', true)
      .where('disabled_at', 'is', null);
    if (exceptId) query = query.where('id', '<>', exceptId);
    return Number((await query.executeTakeFirstOrThrow()).n);
  },

  /** The account with this id; with `lock`, held until the transaction ends (see {@link RowLock}). */
  async findById(db: Db, id: string, lock?: RowLock): Promise<User | undefined> {
    // A malformed id must read as "no such user", not as a database error.
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
    return db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', id)
      .$call((q) => lockedAs(q, lock))
      .executeTakeFirst();
  },

  /** The account with this email, in any case; with `lock`, held until the transaction ends. */
  async findByEmail(db: Db, email: string, lock?: RowLock): Promise<User | undefined> {
    return db
      .selectFrom('users')
      .selectAll()
      .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`)
      .$call((q) => lockedAs(q, lock))
      .executeTakeFirst();
  },

  async insert(
    db: Db,
    values: {
      id?: string;
      email: string;
      name: string | null;
      isAdmin?: boolean;
      emailVerified?: boolean;
      signupLocale?: string;
      claims?: Record<string, unknown>;
    },
  ): Promise<User> {
    return db
      .insertInto('users')
      .values({
        ...(values.id && { id: values.id }),
        email: values.email,
        name: values.name,
        is_admin: values.isAdmin ?? false,
        email_verified: values.emailVerified ?? false,
        // Only when given: the migration tests insert users into databases from before 0029.
        ...(values.signupLocale !== undefined && { signup_locale: values.signupLocale }),
        ...(values.claims !== undefined && { claims: JSON.stringify(values.claims) }),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  },

  /**
   * One page of users in email order (case-insensitive, the unique index's order), those
   * whose email or name contains `search` when it is given, after the email `after`.
   */
  async page(db: Db, options: { search?: string; after?: string; limit: number }): Promise<User[]> {
    let query = db.selectFrom('users').selectAll();
    if (options.search) {
      // LIKE's wildcards in the search text match themselves.
      const pattern = `%${options.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where((eb) =>
        eb.or([
          eb(sql<string>`lower(email)`, 'like', sql<string>`lower(${pattern})`),
          eb(sql<string>`lower(coalesce(name, ''))`, 'like', sql<string>`lower(${pattern})`),
        ]),
      );
    }
    if (options.after)
      query = query.where(sql<string>`lower(email)`, '>', sql<string>`lower(${options.after})`);
    return query.orderBy(sql`lower(email)`).limit(options.limit).execute();
  },

  async update(
    db: Db,
    id: string,
    fields: {
      name?: string | null;
      isAdmin?: boolean;
      emailVerified?: boolean;
      disabledAt?: Date | null;
      signupLocale?: string;
    },
  ): Promise<User | undefined> {
    return db
      .updateTable('users')
      .set({
        ...(fields.name !== undefined && { name: fields.name }),
        ...(fields.isAdmin !== undefined && { is_admin: fields.isAdmin }),
        ...(fields.emailVerified !== undefined && { email_verified: fields.emailVerified }),
        ...(fields.disabledAt !== undefined && { disabled_at: fields.disabledAt }),
        ...(fields.signupLocale !== undefined && { signup_locale: fields.signupLocale }),
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  /**
   * Records that everything of the account from before `at` is revoked: its browser
   * sign-ins, and with `tokens` also its grants and tokens (see src/oidc/revocation.ts).
   */
  async revokeBefore(db: Db, id: string, at: Date, what: { tokens: boolean }): Promise<void> {
    await db
      .updateTable('users')
      .set({
        sessions_ended_at: at,
        ...(what.tokens && { tokens_revoked_at: at }),
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .execute();
  },

  /** Stores the person's language for Sesame's pages; null goes back to choosing per request. */
  async setLocale(db: Db, id: string, locale: string | null): Promise<User | undefined> {
    return db
      .updateTable('users')
      .set({ locale, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  /**
   * Records the language of the page the person signed in on (signup_locale), when it is not
   * the one recorded already. Not updated_at: nothing of the person's profile changed.
   */
  async recordSignInLocale(db: Db, id: string, locale: string): Promise<void> {
    await db
      .updateTable('users')
      .set({ signup_locale: locale })
      .where('id', '=', id)
      .where('signup_locale', 'is distinct from', locale)
      .execute();
  },

  /** Replaces the admin-set claims of a user (the change notice refreshes cached rows). */
  async setClaims(db: Db, id: string, claims: Record<string, unknown>): Promise<User | undefined> {
    return db
      .updateTable('users')
      .set({ claims: JSON.stringify(claims), updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  async delete(db: Db, id: string): Promise<boolean> {
    const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
