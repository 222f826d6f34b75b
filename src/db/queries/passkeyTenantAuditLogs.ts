import type { Insertable, Selectable } from 'kysely';
import type { Db } from '../connect.js';
import type { PasskeyTenantAuditLogsTable } from '../schema.js';
import { deleteOlderThan } from './agedRows.js';

export type PasskeyTenantAuditLogRow = Selectable<PasskeyTenantAuditLogsTable>;
export type NewPasskeyTenantAuditLog = Omit<
  Insertable<PasskeyTenantAuditLogsTable>,
  'id' | 'created_at' | 'updated_at'
>;

/** Hanko's audit log filters (`GET /audit_logs`); text filters match anywhere in the value, as Hanko's LIKE does. */
export interface AuditLogFilter {
  startTime?: Date | undefined;
  endTime?: Date | undefined;
  types?: string[] | undefined;
  actorUserId?: string | undefined;
  sourceIp?: string | undefined;
  /** Matches the source IP or the actor's user id. */
  search?: string | undefined;
}

/** A LIKE pattern that matches `text` anywhere, with LIKE's wildcards taken literally. */
const containing = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function filtered(db: Db, tenantId: string, filter: AuditLogFilter) {
  let query = db.selectFrom('passkey_tenant_audit_logs').where('tenant_id', '=', tenantId);
  if (filter.startTime) query = query.where('created_at', '>', filter.startTime);
  if (filter.endTime) query = query.where('created_at', '<', filter.endTime);
  if (filter.types?.length) query = query.where('type', 'in', filter.types);
  if (filter.actorUserId) query = query.where('actor_user_id', 'like', containing(filter.actorUserId));
  if (filter.sourceIp) query = query.where('meta_source_ip', 'like', containing(filter.sourceIp));
  if (filter.search) {
    const pattern = containing(filter.search);
    query = query.where((eb) =>
      eb.or([eb('meta_source_ip', 'like', pattern), eb('actor_user_id', 'like', pattern)]),
    );
  }
  return query;
}

/** The audit logs of passkey API tenants; every query is scoped by the tenant. */
export const passkeyTenantAuditLogsQueries = {
  async insert(db: Db, entry: NewPasskeyTenantAuditLog): Promise<void> {
    await db.insertInto('passkey_tenant_audit_logs').values(entry).execute();
  },

  /** Deletes every tenant's entries older than `days` ({@link deleteOlderThan}). Returns how many went. */
  deleteOlderThan: (db: Db, days: number, batchSize?: number): Promise<number> =>
    deleteOlderThan(db, 'passkey_tenant_audit_logs', days, batchSize),

  /** One page of the tenant's entries, newest first, and how many match in all. */
  async page(
    db: Db,
    tenantId: string,
    filter: AuditLogFilter,
    page: { page: number; perPage: number },
  ): Promise<{ rows: PasskeyTenantAuditLogRow[]; total: number }> {
    const [rows, count] = await Promise.all([
      filtered(db, tenantId, filter)
        .selectAll()
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(page.perPage)
        .offset((page.page - 1) * page.perPage)
        .execute(),
      filtered(db, tenantId, filter)
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  },
};
