import { CompiledQuery, type QueryResult } from 'kysely';
import type pg from 'pg';
import type { Db } from './connect.js';

/** The pg pool under a Postgres database's Kysely instance (connect.ts registers it). */
const pools = new WeakMap<Db, pg.Pool>();

/** Lets {@link runSql} send statements for `db` straight to `pool`, the pool it was built on. */
export function runSqlOnPool(db: Db, pool: pg.Pool): void {
  pools.set(db, pool);
}

/** Statements whose answer says how many rows they changed, as Kysely's Postgres driver counts them. */
const CHANGING = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

/**
 * Runs SQL text with its parameters as written. The statements of every login and token
 * request use it: Kysely's query builder, and even its `sql` templates, build an operation
 * tree and compile it to text on every call (bench/README.md: ~0.5 ms of CPU per login for
 * the four ceremony statements alone); text written once skips that. Parameters are still
 * sent apart from the text, never spliced into it.
 *
 * On Postgres the statement goes straight to the pool. Through Kysely's executor, each one
 * took ~4 kB of allocations in its async layers (connection provider, executor, driver), about
 * 47 kB per login (bench/README.md, "Measured on 2026-12-03, 23:55–00:15"). Inside a
 * transaction `db` is the transaction's own instance, not registered here, and the statement
 * runs on its connection through Kysely as before; so does every statement on PGlite.
 */
export function runSql<R>(db: Db, text: string, parameters: unknown[] = []): Promise<QueryResult<R>> {
  const pool = pools.get(db);
  if (!pool) return db.executeQuery<R>(CompiledQuery.raw(text, parameters));
  return pool.query(text, parameters).then(({ command, rowCount, rows }) => ({
    rows: (rows ?? []) as R[],
    ...(CHANGING.has(command) && { numAffectedRows: BigInt(rowCount ?? 0) }),
  }));
}
