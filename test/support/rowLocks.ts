import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Db } from '../../src/db/connect.js';

/**
 * Holds a row (as `lock` selects it, or whatever lock `lock` takes) in a transaction of its own
 * until the returned function is called: to line up writes that wait for it in a known order
 * (Postgres only).
 */
export async function holdRow(
  db: Db,
  lock: ReturnType<typeof sql> | ((trx: Db) => Promise<unknown>),
): Promise<() => Promise<void>> {
  let release!: () => void;
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const done = db.transaction().execute(async (trx) => {
    await (typeof lock === 'function' ? lock(trx) : lock.execute(trx));
    held();
    await new Promise<void>((resolve) => (release = resolve));
  });
  await holding;
  return async () => {
    release();
    await done;
  };
}

/** Waits until `n` statements on this database wait for a lock (Postgres only). */
export async function untilWaitingForLocks(db: Db, n: number): Promise<void> {
  for (const until = Date.now() + 10_000; ; await sleep(20)) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(db);
    if (rows[0]!.n >= n) return;
    if (Date.now() > until) throw new Error(`expected ${n} statements waiting for a lock, saw ${rows[0]!.n}`);
  }
}

/**
 * Starts `waiter` while `lock` is held, runs `meanwhile` once `waiter` waits for it, then lets
 * go: `waiter` resumes after whatever `meanwhile` committed, and its result is returned
 * (Postgres only).
 */
export async function meanwhileAtLock<T>(
  db: Db,
  lock: Parameters<typeof holdRow>[1],
  waiter: () => Promise<T>,
  meanwhile: () => Promise<unknown>,
): Promise<T> {
  const release = await holdRow(db, lock);
  const waiting = waiter();
  try {
    await untilWaitingForLocks(db, 1);
    await meanwhile();
  } finally {
    await release();
  }
  return waiting;
}
