import { createHash } from 'node:crypto';
import { CompiledQuery, type PostgresPool, type PostgresPoolClient, type QueryResult } from 'kysely';
import pg from 'pg';
import type { Db } from './connect.js';

/**
 * A pool {@link runSql} sends to, and whether its server sessions keep prepared statements.
 * `unprepared` says why they do not, once a statement has shown it.
 */
interface SqlPool {
  pool: pg.Pool;
  unprepared?: string;
  onUnprepared?: (reason: string) => void;
}

/** The pg pool under a Postgres database's Kysely instance (connect.ts registers it). */
const pools = new WeakMap<Db, SqlPool>();

/**
 * Lets {@link runSql} send statements for `db` straight to `pool`, the pool it was built on.
 * `onUnprepared` hears, once, that the pool's connections do not keep prepared statements.
 */
export function runSqlOnPool(db: Db, pool: pg.Pool, onUnprepared?: (reason: string) => void): void {
  pools.set(db, { pool, ...(onUnprepared && { onUnprepared }) });
}

/**
 * How many texts get a prepared statement. The hot statements are a few dozen; texts that
 * grow with a batch (one per row count) take the rest, and past this they run unprepared.
 */
const MOST_PREPARED = 200;

/** Each text's statement name: its hash, so two processes, or two versions, agree on what a name means. */
const statementNames = new Map<string, string>();

