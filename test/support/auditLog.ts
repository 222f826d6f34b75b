import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../src/db/connect.js';

/**
 * Waits until the audit log records `action` on `target`: the transaction that made the change
 * committed. Asks every 2 ms, for tests that must go on within the same second.
 */
export async function untilAudited(db: Db, action: string, target: string): Promise<void> {
  for (const until = Date.now() + 10_000; ; await sleep(2)) {
    const row = await db
      .selectFrom('audit_events')
      .select('id')
      .where('action', '=', action)
      .where('target', '=', target)
      .executeTakeFirst();
    if (row) return;
    if (Date.now() > until) throw new Error(`expected the audit log to record ${action} on ${target}`);
  }
}
