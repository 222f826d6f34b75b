import { withAdminAuthority } from '../accounts/adminAuthority.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { passkeyTenantsQueries } from '../db/queries/passkeyTenants.js';
import { passkeyTenantUsersQueries } from '../db/queries/passkeyTenantUsers.js';
import { tenantChallengeBinding } from './tenants.js';

/** What erasing a tenant's user found: it is gone, or there was no such tenant or user. */
export type TenantUserErasure = 'deleted' | 'no_tenant' | 'no_user';

/**
 * Erases one of a tenant's users (Hanko's admin `DELETE /tenants/{id}/users/{user_id}`):
 * its username, display name and icon, its passkeys and MFA credentials, its transactions
 * and its pending challenges, in one transaction. A login that names the user afterwards is
 * answered as for a user never seen. Sesame's audit log records the erasure with the user id
 * and nothing else about the person; the tenant's own audit log (Hanko's) keeps its entries,
 * as Hanko does, until they are PASSKEY_AUDIT_LOG_DAYS old.
 */
export async function deleteTenantUser(
  db: Db,
  tenantId: string,
  userId: string,
  actor: Actor,
): Promise<TenantUserErasure> {
  return withAdminAuthority(db, actor, async (trx) => {
    // The id as stored, whatever case it was typed in: the user's challenges are bound to it.
    const stored = await passkeyTenantsQueries.lock(trx, tenantId);
    if (!stored) return 'no_tenant';
    if (!(await passkeyTenantUsersQueries.delete(trx, stored, userId, tenantChallengeBinding(stored)))) {
      return 'no_user';
    }
    await auditQueries.record(trx, actor, 'passkey_tenant.delete_user', stored, { user_id: userId });
    return 'deleted';
  });
}
