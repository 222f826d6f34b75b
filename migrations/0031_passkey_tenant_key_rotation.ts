import { type Kysely, sql } from 'kysely';

/**
 * A passkey API tenant's signing keys get a table of their own, so a key can be rotated the
 * way Sesame's own keys are (0007): a new key is published in the tenant's JWKS at once and
 * signs from `activates_at`; the key it replaces signs until then (its `retired_at`) and
 * stays published for a grace after. Each tenant's key moves here as its only key, signing
 * since the tenant was created. The servers read the keys from the database on each request
 * (nothing to announce): two instances on one database always agree on which key signs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('passkey_tenant_keys')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('passkey_tenants.id').onDelete('cascade'))
    .addColumn('private_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('activates_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('retired_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('passkey_tenant_keys_tenant')
    .on('passkey_tenant_keys')
    .columns(['tenant_id', 'activates_at'])
    .execute();
  await sql`
    insert into passkey_tenant_keys (kid, tenant_id, private_jwk, created_at, activates_at)
    select signing_kid, id, signing_key, created_at, created_at from passkey_tenants`.execute(db);
  await db.schema.alterTable('passkey_tenants').dropColumn('signing_kid').dropColumn('signing_key').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('passkey_tenants')
    .addColumn('signing_kid', 'text')
    .addColumn('signing_key', 'text')
    .execute();
  // The key that signs now (else the newest) goes back to the tenant; the others are lost.
  await sql`
    update passkey_tenants t set signing_kid = k.kid, signing_key = k.private_jwk
    from (
      select distinct on (tenant_id) tenant_id, kid, private_jwk from passkey_tenant_keys
      order by tenant_id, (activates_at <= now() and (retired_at is null or retired_at > now())) desc, activates_at desc
    ) k
    where k.tenant_id = t.id`.execute(db);
  await sql`alter table passkey_tenants alter column signing_kid set not null, alter column signing_key set not null`.execute(
    db,
  );
  await db.schema.dropTable('passkey_tenant_keys').execute();
}
