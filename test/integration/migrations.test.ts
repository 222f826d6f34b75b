import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Migrator, sql } from 'kysely';
import pg from 'pg';
import { migrations } from '../../migrations/index.js';
import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { GroupedUpserts } from '../../src/db/groupedUpserts.js';
import { MigrationLockTimeoutError, migratePostgresToLatest, migrateToLatest } from '../../src/db/migrate.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { passkeyTenantKeysQueries } from '../../src/db/queries/passkeyTenantKeys.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createAdapter } from '../../src/oidc/adapter.js';
import { createRowCaches } from '../../src/oidc/rowCaches.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/testDatabase.js';

describe('migration 0006: accounts that already used a one-time link are email-verified', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('marks invited and recovered accounts verified, and leaves self sign-ups alone', async () => {
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const back = await migrator.migrateTo('0005_grants_by_account_client');
    expect(back.error).toBeUndefined();

    const invited = await usersQueries.insert(db, { email: 'invited@example.com', name: null });
    const recovered = await usersQueries.insert(db, { email: 'recovered@example.com', name: null });
    const signedUp = await usersQueries.insert(db, { email: 'signedup@example.com', name: null });
    await auditQueries.record(db, `user:${invited.id}`, 'link.invite.use', invited.id, {});
    await auditQueries.record(db, `user:${recovered.id}`, 'link.recovery.use', recovered.id, {});
    await auditQueries.record(db, `user:${signedUp.id}`, 'user.signup', signedUp.id, {});

    expect(await database.migrate()).toContain('0006_email_verified_by_links');
    const verified = async (id: string) => (await usersQueries.findById(db, id))!.email_verified;
    expect(await verified(invited.id)).toBe(true);
    expect(await verified(recovered.id)).toBe(true);
    expect(await verified(signedUp.id)).toBe(false);
  });
});

/** A database of its own for the describe block it is called in; the handle once beforeAll ran. */
function ownDatabase(): () => DatabaseHandle {
  let testDb: TestDatabase | undefined;
  let database: DatabaseHandle | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });
  return () => database!;
}

/** Takes the database back to the migration `name`: what a database an older Sesame left holds. */
async function migrateBackTo(database: DatabaseHandle, name: string): Promise<void> {
  const migrator = new Migrator({ db: database.db, provider: { getMigrations: async () => migrations } });
  expect((await migrator.migrateTo(name)).error).toBeUndefined();
}

describe('the list of migrations', () => {
  it('names each number once and lists every file in migrations/', () => {
    // Two branches that each add the next number, merged, must not both keep it: the later
    // one is renumbered past every migration on main, or databases migrated in between are
    // upgraded out of order.
    const numbers = Object.keys(migrations).map((name) => name.slice(0, 4));
    expect(new Set(numbers).size).toBe(numbers.length);
    const files = fs
      .readdirSync(new URL('../../migrations/', import.meta.url))
      .filter((file) => /^\d{4}_.*\.ts$/.test(file))
      .map((file) => file.replace(/\.ts$/, ''));
    expect(Object.keys(migrations).sort()).toEqual(files.sort());
  });
});

