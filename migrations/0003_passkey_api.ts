import { type Kysely, sql } from 'kysely';

/**
 * The passkey API (Hanko-compatible): tenants are apps that run the WebAuthn ceremony in
 * their own pages; each has its own users and passkeys, kept apart from Sesame's accounts
 * and from every other tenant. Challenges reuse webauthn_challenges, bound to `tenant:<id>`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('passkey_tenants')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('rp_id', 'text', (c) => c.notNull())
    .addColumn('origins', 'jsonb', (c) => c.notNull())
    .addColumn('api_key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('signing_kid', 'text', (c) => c.notNull())
    .addColumn('signing_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('passkey_tenant_users')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('passkey_tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('icon', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('passkey_tenant_users_pkey', ['tenant_id', 'user_id'])
    .execute();

  // The tenant is part of the key: the same credential id in two tenants is two rows, and a
  // lookup without the tenant cannot find anything.
  await db.schema
    .createTable('passkey_tenant_credentials')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('transports', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('aaguid', 'text', (c) => c.notNull())
    .addColumn('attestation_type', 'text', (c) => c.notNull())
    .addColumn('backup_eligible', 'boolean', (c) => c.notNull())
    .addColumn('backup_state', 'boolean', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addPrimaryKeyConstraint('passkey_tenant_credentials_pkey', ['tenant_id', 'id'])
    .addForeignKeyConstraint(
      'passkey_tenant_credentials_user_fkey',
      ['tenant_id', 'user_id'],
      'passkey_tenant_users',
      ['tenant_id', 'user_id'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('passkey_tenant_credentials_user')
    .on('passkey_tenant_credentials')
    .columns(['tenant_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['passkey_tenant_credentials', 'passkey_tenant_users', 'passkey_tenants']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
