import { type Kysely, sql } from 'kysely';

/**
 * Groups of users, the apps each group may use, and custom claims on users and groups.
 * - `groups.name` is unique regardless of case: "Finance" and "finance" would be the same
 *   group to a person reading a `groups` claim.
 * - `client_allowed_groups`: a client with rows here admits only members of those groups;
 *   none means everyone. Deleting a group or a client removes its rows.
 * - `claims` (users and groups) hold admin-set claims, released with the `profile` scope.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('groups')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('claims', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`create unique index groups_name_lower on groups (lower(name))`.execute(db);

  await db.schema
    .createTable('group_members')
    .addColumn('group_id', 'uuid', (c) => c.notNull().references('groups.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('group_members_pkey', ['group_id', 'user_id'])
    .execute();
  // Claims and access checks look a user's groups up by user.
  await db.schema.createIndex('group_members_user').on('group_members').column('user_id').execute();

  await db.schema
    .createTable('client_allowed_groups')
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    .addColumn('group_id', 'uuid', (c) => c.notNull().references('groups.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('client_allowed_groups_pkey', ['client_id', 'group_id'])
    .execute();
  await db.schema
    .createIndex('client_allowed_groups_group')
    .on('client_allowed_groups')
    .column('group_id')
    .execute();

  await db.schema
    .alterTable('users')
    .addColumn('claims', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('claims').execute();
  await db.schema.dropTable('client_allowed_groups').ifExists().execute();
  await db.schema.dropTable('group_members').ifExists().execute();
  await db.schema.dropTable('groups').ifExists().execute();
}
