import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { graceStart, signsNow } from './keySchedule.js';

export const passkeyTenantKeysQueries = {
  /** Adds a key that signs from `activateInSeconds` from now; returns when that is. */
  async insert(
    db: Db,
    tenantId: string,
    kid: string,
    privateJwk: string,
    activateInSeconds: number,
  ): Promise<Date> {
    const { activates_at } = await db
      .insertInto('passkey_tenant_keys')
      .values({
        kid,
        tenant_id: tenantId,
        private_jwk: privateJwk,
        // To the millisecond, as a JavaScript Date holds it: the other keys are retired at the Date
        // read back, and a stored value finer than that left a gap of up to 1 ms with no key signing.
        activates_at: sql<Date>`date_trunc('milliseconds', now() + make_interval(secs => ${activateInSeconds}))`,
      })
      .returning('activates_at')
      .executeTakeFirstOrThrow();
    return activates_at;
  },

  /**
   * The key that signs the tenant's tokens now: of those activated and not retired, the one
   * activated last. Undefined only for a tenant that no longer exists.
   */
  async signing(db: Db, tenantId: string): Promise<{ kid: string; private_jwk: string } | undefined> {
    return db
      .selectFrom('passkey_tenant_keys')
      .select(['kid', 'private_jwk'])
      .where('tenant_id', '=', tenantId)
      .where(signsNow)
      .orderBy('activates_at', 'desc')
      .orderBy('kid', 'desc')
      .limit(1)
      .executeTakeFirst();
  },

  /**
   * The kids of the tenant's published keys: pending, signing, and retired ones within their
   * grace, most recently activated first. Only the kids: what each names never changes.
   */
  async publishedKids(db: Db, tenantId: string, retiredGraceSeconds: number): Promise<string[]> {
    const rows = await db
      .selectFrom('passkey_tenant_keys')
      .select('kid')
      .where('tenant_id', '=', tenantId)
      .where((eb) =>
        eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', graceStart(retiredGraceSeconds))]),
      )
      .orderBy('activates_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
    return rows.map((row) => row.kid);
  },

  /** The sealed private JWKs of those of the named keys the tenant still has. */
  async sealed(db: Db, tenantId: string, kids: string[]): Promise<{ kid: string; private_jwk: string }[]> {
    if (kids.length === 0) return [];
    return db
      .selectFrom('passkey_tenant_keys')
      .select(['kid', 'private_jwk'])
      .where('tenant_id', '=', tenantId)
      .where('kid', 'in', kids)
      .execute();
  },

  /** The tenant's other keys stop signing when the named key starts. */
  async retireOthersAt(db: Db, tenantId: string, keepKid: string, at: Date): Promise<void> {
    await db
      .updateTable('passkey_tenant_keys')
      .set({ retired_at: at })
      .where('tenant_id', '=', tenantId)
      .where('kid', '!=', keepKid)
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', at)]))
      .execute();
  },

  /** Removes the tenant's keys but the named one; returns the kids removed. */
  async deleteAllExcept(db: Db, tenantId: string, keepKid: string): Promise<string[]> {
    const rows = await db
      .deleteFrom('passkey_tenant_keys')
      .where('tenant_id', '=', tenantId)
      .where('kid', '!=', keepKid)
      .returning('kid')
      .execute();
    return rows.map((r) => r.kid);
  },

  /** Deletes the keys of every tenant retired more than `retiredGraceSeconds` ago; returns how many. */
  async deleteRetiredBefore(db: Db, retiredGraceSeconds: number): Promise<number> {
    const result = await db
      .deleteFrom('passkey_tenant_keys')
      .where('retired_at', '<=', graceStart(retiredGraceSeconds))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },
};
