import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { clientsQueries } from '../db/queries/clients.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { notFound } from '../http/errors.js';
import { ACCOUNT_CLIENT_ID } from '../oidc/accountClient.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';
import { queueAccountLogouts } from './backchannelLogout.js';
import { revokeAccountSignIns, untilAfterRevocation } from './revocation.js';

/** An app the person let sign them in, with what it may see. */
export interface ConnectedApp {
  clientId: string;
  name: string;
  scopes: string[];
  /** When the person first allowed it. */
  since: Date | undefined;
  /** An app the admin trusts (`--first-party`): it asks no consent, so revoking it does not make it ask. */
  firstParty: boolean;
  grantIds: string[];
}

interface GrantPayload {
  clientId?: string;
  iat?: number;
  openid?: { scope?: string };
}

/**
 * The apps holding a grant of this account, one entry per app (a grant is made per browser
 * session, so one app can hold several). Sesame's own account pages are not listed.
 */
export async function listConnectedApps(db: Db, userId: string): Promise<ConnectedApp[]> {
  const byClient = new Map<string, ConnectedApp>();
  for (const grantId of await oidcModelsQueries.grantIdsWhere(db, 'Grant', 'accountId', userId)) {
    const grant = (await oidcModelsQueries.find(db, 'Grant', grantId)) as GrantPayload | undefined;
    const clientId = grant?.clientId;
    if (!clientId || clientId === ACCOUNT_CLIENT_ID) continue;
    let app = byClient.get(clientId);
    if (!app) {
      const client = await clientsQueries.find(db, clientId);
      app = {
        clientId,
        name: client?.name ?? clientId,
        scopes: [],
        since: undefined,
        firstParty: client?.first_party ?? false,
        grantIds: [],
      };
      byClient.set(clientId, app);
    }
    app.grantIds.push(grantId);
    for (const scope of grant.openid?.scope?.split(' ') ?? []) {
      if (scope && !app.scopes.includes(scope)) app.scopes.push(scope);
    }
    const since = grant.iat ? new Date(grant.iat * 1000) : undefined;
    if (since && (!app.since || since < app.since)) app.since = since;
  }
  return [...byClient.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Disconnects an app: its grants of this account go, and with them every code, access token
 * and refresh token issued under them. The app must ask the person again to sign them in
 * (a first-party app asks no consent: it signs them in again as any app of a Sesame session
 * would). An app with a backchannel_logout_uri is told, for each session it signed in from
 * (or by `sub` alone), so that its own session ends too, as the account page promises.
 */
export async function revokeConnectedApp(db: Db, userId: string, clientId: string): Promise<void> {
  const app = (await listConnectedApps(db, userId)).find((a) => a.clientId === clientId);
  if (!app) throw notFound('This app is not connected to your account.').localized('errors.appNotConnected');
  await db.transaction().execute(async (trx) => {
    // Before the grants go: an app no session names is found by its grant.
    await queueAccountLogouts(trx, userId, { grants: true, clientId });
    for (const grantId of app.grantIds) {
      await oidcModelsQueries.revokeByGrantId(trx, grantId);
      await oidcModelsQueries.destroy(trx, 'Grant', grantId);
    }
    await oidcModelsQueries.forgetClientInSessions(trx, userId, clientId);
    await auditQueries.record(trx, `user:${userId}`, 'grant.revoke', userId, { client: clientId });
  });
  wakeBackchannelOutboxes();
}

/**
 * Signs the account out of Sesame in every browser by ending all its provider sessions, and
 * every sign-in still in progress, for good: a request that loaded a session before cannot
 * bring it back (see revokeAccountSignIns). Apps keep the tokens they hold: disconnecting an
 * app is the separate revoke above.
 */
export async function signOutEverywhere(db: Db, userId: string): Promise<number> {
  const { ended, at } = await db.transaction().execute(async (trx) => {
    const at = await revokeAccountSignIns(trx, userId, { tokens: false });
    await queueAccountLogouts(trx, userId, { grants: false });
    const ended = await oidcModelsQueries.destroySessionsOfAccount(trx, userId);
    await auditQueries.record(trx, `user:${userId}`, 'session.end_all', userId, { sessions: ended });
    return { ended, at };
  });
  wakeBackchannelOutboxes();
  await untilAfterRevocation(at);
  return ended;
}
