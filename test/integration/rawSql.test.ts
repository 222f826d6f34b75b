import { CompiledQuery, sql } from 'kysely';
import pg from 'pg';
import { configFrom } from '../../src/config.js';
import { openDatabase } from '../../src/db/connect.js';
import { runSql } from '../../src/db/rawSql.js';
import { eventually } from '../support/eventually.js';
import { openedTestDatabase } from '../support/openedDatabase.js';
import { createTestDatabase, onPostgres } from '../support/testDatabase.js';

/**
 * runSql sends SQL text straight to the pool on Postgres and through Kysely elsewhere (PGlite,
 * transactions): whichever way, callers get the same answer as Kysely's own executor gives.
 */
describe('SQL text run as written', () => {
  const database = openedTestDatabase();
  const insert = `insert into oidc_models (model, id, payload, expires_at) values ($1, $2, $3, now() + interval '1 minute')`;

  beforeEach(async () => {
    await database().db.deleteFrom('oidc_models').where('model', '=', 'RawSqlProbe').execute();
  });

  /** What Kysely's executor answers for the same text and parameters. */
  const throughKysely = (text: string, parameters: unknown[]) =>
    database().db.executeQuery(CompiledQuery.raw(text, parameters));

  it('answers rows, with parsed types, and counts the rows a change touched, as Kysely does', async () => {
    const db = database().db;
    const inserted = await runSql(db, insert, ['RawSqlProbe', 'a', '{"n":1}']);
    expect(inserted).toEqual({ rows: [], numAffectedRows: 1n });
    await runSql(db, insert, ['RawSqlProbe', 'b', '{"n":2}']);

    const select = `select id, payload, expires_at from oidc_models where model = $1 order by id`;
    const selected = await runSql<{ id: string; payload: { n: number }; expires_at: Date }>(db, select, [
      'RawSqlProbe',
    ]);
    expect(selected.rows.map((r) => [r.id, r.payload])).toEqual([
      ['a', { n: 1 }],
      ['b', { n: 2 }],
    ]);
    expect(selected.rows[0]!.expires_at).toBeInstanceOf(Date);
    expect(selected).toEqual(await throughKysely(select, ['RawSqlProbe']));

    const update = `update oidc_models set consumed_at = now() where model = $1`;
    expect((await runSql(db, update, ['RawSqlProbe'])).numAffectedRows).toBe(2n);
    const none = `delete from oidc_models where model = $1 and id = $2 returning id`;
    expect(await runSql(db, none, ['RawSqlProbe', 'missing'])).toEqual({ rows: [], numAffectedRows: 0n });
    expect(await runSql(db, none, ['RawSqlProbe', 'a'])).toEqual({
      rows: [{ id: 'a' }],
      numAffectedRows: 1n,
    });
  });

  it("runs on a transaction's own connection inside it: a rollback takes its statements back", async () => {
    const db = database().db;
    await db
      .transaction()
      .execute(async (trx) => {
        await runSql(trx, insert, ['RawSqlProbe', 'in-transaction', '{}']);
        const seen = await runSql(trx, `select id from oidc_models where model = $1`, ['RawSqlProbe']);
        expect(seen.rows).toEqual([{ id: 'in-transaction' }]);
        throw new Error('roll back');
      })
      .catch((error: Error) => expect(error.message).toBe('roll back'));
    expect((await runSql(db, `select id from oidc_models where model = $1`, ['RawSqlProbe'])).rows).toEqual(
      [],
    );
  });

  it('fails as the database refuses, with its error code, and changes nothing', async () => {
    const db = database().db;
    await runSql(db, insert, ['RawSqlProbe', 'dup', '{}']);
    await expect(runSql(db, insert, ['RawSqlProbe', 'dup', '{}'])).rejects.toMatchObject({ code: '23505' });
    const rows = await runSql(db, `select id from oidc_models where model = $1`, ['RawSqlProbe']);
    expect(rows.rows).toEqual([{ id: 'dup' }]);
  });
});

