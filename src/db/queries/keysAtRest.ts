import type { Db } from '../connect.js';
import type { TenantId } from './passkeyTenants.js';

/** Where Sesame stores private keys that KEY_ENCRYPTION_SECRET protects. */
export type KeyStore = 'signing_keys' | 'cookie_keys' | 'passkey_tenant_keys';

/** One stored private key (or key set), as written: plain JSON or an "enc:" envelope (see sealAtRest). */
export type StoredKey = {
  /** The row's key: a kid or an app secret's name. */
  id: string;
  value: string;
} & ({ store: 'signing_keys' | 'cookie_keys' } | { store: 'passkey_tenant_keys'; tenantId: TenantId });

/** The app_secrets rows that hold keys; other app secrets are not sealed by this. */
const COOKIE_KEYS = 'cookie_keys';

export const keysAtRestQueries = {
  /**
   * Every stored private key: signing keys, cookie keys and passkey API tenants' keys.
   * `forUpdate` (in a transaction) holds them until it commits, so no rotation or cleanup
   * writes one meanwhile.
   */
  async listAll(db: Db, { forUpdate = false } = {}): Promise<StoredKey[]> {
    const locked = <Q extends { forUpdate(): Q }>(query: Q) => (forUpdate ? query.forUpdate() : query);
    const [signing, cookie, tenants] = await Promise.all([
      locked(db.selectFrom('signing_keys').select(['kid as id', 'private_jwk as value'])).execute(),
      locked(
        db.selectFrom('app_secrets').select(['name as id', 'value']).where('name', '=', COOKIE_KEYS),
      ).execute(),
      locked(
        db
          .selectFrom('passkey_tenant_keys')
          .select(['kid as id', 'private_jwk as value', 'tenant_id as tenantId']),
      ).execute(),
    ]);
    return [
      ...signing.map((r) => ({ store: 'signing_keys' as const, ...r })),
      ...cookie.map((r) => ({ store: 'cookie_keys' as const, ...r })),
      ...tenants.map((r) => ({
        store: 'passkey_tenant_keys' as const,
        ...r,
        tenantId: r.tenantId as TenantId,
      })),
    ];
  },

  /**
   * Replaces a stored key's value if it is still the one read; false when another instance
   * changed it first (two servers starting together both seal the same plain-text key).
   */
  async replace(db: Db, key: StoredKey, value: string): Promise<boolean> {
    const query =
      key.store === 'signing_keys'
        ? db
            .updateTable('signing_keys')
            .set({ private_jwk: value })
            .where('kid', '=', key.id)
            .where('private_jwk', '=', key.value)
        : key.store === 'cookie_keys'
          ? db
              .updateTable('app_secrets')
              .set({ value })
              .where('name', '=', key.id)
              .where('value', '=', key.value)
          : db
              .updateTable('passkey_tenant_keys')
              .set({ private_jwk: value })
              .where('kid', '=', key.id)
              .where('private_jwk', '=', key.value);
    const result = await query.executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },
};
