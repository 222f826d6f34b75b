import type { Transaction } from 'kysely';
import type { Db } from './connect.js';
import type { Database } from './schema.js';

/**
 * Runs `work` in the caller's transaction when `db` is one, else in a new one. A service that
 * writes atomically can so be part of a larger unit: an admin form's single-use token is
 * spent in the transaction that mints the secret, and a failure leaves the form usable.
 */
export function inTransaction<T>(db: Db, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Transaction<Database>) : db.transaction().execute(work);
}
