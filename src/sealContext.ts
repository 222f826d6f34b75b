import type { TenantId } from './db/queries/passkeyTenants.js';

/**
 * Where each value sealed at rest is stored, the associated data GCM binds it to (see
 * sealAtRest): a value copied into another row, another column or another tenant's row does
 * not open there. Each names its row by what is fixed before the value is sealed and never
 * changes after.
 */
export const sealContext = {
  signingKey: (kid: string) => `signing_keys:${kid}`,
  /** `name`: the app_secrets row, `cookie_keys`. */
  appSecret: (name: string) => `app_secrets:${name}`,
  /** `tenantId` as stored (a row's, never as typed): the row is named by that spelling. */
  passkeyTenantKey: (tenantId: TenantId, kid: string) => `passkey_tenant_keys:${tenantId}:${kid}`,
  mailBody: (mailId: string, column: 'text_body' | 'html_body') => `mail_outbox:${mailId}:${column}`,
};
