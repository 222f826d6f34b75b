import type { Kysely } from 'kysely';

/**
 * The passkey API's audit log is swept of entries older than PASSKEY_AUDIT_LOG_DAYS (90 by
 * default): anyone may start a passkey login, and each start is an entry, so the log grew
 * without end. The sweep looks entries up by age across every tenant, which the
 * per-tenant index of migration 0011 does not serve.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('passkey_tenant_audit_logs_created')
    .ifNotExists()
    .on('passkey_tenant_audit_logs')
    .column('created_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('passkey_tenant_audit_logs_created').ifExists().execute();
}
