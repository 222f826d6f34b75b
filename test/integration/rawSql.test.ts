import { CompiledQuery } from 'kysely';
import { runSql } from '../../src/db/rawSql.js';
import { openedTestDatabase } from '../support/openedDatabase.js';

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
