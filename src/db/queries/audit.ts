import { clientAddress } from '../../requestContext.js';
import type { Db } from '../connect.js';
import type { AuditEventRow } from '../schema.js';

/** Who did something: `cli`, `api-key:<id>`, `user:<id>`, `system`. */
export type Actor = string;

export const auditQueries = {
  async record(
    db: Db,
    actor: Actor,
    action: string,
    target: string | null,
    details: Record<string, unknown> = {},
  ) {
    // The client address the request log records for the same request (see TRUST_PROXY).
    const ip = clientAddress();
    await db
      .insertInto('audit_events')
      .values({ actor, action, target, details: JSON.stringify(ip ? { ...details, ip } : details) })
      .execute();
  },

  /**
   * The newest `limit` events, newest first; with `before` (an event id), the newest of those
   * older than it. The id is the order key: it grows with every insert, where created_at may
   * repeat, so a page never skips or repeats an event.
   */
  async recent(db: Db, limit = 100, before?: string): Promise<AuditEventRow[]> {
    return db
      .selectFrom('audit_events')
      .selectAll()
      .$if(before !== undefined, (query) => query.where('id', '<', before!))
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  },
};
