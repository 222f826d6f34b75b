import { type Kysely, sql } from 'kysely';

/**
 * The passkey API closer to Hanko's: credentials say whether they are MFA credentials (the
 * MFA calls set it; a passkey login refuses them), `last_used_at` is set from creation on
 * as Hanko does, and each tenant keeps an audit log of its ceremonies and credential
 * changes (`GET /{tenant}/audit_logs`), shaped as Hanko's `audit_logs` table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // IF NOT EXISTS: the MFA work (branch hanko-mfa) adds the same column in a migration of
  // its own; when that one ran first, this one finds the column and goes on.
  await sql`alter table passkey_tenant_credentials add column if not exists is_mfa boolean not null default false`.execute(
    db,
  );
  await sql`update passkey_tenant_credentials set last_used_at = created_at where last_used_at is null`.execute(
    db,
  );

  await db.schema
    .createTable('passkey_tenant_audit_logs')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('passkey_tenants.id').onDelete('cascade'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('meta_http_request_id', 'text', (c) => c.notNull())
    .addColumn('meta_source_ip', 'text', (c) => c.notNull())
    .addColumn('meta_user_agent', 'text', (c) => c.notNull())
    .addColumn('actor_user_id', 'text')
    .addColumn('transaction_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // Every read is one tenant's entries, newest first.
  await db.schema
    .createIndex('passkey_tenant_audit_logs_tenant_created')
    .on('passkey_tenant_audit_logs')
    .columns(['tenant_id', 'created_at desc'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('passkey_tenant_audit_logs').ifExists().execute();
  await sql`alter table passkey_tenant_credentials drop column if exists is_mfa`.execute(db);
}
