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

/**
 * Appended to a write that returns nothing else: makes its transaction commit without waiting
 * for the WAL to reach the disk. `set_config(…, true)` lasts until the end of the transaction,
 * here the statement's own, so nothing else on the connection (or, behind a transaction-mode
 * pooler, on the server session it was lent) changes; the subquery runs it once per statement.
 */
const COMMIT_WITHOUT_FLUSH_WAIT = `\n      returning (select set_config('synchronous_commit', 'off', true))`;

/**
 * Runs a write whose loss would only fail closed, committed asynchronously (Postgres's
 * `synchronous_commit = off` for this transaction alone). It is visible to every reader at
 * once, exactly as a synchronous commit; what differs is only a crash of Postgres itself (or
 * a fail-over) within ~0.6 s of it (three times `wal_writer_delay`), which may lose it. The
 * WAL is written in order, so a write is never lost while a later synchronous commit on the
 * same server is kept: a crash can only take back the newest such writes, as if the requests
 * that made them had come a moment later and found the database down.
 *
 * So it is for new state that lets something happen later and is useless when lost: a
 * ceremony's challenge, an interaction's progress, a session, grant, code or token just
 * issued (their holder signs in again). Never for a write that stops something (a consumed
 * code or challenge, a revocation, a deletion, a counter that detects a cloned passkey), nor
 * for a change to an account, a passkey, a client or a setting: those commit synchronously,
 * as every other statement does.
 *
 * Otherwise each commit waits for its WAL flush (~0.16 ms of fdatasync on this machine's disk,
 * more on many cloud disks), and a login writes in some ten statements; logins one at a time took
 * 14 % less time and 10 % less server CPU without those waits (bench/README.md, "Measured on
 * 2026-12-04, 05:00–05:35"). Inside a transaction the statement runs as written: the setting would
 * cover the whole transaction, writes that must be kept included.
 */
export function runWriteWithoutFlushWait(
  db: Db,
  text: string,
  parameters: unknown[],
): Promise<QueryResult<unknown>> {
  return runSql(db, db.isTransaction ? text : text + COMMIT_WITHOUT_FLUSH_WAIT, parameters);
}