describe('a database migrated by another version of Sesame', () => {
  const handle = ownDatabase();

  it('is upgraded when migrations reached main out of order: 0017 and 0018 after 0019 and 0020', async () => {
    const database = handle();
    await migrateBackTo(database, '0016_passkey_tenant_settings');
    // What a database migrated at main between those merges holds: 0001–0016, 0019, 0020.
    const then = Object.fromEntries(
      Object.entries(migrations).filter(([name]) => name <= '0020' && !/^001[78]_/.test(name)),
    );
    const old = new Migrator({ db: database.db, provider: { getMigrations: async () => then } });
    expect((await old.migrateToLatest()).error).toBeUndefined();

    const ran = await database.migrate();
    expect(ran).toEqual(
      expect.arrayContaining(['0017_mail_outbox', '0018_email_verifications', '0028_api_key_scopes']),
    );
    expect(ran).not.toContain('0019_user_locale');
    expect(await database.migrate()).toEqual([]);
    expect(await sql`select count(*)::int as n from mail_outbox`.execute(database.db)).toMatchObject({
      rows: [{ n: 0 }],
    });
  });

  it('is refused when a newer Sesame ran a migration this version does not have, saying so', async () => {
    const database = handle();
    const newer = new Migrator({
      db: database.db,
      allowUnorderedMigrations: true,
      provider: {
        getMigrations: async () => ({ ...migrations, '9999_from_the_future': { up: async () => {} } }),
      },
    });
    expect((await newer.migrateToLatest()).error).toBeUndefined();
    await expect(database.migrate()).rejects.toThrow(
      'the database was migrated by a newer Sesame (it ran migration 9999_from_the_future, which this version does not have): run that version or a newer one',
    );
  });
});

describe('a migration that fails', () => {
  const handle = ownDatabase();

  it('is named in the error, and every migration of the run is left unapplied', async () => {
    const database = handle();
    await migrateBackTo(database, '0030_admin_form_tokens');
    // A table of that name in the way: one an operator made, or a manual fix left half done.
    await sql`create table passkey_tenant_keys (x int)`.execute(database.db);

    await expect(database.migrate()).rejects.toThrow(
      /^migration 0031_passkey_tenant_key_rotation failed, and none was applied: relation "passkey_tenant_keys" already exists$/,
    );
    const ran = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
      database.db,
    );
    expect(ran.rows.at(-1)).toEqual({ name: '0030_admin_form_tokens' });
  });
});

describe('migration 0027: each admin API key names who created it', () => {
  const handle = ownDatabase();

  it('takes the creator of an older key from the audit log, and leaves a key the log does not name unknown', async () => {
    const database = handle();
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0026_passkey_audit_log_retention')).error).toBeUndefined();
    const insertKey = async (name: string) =>
      (
        await sql<{
          id: string;
        }>`insert into api_keys (name, key_hash) values (${name}, ${name}) returning id`.execute(db)
      ).rows[0]!.id;
    const byAdmin = await insertKey('by-admin');
    const byCli = await insertKey('by-cli');
    const untold = await insertKey('untold');
    await auditQueries.record(db, 'user:0b3c5a52-6a4e-4c0e-9f55-3f1f1d1d1d1d', 'api_key.create', byAdmin, {});
    await auditQueries.record(db, 'cli:ops', 'api_key.create', byCli, {});

    expect(await database.migrate()).toContain('0027_api_key_owners');
    const creators = await db.selectFrom('api_keys').select(['id', 'created_by']).execute();
    expect(Object.fromEntries(creators.map((k) => [k.id, k.created_by]))).toEqual({
      [byAdmin]: 'user:0b3c5a52-6a4e-4c0e-9f55-3f1f1d1d1d1d',
      [byCli]: 'cli:ops',
      [untold]: null,
    });
  });
});

describe('migration 0028: each admin API key has a scope', () => {
  const handle = ownDatabase();

  it('makes every existing key an admin key, and refuses a scope it does not know', async () => {
    const database = handle();
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0027_api_key_owners')).error).toBeUndefined();
    await sql`insert into api_keys (name, key_hash, created_by) values ('old', 'old', 'cli:ops')`.execute(db);
    await sql`insert into api_keys (name, key_hash, revoked_at) values ('gone', 'gone', now())`.execute(db);

    expect(await database.migrate()).toContain('0028_api_key_scopes');
    const scopes = await db.selectFrom('api_keys').select(['name', 'scope']).orderBy('name').execute();
    expect(scopes).toEqual([
      { name: 'gone', scope: 'admin' },
      { name: 'old', scope: 'admin' },
    ]);
    await expect(
      sql`insert into api_keys (name, key_hash, scope) values ('odd', 'odd', 'root')`.execute(db),
    ).rejects.toThrow(/api_keys_scope_known/);
  });
});

