import type { Db } from '../db/connect.js';
import { type AuditFilter, auditQueries } from '../db/queries/audit.js';
import type { AuditEventRow } from '../db/schema.js';

/** One audit event as admins see it. */
export interface AuditEventView {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

function auditEventView(row: AuditEventRow): AuditEventView {
  return {
    id: String(row.id),
    actor: row.actor,
    action: row.action,
    target: row.target,
    details: row.details,
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** The most recent audit events that match `filter`, newest first. */
export async function recentAuditEvents(
  db: Db,
  limit = 50,
  filter: AuditFilter = {},
): Promise<AuditEventView[]> {
  return (await auditQueries.recent(db, limit, undefined, filter)).map(auditEventView);
}

/** One page of the audit log, and where the next (older) one starts, if there are older events. */
export interface AuditEventsPage {
  events: AuditEventView[];
  /** The id to pass as `before` for the next page; undefined on the last page. */
  older: string | undefined;
}

/**
 * `limit` events that match `filter`, newest first, older than the event `before` when given
 * (keyset paging by id).
 */
export async function auditEventsPage(
  db: Db,
  { limit, before, filter }: { limit: number; before?: string | undefined; filter?: AuditFilter },
): Promise<AuditEventsPage> {
  // One more than shown says whether an older page exists, without counting the table.
  const rows = await auditQueries.recent(db, limit + 1, before, filter);
  const events = rows.slice(0, limit).map(auditEventView);
  return { events, older: rows.length > limit ? events.at(-1)!.id : undefined };
}
