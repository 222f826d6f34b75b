import { clientAddress } from '../../requestContext.js';
import type { Db } from '../connect.js';
import type { AuditEventRow } from '../schema.js';
import { deleteOlderThan } from './agedRows.js';

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
   * older than it; with a `filter`, only the events that match all it names. The id is the
   * order key: it grows with every insert, where created_at may repeat, so a page never skips
   * or repeats an event.
   */
  async recent(db: Db, limit = 100, before?: string, filter: AuditFilter = {}): Promise<AuditEventRow[]> {
    const { action, actor, target } = filter;
    return (
      db
        .selectFrom('audit_events')
        .selectAll()
        .$if(before !== undefined, (query) => query.where('id', '<', before!))
        // An action ending in `.` names all the actions it starts (`passkey.`); LIKE's wildcards in it match themselves.
        .$if(action?.endsWith('.') === true, (query) =>
          query.where('action', 'like', `${action!.replace(/[\\%_]/g, '\\$&')}%`),
        )
        .$if(action !== undefined && !action.endsWith('.'), (query) => query.where('action', '=', action!))
        .$if(actor !== undefined, (query) => query.where('actor', '=', actor!))
        .$if(target !== undefined, (query) => query.where('target', '=', target!))
        .orderBy('id', 'desc')
        .limit(limit)
        .execute()
    );
  },

  /** Deletes the events older than `days` (AUDIT_LOG_DAYS; {@link deleteOlderThan}). Returns how many went. */
  deleteOlderThan: (db: Db, days: number, batchSize?: number): Promise<number> =>
    deleteOlderThan(db, 'audit_events', days, batchSize),
};

/**
 * Which events to show: exact values, except an action ending in `.`, a prefix. An exact
 * value reads an index on (column, id) (migration 0037); a prefix reads the log newest first
 * until the page is full.
 */
export interface AuditFilter {
  action?: string | undefined;
  actor?: string | undefined;
  target?: string | undefined;
}