describe("migration 0038: confidential clients registered before keep introspecting other apps' tokens", () => {
  const handle = ownDatabase();

  it('marks every existing confidential client, no public one, and no client registered after', async () => {
    const database = handle();
    const db = database.db;
    await migrateBackTo(database, '0037_audit_event_filters');
    const insert = (id: string, isPublic: boolean) =>
      sql`insert into clients (client_id, name, secret_hash, redirect_uris, grant_types, is_public)
          values (${id}, ${id}, ${isPublic ? null : 'hash'}, '[]'::jsonb, '["client_credentials"]'::jsonb, ${isPublic})`.execute(
        db,
      );
    await insert('old-api', false);
    await insert('old-app', false);
    await insert('old-spa', true);

    expect(await database.migrate()).toContain('0038_token_checker_clients');
    await insert('new-app', false);
    const marks = await db
      .selectFrom('clients')
      .select(['client_id', 'introspect_tokens'])
      .orderBy('client_id')
      .execute();
    expect(marks).toEqual([
      { client_id: 'new-app', introspect_tokens: false },
      { client_id: 'old-api', introspect_tokens: true },
      { client_id: 'old-app', introspect_tokens: true },
      { client_id: 'old-spa', introspect_tokens: false },
    ]);
    await expect(
      sql`update clients set introspect_tokens = true where client_id = 'old-spa'`.execute(db),
    ).rejects.toThrow(/clients_public_never_introspects/);
  });
});

describe('migration 0008: bearer ids already stored are rehashed, and keep working', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('stores the hash of each token id without its jti, keeps grant ids, and the adapter finds them by value', async () => {
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0007_signing_key_schedule')).error).toBeUndefined();

    const owner = await usersQueries.insert(db, { email: 'holder@example.com', name: null });
    const token = 'at-issued-before-0008-Zm9vYmFy';
    const now = Math.floor(Date.now() / 1000);
    const accessToken = {
      jti: token,
      kind: 'AccessToken',
      accountId: owner.id,
      grantId: 'grant-1',
      iat: now,
    };
    await oidcModelsQueries.upsert(db, 'AccessToken', token, accessToken, 3600);
    await oidcModelsQueries.upsert(
      db,
      'Grant',
      'grant-1',
      { jti: 'grant-1', accountId: owner.id, iat: now },
      3600,
    );

    expect(await migrateToLatest(db)).toContain('0008_tokens_hashed_ids_and_revocation');

    const rows = await db.selectFrom('oidc_models').select(['model', 'id', 'payload']).execute();
    const stored = rows.find((r) => r.model === 'AccessToken')!;
    expect(stored.id).toBe(createHash('sha256').update(token).digest('base64url'));
    expect(JSON.stringify(stored.payload)).not.toContain(token);
    expect(rows.find((r) => r.model === 'Grant')!.id).toBe('grant-1');

    const Adapter = createAdapter(db, createRowCaches(db), new GroupedUpserts(db));
    expect(await new Adapter('AccessToken').find(token)).toEqual(accessToken);
    expect(await new Adapter('Grant').find('grant-1')).toMatchObject({ accountId: owner.id });
  });
});

