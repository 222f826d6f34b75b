import { type Kysely, sql } from 'kysely';

/**
 * What each admin API key may do: `admin` (the admin API and GET /metrics) or `metrics`
 * (GET /metrics only), so a Prometheus scraper holds a key that cannot create clients,
 * promote admins or delete users. Every key made before this migration could do all of it,
 * so it becomes `admin` and keeps working.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table api_keys add column if not exists scope text not null default 'admin'
      constraint api_keys_scope_known check (scope in ('admin', 'metrics'))
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table api_keys drop column if exists scope`.execute(db);
}
