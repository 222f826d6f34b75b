import type { Db } from '../db/connect.js';
import {
  type AuditLogFilter,
  type NewPasskeyTenantAuditLog,
  type PasskeyTenantAuditLogRow,
  passkeyTenantAuditLogsQueries,
} from '../db/queries/passkeyTenantAuditLogs.js';

/** What one call records in the audit log: a type when it succeeds and, for ceremonies, one when it fails. */
export interface AuditLogEvent {
  succeeded: string;
  failed?: string;
}

/** A ceremony step as Hanko logs it: `<step>_succeeded` or `<step>_failed`. */
const ceremony = (step: string): AuditLogEvent => ({
  succeeded: `${step}_succeeded`,
  failed: `${step}_failed`,
});

/** The events of Hanko's audit log that Sesame's passkey API records (Hanko: AuditLogType). */
export const AUDIT_LOG_EVENTS = {
  registrationInit: ceremony('webauthn_registration_init'),
  registrationFinal: ceremony('webauthn_registration_final'),
  authenticationInit: ceremony('webauthn_authentication_init'),
  authenticationFinal: ceremony('webauthn_authentication_final'),
  // As Hanko: credential changes are logged when they happen, refusals are not.
  credentialUpdated: { succeeded: 'webauthn_credential_updated' },
  credentialDeleted: { succeeded: 'webauthn_credential_deleted' },
  // Second factors (`/mfa/...`) and signed transactions, each init and finalize step.
  mfaRegistrationInit: ceremony('mfa_registration_init'),
  mfaRegistrationFinal: ceremony('mfa_registration_final'),
  mfaAuthenticationInit: ceremony('mfa_authentication_init'),
  mfaAuthenticationFinal: ceremony('mfa_authentication_final'),
  transactionInit: ceremony('webauthn_transaction_init'),
  transactionFinal: ceremony('webauthn_transaction_final'),
} as const satisfies Record<string, AuditLogEvent>;

/** Where a request came from, as each audit log entry records it. */
export interface AuditLogMeta {
  requestId: string;
  sourceIp: string;
  userAgent: string;
}

/** One audit log entry as Hanko's `GET /audit_logs` lists it (Hanko: models.AuditLog). */
export interface AuditLogJson {
  id: string;
  type: string;
  error?: string;
  meta_http_request_id: string;
  meta_source_ip: string;
  meta_user_agent: string;
  actor_user_id?: string;
  created_at: string;
  updated_at: string;
  tenant_id: string;
  transaction_id: string | null;
}

export function auditLogJson(row: PasskeyTenantAuditLogRow): AuditLogJson {
  return {
    id: row.id,
    type: row.type,
    ...(row.error !== null && { error: row.error }),
    meta_http_request_id: row.meta_http_request_id,
    meta_source_ip: row.meta_source_ip,
    meta_user_agent: row.meta_user_agent,
    ...(row.actor_user_id !== null && { actor_user_id: row.actor_user_id }),
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
    tenant_id: row.tenant_id,
    transaction_id: row.transaction_id,
  };
}

/**
 * Postgres text refuses NUL, and a refused request's entry must still be written (a NUL in
 * the request may be why it was refused), so NUL is dropped from every text written here.
 */
const withoutNul = (text: string) => text.replaceAll('\u0000', '');

/** The longest error text an entry keeps: the rest of a long message is cut. */
const AUDIT_ERROR_MAX_LENGTH = 512;

/**
 * The actor as stored: no user id is over 64 bytes (WebAuthn L3 §5.4.3, the API's `user_id`),
 * so a longer one (an unverified user handle) names no user and is not kept.
 */
function actorUserId(actor: string | null | undefined): string | null | undefined {
  return actor != null && Buffer.byteLength(actor, 'utf8') > 64 ? null : actor;
}

/** Records one event in the tenant's audit log. */
export async function recordTenantAuditLog(
  db: Db,
  tenantId: string,
  type: string,
  meta: AuditLogMeta,
  entry: Pick<NewPasskeyTenantAuditLog, 'actor_user_id' | 'error' | 'transaction_id'> = {},
): Promise<void> {
  const optional = (text: string | null | undefined) => (text == null ? null : withoutNul(text));
  await passkeyTenantAuditLogsQueries.insert(db, {
    tenant_id: tenantId,
    type,
    meta_http_request_id: withoutNul(meta.requestId),
    meta_source_ip: withoutNul(meta.sourceIp),
    meta_user_agent: withoutNul(meta.userAgent.slice(0, 512)),
    actor_user_id: optional(actorUserId(entry.actor_user_id)),
    error: optional(entry.error?.slice(0, AUDIT_ERROR_MAX_LENGTH)),
    transaction_id: optional(entry.transaction_id),
  });
}

/** One page of the tenant's audit log, newest first, and how many entries match in all. */
export async function pageTenantAuditLogs(
  db: Db,
  tenantId: string,
  filter: AuditLogFilter,
  page: { page: number; perPage: number },
): Promise<{ entries: AuditLogJson[]; total: number }> {
  const { rows, total } = await passkeyTenantAuditLogsQueries.page(db, tenantId, filter, page);
  return { entries: rows.map(auditLogJson), total };
}