describe("migration 0036: stored interactions lose the browser's cookie values", () => {
  const handle = ownDatabase();

  it('drops the session cookie, hashes the uid in returnTo and in its challenge, and the adapter still finds the interaction whole', async () => {
    const database = handle();
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0035_passkey_suspected_clone')).error).toBeUndefined();
    const owner = await usersQueries.insert(db, { email: 'pending@example.com', name: null });
    const [uid, cookie] = ['interaction-uid-Zm9vYmFy', 'session-cookie-YmFyYmF6'];
    const returnTo = `http://localhost:3000/auth/${uid}`;
    const session = { accountId: owner.id, uid: 'session-uid', cookie };
    const stored = { returnTo, session, prompt: { name: 'consent' }, iat: Math.floor(Date.now() / 1000) };
    await oidcModelsQueries.upsert(db, 'Interaction', storedId('Interaction', uid), stored, 3600);
    await sql`insert into webauthn_challenges (challenge, purpose, binding, expires_at)
      values ('challenge-1', 'login', ${uid}, now() + interval '5 minutes')`.execute(db);

    expect(await database.migrate()).toContain('0036_interactions_without_cookies');
    const challenges = await db.selectFrom('webauthn_challenges').select('binding').execute();
    expect(challenges).toEqual([{ binding: storedId('Interaction', uid) }]);

    const rows = await db.selectFrom('oidc_models').select(['id', 'payload']).execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows[0]!.payload)).not.toContain(cookie);
    expect(JSON.stringify(rows[0]!.payload)).not.toContain(uid);
    const Adapter = createAdapter(db, createRowCaches(db), new GroupedUpserts(db));
    const { cookie: _cookie, ...sessionKept } = session;
    expect(await new Adapter('Interaction').find(uid)).toEqual({ ...stored, jti: uid, session: sessionKept });
  });
});

describe('migration 0011: passkey API credentials get is_mfa and a last_used_at', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('sets last_used_at of never-used passkeys to their creation and marks none as MFA', async () => {
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0010_setup_links')).error).toBeUndefined();
    // The signing key was a column of the tenant before 0031.
    const [tenant] = (
      await sql<{ id: string }>`
        insert into passkey_tenants (name, rp_id, origins, api_key_hash, signing_kid, signing_key)
        values ('Notes', 'app.example', '["https://app.example"]', 'hash', 'kid', '{}') returning id`.execute(
        db,
      )
    ).rows;
    await db
      .insertInto('passkey_tenant_users')
      .values({ tenant_id: tenant!.id, user_id: 'u', username: 'u', display_name: 'u' })
      .execute();
    const credential = (id: string, lastUsedAt: Date | null) => ({
      tenant_id: tenant!.id,
      id,
      user_id: 'u',
      public_key: new Uint8Array([1]),
      counter: 0,
      transports: JSON.stringify([]),
      aaguid: '00000000-0000-0000-0000-000000000000',
      attestation_type: 'none',
      backup_eligible: false,
      backup_state: false,
      name: 'Passkey',
      created_at: new Date('2026-01-01T00:00:00Z'),
      last_used_at: lastUsedAt,
    });
    await db
      .insertInto('passkey_tenant_credentials')
      // biome-ignore lint/suspicious/noExplicitAny: is_mfa does not exist before 0011
      .values([credential('never', null), credential('used', new Date('2026-02-01T00:00:00Z'))] as any)
      .execute();

    expect(await migrateToLatest(db)).toContain('0011_passkey_api_hanko');
    const rows = await db
      .selectFrom('passkey_tenant_credentials')
      .select(['id', 'last_used_at', 'is_mfa'])
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      { id: 'never', last_used_at: new Date('2026-01-01T00:00:00Z'), is_mfa: false },
      { id: 'used', last_used_at: new Date('2026-02-01T00:00:00Z'), is_mfa: false },
    ]);
  });
});

