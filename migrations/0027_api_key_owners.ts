import { type Kysely, sql } from 'kysely';

/**
 * Who created each admin API key (`user:<id>` for an admin on the API keys page, `cli:<name>`
 * for the CLI), as the audit log names them: demoting, disabling or deleting an admin revokes
 * the keys that admin made, which kept working before. Keys made before this migration get
 * their creator from the audit log's `api_key.create`; one the log no longer holds stays
 * unknown (null) and is kept.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table api_keys add column if not exists created_by text`.execute(db);
  await sql`
    update api_keys k set created_by = (
      select e.actor from audit_events e
      where e.action = 'api_key.create' and e.target = k.id::text
      order by e.id limit 1
    )
    where k.created_by is null
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table api_keys drop column if exists created_by`.execute(db);
}
