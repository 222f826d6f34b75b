import type { Db } from '../db/connect.js';
import {
  passkeyTenantCredentialsQueries,
  type TenantCredential,
} from '../db/queries/passkeyTenantCredentials.js';
import { passkeyTenantUsersQueries } from '../db/queries/passkeyTenantUsers.js';
import { notFound } from '../http/errors.js';
import { userNotFound } from './ceremonies.js';

/** A passkey as the Hanko passkey API lists it. */
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
  };
}

const credentialNotFound = () => notFound('Credential not found');

/** The passkeys of one of the tenant's users, oldest first. */
export async function listTenantCredentials(
  db: Db,
  tenantId: string,
  userId: string,
): Promise<CredentialJson[]> {
  if (!(await passkeyTenantUsersQueries.find(db, tenantId, userId))) throw userNotFound();
  const credentials = await passkeyTenantCredentialsQueries.listForUser(db, tenantId, userId);
  return credentials.map(credentialJson);
}

export async function renameTenantCredential(
  db: Db,
  tenantId: string,
  id: string,
  name: string,
): Promise<void> {
  if (!(await passkeyTenantCredentialsQueries.rename(db, tenantId, id, name))) throw credentialNotFound();
}

export async function deleteTenantCredential(db: Db, tenantId: string, id: string): Promise<void> {
  if (!(await passkeyTenantCredentialsQueries.delete(db, tenantId, id))) throw credentialNotFound();
}
