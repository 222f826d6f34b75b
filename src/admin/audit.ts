import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';

/** One audit event as admins see it. */
export interface AuditEventView {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

/** The most recent audit events, newest first. */
export async function recentAuditEvents(db: Db, limit = 50): Promise<AuditEventView[]> {
  const rows = await auditQueries.recent(db, limit);
  return rows.map((row) => ({
    id: String(row.id),
    actor: row.actor,
    action: row.action,
    target: row.target,
    details: row.details,
    created_at: new Date(row.created_at).toISOString(),
  }));
}
