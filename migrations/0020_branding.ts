import { type Kysely, sql } from 'kysely';

/**
 * What an admin set on /admin/branding, over the BRAND_* settings: one row (id 1), each
 * column null where the config's value applies. The images are kept in the row with their
 * type (read from their magic bytes) and a hash of their bytes for the ETag, so every
 * instance serves the same ones. Changes are announced like clients' (migration 0004), so
 * every instance's pages show a new brand at once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table branding (
      id smallint primary key default 1 check (id = 1),
      name text check (char_length(name) between 1 and 64),
      accent text check (accent ~ '^#[0-9a-f]{6}$'),
      logo bytea check (octet_length(logo) <= 262144),
      logo_type text,
      logo_etag text,
      favicon bytea check (octet_length(favicon) <= 65536),
      favicon_type text,
      favicon_etag text,
      updated_at timestamptz not null default now(),
      check ((logo is null) = (logo_type is null) and (logo is null) = (logo_etag is null)),
      check ((favicon is null) = (favicon_type is null) and (favicon is null) = (favicon_etag is null))
    )`.execute(db);
  await sql`
    create trigger branding_announce_change
    after insert or update or delete on branding
    for each row execute function sesame_announce_row_change('id')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists branding`.execute(db);
}