describe("migration 0031: a passkey API tenant's signing key moves to a table of its own", () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('keeps the kid and the sealed key, signing since the tenant was created, and moves it back on the way down', async () => {
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('0030_admin_form_tokens')).error).toBeUndefined();
    const created = new Date('2026-01-01T00:00:00Z');
    // The signing key was a column of the tenant before 0031.
    const { id } = (
      await sql<{ id: string }>`
        insert into passkey_tenants (name, rp_id, origins, api_key_hash, signing_kid, signing_key, created_at)
        values ('Notes', 'app.example', '["https://app.example"]', 'hash', 'pk-old', 'enc:v1:sealed', ${created})
        returning id`.execute(db)
    ).rows[0]!;

    expect(await migrateToLatest(db)).toContain('0031_passkey_tenant_key_rotation');
    expect(await passkeyTenantKeysQueries.signing(db, id)).toEqual({
      kid: 'pk-old',
      private_jwk: 'enc:v1:sealed',
    });
    expect(
      await db
        .selectFrom('passkey_tenant_keys')
        .select(['tenant_id', 'activates_at', 'retired_at'])
        .execute(),
    ).toEqual([{ tenant_id: id, activates_at: created, retired_at: null }]);

    // A pending key does not go back: the one that signs does.
    await passkeyTenantKeysQueries.insert(db, id, 'pk-new', 'enc:v1:pending', 3600);
    expect((await migrator.migrateTo('0030_admin_form_tokens')).error).toBeUndefined();
    const back = await sql<{ signing_kid: string; signing_key: string }>`
      select signing_kid, signing_key from passkey_tenants`.execute(db);
    expect(back.rows).toEqual([{ signing_kid: 'pk-old', signing_key: 'enc:v1:sealed' }]);
  });
});

(onPostgres ? describe : describe.skip)('the migration lock on Postgres', () => {
  let testDb: TestDatabase;

  beforeAll(async () => {
    testDb = await createTestDatabase();
  });

  afterAll(() => testDb.drop());

  const directUrl = () => testDb.env.DATABASE_DIRECT_URL!;

  async function advisoryLocksHeld(): Promise<number> {
    const client = new pg.Client({ connectionString: directUrl() });
    await client.connect();
    try {
      const { rows } = await client.query(
        `select count(*)::int as held from pg_locks l join pg_database d on d.oid = l.database
         where l.locktype = 'advisory' and d.datname = current_database()`,
      );
      return rows[0].held;
    } finally {
      await client.end();
    }
  }

  it('gives up with a message naming pg_locks when another session holds the lock past the timeout', async () => {
    const holder = new pg.Client({ connectionString: directUrl() });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock(3853314791062309107)');
      const started = Date.now();
      const attempt = migratePostgresToLatest(directUrl(), 500);
      await expect(attempt).rejects.toBeInstanceOf(MigrationLockTimeoutError);
      await expect(attempt).rejects.toThrow(/waited 0.5 s for a lock .*pg_locks/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await holder.end();
    }
  });

  it('says a lock timed out, not that the role may not create tables, for a role without CREATE', async () => {
    // Least privilege: the owner migrates, the servers run as a role that reads and writes rows.
    await migratePostgresToLatest(directUrl());
    const role = `sesame_rows_${process.pid}`;
    const admin = new pg.Client({ connectionString: directUrl() });
    await admin.connect();
    const holder = new pg.Client({ connectionString: directUrl() });
    await holder.connect();
    try {
      await admin.query(`create role ${role} login`);
      await admin.query(`grant select, insert, update, delete on all tables in schema public to ${role}`);
      const asRole = Object.assign(new URL(directUrl()), { username: role, password: '' }).href;
      expect(await migratePostgresToLatest(asRole)).toEqual([]);
      await holder.query('begin');
      await holder.query('select pg_advisory_xact_lock(3853314791062309107)');
      await expect(migratePostgresToLatest(asRole, 500)).rejects.toBeInstanceOf(MigrationLockTimeoutError);
    } finally {
      await holder.end();
      await admin.query(`drop owned by ${role}`).catch(() => {});
      await admin.query(`drop role if exists ${role}`).catch(() => {});
      await admin.end();
    }
  });

  it('holds its lock only for the transaction: none is left once it is done, and the next run goes through', async () => {
    await Promise.all([migratePostgresToLatest(directUrl()), migratePostgresToLatest(directUrl())]);
    expect(await advisoryLocksHeld()).toBe(0);
    expect(await migratePostgresToLatest(directUrl())).toEqual([]);
  });
});