function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MOST_PREPARED) {
    name = `sesame_${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * What Postgres answers when a server session does not have the prepared statement a
 * connection named, or has one of that name already: the connection is not one session
 * throughout, as behind a transaction-mode pooler (PgBouncer before 1.21, or without
 * max_prepared_statements). Either is refused before the statement runs, so it can be sent again.
 */
const SESSION_LOST_ITS_STATEMENTS: Record<string, string> = {
  '26000': 'a prepared statement was missing on the server session',
  '42P05': 'a prepared statement already existed on the server session',
};

/**
 * A migration changed the columns a prepared statement answers ("cached plan must not change
 * result type"); also refused before it runs. pg's pool closes a connection whose statement
 * failed, so the next one prepares the text afresh.
 */
const PLAN_CHANGED_RESULT = '0A000';

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
 *
 * There it is a named prepared statement: each connection parses and plans a text once, not
 * on every run, which halved Postgres's CPU per login (bench/README.md, "Measured on
 * 2026-12-04, 17:00–17:55"). A pool whose server sessions do not keep them (a transaction-mode
 * pooler) shows it on a statement that Postgres refuses before running it; that one is sent
 * again unprepared, and so is every later one on the pool. A statement that failed ran in no
 * part: each runs alone, in a transaction of its own.
 */
export function runSql<R>(db: Db, text: string, parameters: unknown[] = []): Promise<QueryResult<R>> {
  const answer = runSqlOnce<R>(db, text, parameters);
  if (!READ_ONLY.test(text)) return answer;
  return answer.catch((error: { code?: string } | undefined) => {
    if (error?.code !== SESSION_ENDED) throw error;
    return runSqlOnce<R>(db, text, parameters);
  });
}

/**
 * The server session ended under the statement ("terminating connection due to administrator
 * command": pg_terminate_backend, a restart, a pooler's server connection closed). Behind a
 * transaction-mode pooler the next statement on a pooled connection is the one told, and it
 * answered 500. A read is sent once more, on another connection; a write is not, as it may
 * have committed before the session ended.
 */
const SESSION_ENDED = '57P01';
const READ_ONLY = /^\s*select\b/i;

function ignoreEndedSession(): void {}

/** What Kysely's Postgres driver sends to open and close a transaction (not a savepoint's `rollback to`). */
const TRANSACTION_OPENS = /^\s*(?:begin|start transaction)\b/i;
const TRANSACTION_ENDS = /^\s*(?:commit|rollback)\s*$/i;

/**
 * `pool` as Kysely's Postgres dialect takes it, with what {@link runSql} does for a read whose
 * server session ended under it done for Kysely's statements too (the admin's pages, the
 * account pages, the CLI): such a read, outside a transaction, is sent once more on another
 * of the pool's connections. In a transaction nothing is sent again: the transaction ended
 * with the session.
 */
export function resendingEndedReads(pool: pg.Pool): PostgresPool {
  return {
    async connect() {
      // A connection whose session ends is an 'error' event on its client, and pg's pool
      // listens only on the clients it holds idle: on one Kysely held (a transaction waiting
      // for its rollback), nothing listened, and a Postgres restart killed the process. The
      // statement in flight, or the next one, is refused with the error; it needs no listener.
      const acquire = async () => (await pool.connect()).on('error', ignoreEndedSession);
      let client = await acquire();
      let inTransaction = false;
      const query = async (text: string, parameters: readonly unknown[]) => {
        if (TRANSACTION_OPENS.test(text)) inTransaction = true;
        else if (TRANSACTION_ENDS.test(text)) inTransaction = false;
        try {
          return await client.query(text, parameters as unknown[]);
        } catch (error) {
          if (inTransaction || (error as { code?: string })?.code !== SESSION_ENDED || !READ_ONLY.test(text))
            throw error;
          // The ended connection leaves the pool (released with its error), and a new one takes
          // its place until Kysely releases it: on a pool of one, the read would wait for itself.
          client.release(error as Error);
          client = await acquire();
          return client.query(text, parameters as unknown[]);
        }
      };
      const release = () => {
        client.removeListener('error', ignoreEndedSession);
        client.release();
      };
      return { query, release } as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

function runSqlOnce<R>(db: Db, text: string, parameters: unknown[]): Promise<QueryResult<R>> {
  const target = pools.get(db);
  if (!target) return db.executeQuery<R>(CompiledQuery.raw(text, parameters));
  const name = target.unprepared === undefined ? statementName(text) : undefined;
  const unnamed = () => target.pool.query(text, parameters).then(asQueryResult<R>);
  if (name === undefined) return unnamed();
  // pg-pool answers a submitted query with a promise of its result, as it does a config
  // (its typings say it hands the query back, as a client does).
  const run = target.pool.query(
    new PreparedRun(name, text, parameters),
  ) as unknown as Promise<pg.QueryResult>;
  return run.then(asQueryResult<R>, (error: { code?: string }) => {
    const lost = error.code === undefined ? undefined : SESSION_LOST_ITS_STATEMENTS[error.code];
    if (lost) {
      if (target.unprepared === undefined) {
        target.unprepared = lost;
        target.onUnprepared?.(lost);
      }
    } else if (error.code !== PLAN_CHANGED_RESULT) {
      throw error;
    }
    return unnamed();
  });
}

/** What pg's `Result` holds of an answer's columns once their description has come (pg/lib/result.js). */
interface ResultColumns {
  fields: pg.FieldDef[];
  _parsers: unknown[];
  _prebuiltEmptyResultObject: object;
}

/** The parts of pg's `Query` that {@link PreparedRun} reads and sets (pg/lib/query.js). */
interface QueryInternals {
  _result: ResultColumns;
  _accumulateRows: boolean;
}

/** The columns each prepared statement answered last, as pg's `Result.addFields` laid them out. */
const columnsByStatement = new Map<string, ResultColumns>();

function sameColumns(kept: pg.FieldDef[], described: pg.FieldDef[]): boolean {
  if (kept.length !== described.length) return false;
  for (let i = 0; i < kept.length; i++) {
    const a = kept[i]!;
    const b = described[i]!;
    if (a.name !== b.name || a.dataTypeID !== b.dataTypeID || a.format !== b.format) return false;
  }
  return true;
}

/**
 * A run of a named prepared statement, as pg's own `Query` makes it, with two costs left out
 * (bench/README.md, "Measured on 2026-12-05, 03:15–"): ~15 µs a statement where pg lays out
 * the columns of every answer (a type parser each, and an empty row built property by property
 * on a prototype-less object, then copied), ~6 µs where it copies the query's config object
 * property by property. The text goes to `Query` as a string, which it does not copy; and a
 * statement whose description names the same columns, types and formats as its last answer
 * takes that answer's layout. Any other description (a migration changed the columns) is laid
 * out by pg afresh and kept in its place.
 */
class PreparedRun extends pg.Query {
  constructor(name: string, text: string, values: unknown[]) {
    super(text);
    const run = this as unknown as { name: string; values: unknown[] };
    run.name = name;
    run.values = values;
  }

  handleRowDescription(message: { fields: pg.FieldDef[] }): void {
    const self = this as unknown as QueryInternals & { name: string };
    const kept = columnsByStatement.get(self.name);
    if (kept && sameColumns(kept.fields, message.fields)) {
      // As Query.handleRowDescription does: one statement gives one answer; rows are kept for the callback.
      const result = self._result;
      result.fields = message.fields;
      result._parsers = kept._parsers;
      result._prebuiltEmptyResultObject = kept._prebuiltEmptyResultObject;
      self._accumulateRows = true;
      return;
    }
    (pg.Query.prototype as unknown as { handleRowDescription(m: unknown): void }).handleRowDescription.call(
      this,
      message,
    );
    const { fields, _parsers, _prebuiltEmptyResultObject } = self._result;
    columnsByStatement.set(self.name, { fields, _parsers, _prebuiltEmptyResultObject });
  }
}

function asQueryResult<R>({ command, rowCount, rows }: pg.QueryResult): QueryResult<R> {
  return {
    rows: (rows ?? []) as R[],
    ...(CHANGING.has(command) && { numAffectedRows: BigInt(rowCount ?? 0) }),
  };
}

/**
 * The expression of {@link COMMIT_WITHOUT_FLUSH_WAIT}, for a write inside a larger statement
 * (a data-modifying `with`) to return: its transaction, the statement's own, then commits
 * without the flush wait. Like {@link runWriteWithoutFlushWait}, only outside a transaction.
 */
export const FLUSH_WAIT_OFF = "(select set_config('synchronous_commit', 'off', true))";

/**
 * Appended to a write that returns nothing else: makes its transaction commit without waiting
 * for the WAL to reach the disk. `set_config(…, true)` lasts until the end of the transaction,
 * here the statement's own, so nothing else on the connection (or, behind a transaction-mode
 * pooler, on the server session it was lent) changes; the subquery runs it once per statement.
 */
const COMMIT_WITHOUT_FLUSH_WAIT = `\n      returning ${FLUSH_WAIT_OFF}`;

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
  if (db.isTransaction) return runSql(db, text, parameters);
  // A kept write text (oidcModels.ts) gets the same whole text each time: a new one would be
  // copied flat and hashed again to find its statement's name.
  let unflushed = unflushedTexts.get(text);
  if (unflushed === undefined) {
    unflushed = text + COMMIT_WITHOUT_FLUSH_WAIT;
    if (unflushedTexts.size < MOST_PREPARED) unflushedTexts.set(text, unflushed);
  }
  return runSql(db, unflushed, parameters);
}

/** Each write text {@link runWriteWithoutFlushWait} ran, with its ending. */
const unflushedTexts = new Map<string, string>();
