import type { Db } from '../db/connect.js';
import {
  type CredentialPage,
  passkeyTenantCredentialsQueries,
  type TenantCredential,
} from '../db/queries/passkeyTenantCredentials.js';
import { hankoError } from './errors.js';

/** A passkey as the Hanko passkey API shows it (Hanko: CredentialDto), members in Hanko's order. */
export interface CredentialJson {
  id: string;
  name: string;
  /** The COSE public key, base64url. */
  public_key: string;
  attestation_type: string;
  aaguid: string;
  last_used_at: string | null;
  created_at: string;
  transports: string[];
  backup_eligible: boolean;
  backup_state: boolean;
  /** Registered through `mfa/registration`: a second factor, not a passkey login. */
  is_mfa: boolean;
  user_id: string;
}

export function credentialJson(c: TenantCredential): CredentialJson {
  return {
    id: c.id,
    name: c.name,
    public_key: Buffer.from(c.publicKey).toString('base64url'),
    attestation_type: c.attestationType,
    aaguid: c.aaguid,
    last_used_at: c.lastUsedAt ? new Date(c.lastUsedAt).toISOString() : null,
    created_at: new Date(c.createdAt).toISOString(),
    transports: c.transports,
    backup_eligible: c.backupEligible,
    backup_state: c.backupState,
    is_mfa: c.isMfa,
    user_id: c.userId,
  };
}

/** Hanko's words for a credential id that is not the tenant's. */
const credentialNotFound = (id: string) => hankoError(404, `credential with id '${id}' not found`);

/**
 * One page of the tenant's passkeys (one user's with `userId`; a user without any, or
 * unknown, has none: `[]`, as Hanko answers) and how many there are in all.
 */
export async function pageTenantCredentials(
  db: Db,
  tenantId: string,
  options: CredentialPage,
): Promise<{ credentials: CredentialJson[]; total: number }> {
  const { credentials, total } = await passkeyTenantCredentialsQueries.page(db, tenantId, options);
  return { credentials: credentials.map(credentialJson), total };
}

/** One of the tenant's passkeys. */
export async function findTenantCredential(db: Db, tenantId: string, id: string): Promise<CredentialJson> {
  const credential = await passkeyTenantCredentialsQueries.find(db, tenantId, id);
  if (!credential) throw credentialNotFound(id);
  return credentialJson(credential);
}

/** Renames one of the tenant's passkeys; returns its owner's user id (for the audit log). */
export async function renameTenantCredential(
  db: Db,
  tenantId: string,
  id: string,
  name: string,
): Promise<string> {
  const { user_id } = await findTenantCredential(db, tenantId, id);
  if (!(await passkeyTenantCredentialsQueries.rename(db, tenantId, id, name))) throw credentialNotFound(id);
  return user_id;
}

/** Deletes one of the tenant's passkeys; returns its owner's user id (for the audit log). */
export async function deleteTenantCredential(db: Db, tenantId: string, id: string): Promise<string> {
  const { user_id } = await findTenantCredential(db, tenantId, id);
  if (!(await passkeyTenantCredentialsQueries.delete(db, tenantId, id))) throw credentialNotFound(id);
  return user_id;
}
