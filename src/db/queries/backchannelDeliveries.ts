import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { APPROVED_ON_DEVICE } from './oidcModels.js';
import { claimDueRows, deleteDoneRowsBefore } from './outboxRows.js';

/** One logout token to post to one app: where and for whom (each attempt signs its own token). */
export interface NewDelivery {
  clientId: string;
  uri: string;
  sub: string;
  sid: string | null;
}

/** A delivery claimed for an attempt; `attempts` already counts this one. */
export interface ClaimedDelivery {
  id: string;
  client_id: string;
  uri: string;
  sub: string;
  sid: string | null;
  attempts: number;
  created_at: Date;
}

/** An app to tell that a person signed out: its URI, and the session's sid where it is known. */
export interface LogoutTarget {
  client_id: string;
  uri: string;
  sid: string | null;
}

export const backchannelDeliveriesQueries = {
  async enqueue(db: Db, deliveries: readonly NewDelivery[]): Promise<void> {
    if (!deliveries.length) return;
    await db
      .insertInto('backchannel_deliveries')
      .values(
        deliveries.map((d) => ({
          client_id: d.clientId,
          uri: d.uri,
          sub: d.sub,
          sid: d.sid,
        })),
      )
      .execute();
  },

  /**
   * The apps with a backchannel_logout_uri that an account's browser sessions signed in to,
   * one per (app, sid) from the sessions' `authorizations`. With `grants`, also every app
   * the account granted access but no session names with a sid, and every app it approved a
   * device for (RFC 8628: the device's sign-in at the app is known by `sub` alone, a session's
   * sid does not end it): those get a logout token with `sub` only (Back-Channel Logout 1.0
   * §2.4 allows either). With `clientId`, only that app.
   */
  async logoutTargetsOfAccount(
    db: Db,
    accountId: string,
    grants: boolean,
    clientId: string | null = null,
  ): Promise<LogoutTarget[]> {
    const { rows } = await sql<LogoutTarget>`
      with session_apps as (
        select a.key as client_id, a.value->>'sid' as sid
        from oidc_models s
        cross join lateral jsonb_each(coalesce(s.payload->'authorizations', '{}'::jsonb)) a
        where s.model = 'Session' and s.payload->>'accountId' = ${accountId}
      ), grant_apps as (
        select g.payload->>'clientId' as client_id, null::text as sid
        from oidc_models g
        where ${grants}::boolean and g.model = 'Grant' and g.payload->>'accountId' = ${accountId}
          and (g.payload ? ${APPROVED_ON_DEVICE}::text or not exists (
            select 1 from session_apps sa where sa.client_id = g.payload->>'clientId' and sa.sid is not null))
      )
      select distinct c.client_id, c.backchannel_logout_uri as uri, apps.sid
      from (select * from session_apps union select * from grant_apps) apps
      join clients c on c.client_id = apps.client_id
      where c.backchannel_logout_uri is not null
        and (${clientId}::text is null or c.client_id = ${clientId}::text)`.execute(db);
    return rows;
  },

  /** The apps among `clientIds` with a backchannel_logout_uri, with it. */
  async logoutUrisOf(db: Db, clientIds: readonly string[]): Promise<{ client_id: string; uri: string }[]> {
    if (!clientIds.length) return [];
    const rows = await db
      .selectFrom('clients')
      .select(['client_id', 'backchannel_logout_uri'])
      .where('client_id', 'in', [...clientIds])
      .where('backchannel_logout_uri', 'is not', null)
      .orderBy('client_id')
      .execute();
    return rows.map((r) => ({ client_id: r.client_id, uri: r.backchannel_logout_uri! }));
  },

  /** Claims up to `limit` due rows for this instance (see claimDueRows: SKIP LOCKED and a lease). */
  claimDue(db: Db, limit: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
    return claimDueRows<ClaimedDelivery>(
      db,
      'backchannel_deliveries',
      ['id', 'client_id', 'uri', 'sub', 'sid', 'attempts', 'created_at'],
      limit,
      leaseSeconds,
    );
  },

  async markDelivered(db: Db, id: string): Promise<void> {
    await db
      .updateTable('backchannel_deliveries')
      .set({ delivered_at: sql`now()`, next_attempt_at: null, last_error: null })
      .where('id', '=', id)
      .execute();
  },

  /** Records a failed attempt; `retryAt` null gives the delivery up (the row stays, with the error). */
  async markFailed(db: Db, id: string, error: string, retryAt: Date | null): Promise<void> {
    await db
      .updateTable('backchannel_deliveries')
      .set({ last_error: error.slice(0, 1000), next_attempt_at: retryAt })
      .where('id', '=', id)
      .execute();
  },

  /** Every delivery to an app, oldest first. */
  async listForClient(db: Db, clientId: string) {
    return db
      .selectFrom('backchannel_deliveries')
      .selectAll()
      .where('client_id', '=', clientId)
      .orderBy('created_at')
      .execute();
  },

  /** Removes deliveries done (delivered or given up) for longer than `days`. */
  deleteDoneBefore(db: Db, days: number): Promise<number> {
    return deleteDoneRowsBefore(db, 'backchannel_deliveries', days);
  },
};
