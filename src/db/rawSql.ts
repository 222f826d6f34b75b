import { CompiledQuery, type QueryResult } from 'kysely';
import type { Db } from './connect.js';

/**
 * Runs SQL text with its parameters as written. The statements of every login and token
 * request use it: Kysely's query builder, and even its `sql` templates, build an operation
 * tree and compile it to text on every call (bench/README.md: ~0.5 ms of CPU per login for
 * the four ceremony statements alone); text written once skips that. Parameters are still
 * sent apart from the text, never spliced into it.
 */
export function runSql<R>(db: Db, text: string, parameters: unknown[] = []): Promise<QueryResult<R>> {
  return db.executeQuery<R>(CompiledQuery.raw(text, parameters));
}