/**
 * On Postgres each text is a named prepared statement, parsed and planned once per connection.
 * A connection that turns out not to keep them (a transaction-mode pooler hands each statement
 * to whichever server session is free) has its statement sent again unprepared, and the pool
 * stays unprepared from then on. One connection here, so the tests see the session it uses.
 */
const describeDirect = onPostgres && !process.env.SESAME_TEST_POOLER_URL ? describe : describe.skip;
describeDirect('SQL text as prepared statements, on a direct connection to Postgres', () => {
  const told: string[] = [];
  const database = openedTestDatabase(1, { onStatementsUnprepared: (reason) => told.push(reason) });
  const select = `select id, payload from oidc_models where model = $1 order by id`;
  const insert = `insert into oidc_models (model, id, payload, expires_at) values ($1, $2, '{}', now() + interval '1 minute')`;

  /** The statements the pool's one server session holds prepared. */
  const prepared = async () =>
    (
      await database().db.executeQuery<{ name: string; statement: string }>(
        CompiledQuery.raw(`select name, statement from pg_prepared_statements order by name`),
      )
    ).rows;

  it('prepares a text once and runs it by name after that', async () => {
    const db = database().db;
    await runSql(db, insert, ['PreparedProbe', 'a']);
    await runSql(db, insert, ['PreparedProbe', 'b']);
    expect((await runSql(db, select, ['PreparedProbe'])).rows).toEqual([
      { id: 'a', payload: {} },
      { id: 'b', payload: {} },
    ]);
    const statements = await prepared();
    expect(statements.map((s) => s.statement).sort()).toEqual([insert, select].sort());
    for (const { name } of statements) expect(name).toMatch(/^sesame_[\w-]{32}$/);
  });

  it('runs again, and is prepared anew, when a migration changed the columns a statement answers', async () => {
    const db = database().db;
    await db.executeQuery(CompiledQuery.raw(`create table prepared_probe (a int)`));
    await db.executeQuery(CompiledQuery.raw(`insert into prepared_probe values (1)`));
    const all = `select * from prepared_probe`;
    expect((await runSql(db, all)).rows).toEqual([{ a: 1 }]);
    await db.executeQuery(CompiledQuery.raw(`alter table prepared_probe add column b int default 2`));
    expect((await runSql(db, all)).rows).toEqual([{ a: 1, b: 2 }]);
    expect((await runSql(db, all)).rows).toEqual([{ a: 1, b: 2 }]);
    // The statement that failed closed its connection; the one in its place prepared the text anew.
    expect((await prepared()).map((s) => s.statement)).toEqual([all]);
    expect(told).toEqual([]);
  });

  it("parses each answer by the columns it names: a column's new type under the same name is read as that type", async () => {
    const db = database().db;
    await db.executeQuery(CompiledQuery.raw(`create table prepared_types (a int, b text)`));
    await db.executeQuery(CompiledQuery.raw(`insert into prepared_types values (1, 'x')`));
    const all = `select a, b from prepared_types`;
    expect((await runSql(db, all)).rows).toEqual([{ a: 1, b: 'x' }]);
    expect((await runSql(db, all)).rows).toEqual([{ a: 1, b: 'x' }]);
    await db.executeQuery(
      CompiledQuery.raw(`alter table prepared_types alter column a type timestamptz using now()`),
    );
    const [row] = (await runSql<{ a: unknown; b: string }>(db, all)).rows;
    expect(row!.a).toBeInstanceOf(Date);
    const [again] = (await runSql<{ a: unknown; b: string }>(db, all)).rows;
    expect(again!.a).toBeInstanceOf(Date);
    expect(again!.b).toBe('x');
    // The same column names the other way round: each value goes to its own name.
    const swapped = `select b as a, a as b from prepared_types`;
    expect((await runSql<{ a: unknown; b: unknown }>(db, swapped)).rows[0]!.a).toBe('x');
    expect((await runSql<{ a: unknown; b: unknown }>(db, swapped)).rows[0]!.b).toBeInstanceOf(Date);
    expect((await runSql(db, `select 1 as a where false`)).rows).toEqual([]);
  });

  it('sends a statement its session lost once more unprepared, runs it once, and prepares nothing after', async () => {
    const db = database().db;
    // A statement that failed closed its connection (pg's pool does so): both are prepared on this one first.
    await runSql(db, select, ['PreparedProbe']);
    await runSql(db, insert, ['PreparedProbe', 'c']);
    expect((await prepared()).map((s) => s.statement)).toEqual(expect.arrayContaining([insert, select]));
    await db.executeQuery(CompiledQuery.raw(`deallocate all`));
    // The connection believes both are prepared; its session no longer has them.
    await runSql(db, insert, ['PreparedProbe', 'd']);
    expect((await runSql<{ id: string }>(db, select, ['PreparedProbe'])).rows.map((row) => row.id)).toEqual([
      'a',
      'b',
      'c',
      'd',
    ]);
    expect(told).toEqual(['a prepared statement was missing on the server session']);
    await runSql(db, insert, ['PreparedProbe', 'e']);
    await runSql(db, `select count(*) from oidc_models where model = $1`, ['PreparedProbe']);
    expect(await prepared()).toEqual([]);
    expect(told).toHaveLength(1);
  });

  it('sends a read once more when its server session ended under it, and a write not', async () => {
    const db = database().db;
    await db.executeQuery(CompiledQuery.raw(`create sequence if not exists ended_session_probe`));
    // Its first run ends its own session (pg_terminate_backend: 57P01, as when an admin or a
    // pooler ends it); the second, on a new connection, answers.
    const endsOnOddRuns = `case when nextval('ended_session_probe') % 2 = 1 then pg_terminate_backend(pg_backend_pid()) else true end`;
    expect((await runSql<{ answered: boolean }>(db, `select ${endsOnOddRuns} as answered`)).rows).toEqual([
      { answered: true },
    ]);
    await expect(
      runSql(db, `with ended as (select ${endsOnOddRuns} as answered) select answered from ended`),
    ).rejects.toMatchObject({ code: '57P01' });
    await db.executeQuery(CompiledQuery.raw(`drop sequence ended_session_probe`));
  });

  it("does the same for Kysely's own reads, and resends nothing in a transaction", async () => {
    const db = database().db;
    await db.executeQuery(CompiledQuery.raw(`create sequence if not exists ended_kysely_probe`));
    const endsOnOddRuns = sql<boolean>`case when nextval('ended_kysely_probe') % 2 = 1 then pg_terminate_backend(pg_backend_pid()) else true end`;
    expect(await db.selectNoFrom(endsOnOddRuns.as('answered')).execute()).toEqual([{ answered: true }]);
    // In a transaction nothing is sent again; the rollback finds the connection gone. That was an
    // 'error' event nobody listened to on the client Kysely held: the process ended.
    await expect(
      db.transaction().execute((trx) => trx.selectNoFrom(endsOnOddRuns.as('answered')).execute()),
    ).rejects.toThrow(/terminat/);
    // The pool goes on answering after both.
    expect(await db.selectNoFrom(sql<number>`1`.as('one')).execute()).toEqual([{ one: 1 }]);
    await db.executeQuery(CompiledQuery.raw(`drop sequence ended_kysely_probe`));
  });
});

describeDirect('closing a database that only runSql used', () => {
  it('closes every connection of its pool: Kysely ends the pool only after a query of its own', async () => {
    const testDb = await createTestDatabase();
    try {
      const database = await openDatabase(configFrom(testDb.env), { poolSize: 3 });
      await Promise.all(
        [1, 2, 3].map((n) => runSql(database.db, `select $1::int as n, pg_sleep(0.05)`, [n])),
      );
      const name = new URL(testDb.env.DATABASE_URL!).pathname.slice(1);
      const admin = new pg.Client({
        connectionString: testDb.env.DATABASE_URL!.replace(`/${name}`, '/postgres'),
      });
      await admin.connect();
      try {
        const open = async () =>
          (await admin.query(`select count(*)::int as n from pg_stat_activity where datname = $1`, [name]))
            .rows[0].n as number;
        expect(await open()).toBe(3);
        await database.close();
        expect(await eventually(async () => (await open()) === 0)).toBe(true);
      } finally {
        await admin.end();
      }
    } finally {
      await testDb.drop();
    }
  });
});
