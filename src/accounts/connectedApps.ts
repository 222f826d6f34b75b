import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { clientsQueries } from '../db/queries/clients.js';
import { APPROVED_ON_DEVICE, oidcModelsQueries } from '../db/queries/oidcModels.js';
import { usersQueries } from '../db/queries/users.js';
import { notFound } from '../http/errors.js';
import { ACCOUNT_CLIENT_ID } from '../oidc/accountClient.js';
import { wakeBackchannelOutboxes } from '../oidc/backchannelOutbox.js';
import { queueAccountLogouts, queueSubjectLogouts } from './backchannelLogout.js';
import { endEverySignInOf, revokeGrants, untilAfterRevocation } from './revocation.js';
import { signInEnded } from './signInEnded.js';

/**
 * An app the person let sign them in, with what it may see: its sign-ins in browsers, or one
 * device's (RFC 8628), which is listed, and revoked, on its own.
 */
export interface ConnectedApp {
  clientId: string;
  name: string;
  scopes: string[];
  /** When the person first allowed it; a device's entry: when they approved that device. */
  since: Date | undefined;
  /** An app the admin trusts (`--first-party`): it asks no consent, so revoking it does not make it ask. */
  firstParty: boolean;
  grantIds: string[];
  /** A device's sign-in (its one grant), not the app's sign-ins in browsers. */
  device: boolean;
}

interface GrantPayload {
  clientId?: string;
  iat?: number;
  openid?: { scope?: string };
  [APPROVED_ON_DEVICE]?: number;
}

/**
 * The apps holding a grant of this account: one entry per app for its sign-ins in browsers
 * (a grant is made per browser session, so one app can hold several), and one per device the
 * person approved a code for (a grant each), after the app's browser entry, oldest first.
 * Sesame's own account pages are not listed.
 */
export async function listConnectedApps(db: Db, userId: string): Promise<ConnectedApp[]> {
  const browsers = new Map<string, ConnectedApp>();
  const devices: ConnectedApp[] = [];
  const clients = new Map<string, Awaited<ReturnType<typeof clientsQueries.find>>>();
  for (const grantId of await oidcModelsQueries.grantIdsWhere(db, 'Grant', 'accountId', userId)) {
    const grant = (await oidcModelsQueries.find(db, 'Grant', grantId)) as GrantPayload | undefined;
    const clientId = grant?.clientId;
    if (!clientId || clientId === ACCOUNT_CLIENT_ID) continue;
    if (!clients.has(clientId)) clients.set(clientId, await clientsQueries.find(db, clientId));
    const client = clients.get(clientId);
    const approvedOnDevice = grant[APPROVED_ON_DEVICE];
    const device = typeof approvedOnDevice === 'number';
    let app = device ? undefined : browsers.get(clientId);
    if (!app) {
      app = {
        clientId,
        name: client?.name ?? clientId,
        scopes: [],
        since: undefined,
        firstParty: client?.first_party ?? false,
        grantIds: [],
        device,
      };
      if (device) devices.push(app);
      else browsers.set(clientId, app);
    }
    app.grantIds.push(grantId);
    for (const scope of grant.openid?.scope?.split(' ') ?? []) {
      if (scope && !app.scopes.includes(scope)) app.scopes.push(scope);
    }
    const since = device ? approvedOnDevice : grant.iat;
    const at = since ? new Date(since * 1000) : undefined;
    if (at && (!app.since || at < app.since)) app.since = at;
  }
  const time = (app: ConnectedApp) => app.since?.getTime() ?? 0;
  return [...browsers.values(), ...devices].sort(
    (a, b) =>
      a.name.localeCompare(b.name) ||
      a.clientId.localeCompare(b.clientId) ||
      Number(a.device) - Number(b.device) ||
      time(a) - time(b),
  );
}

/**
 * Disconnects an app's sign-ins in browsers: their grants of this account go, every one stored
 * when its transaction runs, and with them every code, access token and refresh token issued
 * under them. The app must ask the person
 * again to sign them in (a first-party app asks no consent: it signs them in again as any app
 * of a Sesame session would). An app with a backchannel_logout_uri is told, for each session
 * it signed in from (or by `sub` alone), so that its own session ends too, as the account
 * page promises. Devices the person approved a code for stay signed in: each is its own entry
 * on the account page ({@link revokeDeviceSignIn}); while one is, the app is told of the
 * browser sessions only, as a logout token with `sub` alone would end the device's sign-in
 * at the app too. Their grants are marked as outliving the revoke (CONSENT_REVOKED): the
 * consent the person gave on a device is not copied into the app's next sign-in, in a
 * browser or on another device, which asks for it again.
 */
export async function revokeConnectedApp(db: Db, userId: string, clientId: string): Promise<void> {
  const notConnected = () =>
    notFound('This app is not connected to your account.').localized('errors.appNotConnected');
  if (clientId === ACCOUNT_CLIENT_ID) throw notConnected();
  await db.transaction().execute(async (trx) => {
    // The grants are found here, locked, not listed before: one a sign-in stored meanwhile
    // (a copy of the consent, a first-party app's new grant) goes with the others. Twice: the
    // first waits for a copy under way (it holds the grant it copies), and sees only the rows
    // there when it began; the second sees and locks the copy too, so a device approval cannot
    // mark it as its own before it goes.
    await oidcModelsQueries.lockGrantsOf(trx, userId, clientId);
    const grants = await oidcModelsQueries.lockGrantsOf(trx, userId, clientId);
    if (!grants.some((grant) => !grant.device)) throw notConnected();
    const devicesStay = grants.some((grant) => grant.device);
    // Before the grants go: an app no session names is found by its grant.
    await queueAccountLogouts(trx, userId, { grants: !devicesStay, clientId });
    for (const grantId of await oidcModelsQueries.destroyBrowserGrantsOf(trx, userId, clientId)) {
      await oidcModelsQueries.revokeByGrantId(trx, grantId);
    }
    // Every live grant left is a device's.
    await oidcModelsQueries.markConsentRevoked(trx, userId, clientId, new Date());
    await oidcModelsQueries.forgetClientInSessions(trx, userId, clientId);
    await auditQueries.record(trx, `user:${userId}`, 'grant.revoke', userId, { client: clientId });
  });
  wakeBackchannelOutboxes();
}

/**
 * Signs one device out of an app (RFC 8628): the grant the person approved its code under
 * goes, with every token issued under it; the app's sign-ins in browsers, and other devices,
 * stay. When it was the app's last grant of the account, an app with a
 * backchannel_logout_uri is told by `sub` alone (the device's tokens name no session);
 * otherwise it is not told, as that would end the person's other sign-ins at the app too,
 * and the device learns it when its tokens are refused.
 */
export async function revokeDeviceSignIn(
  db: Db,
  userId: string,
  clientId: string,
  grantId: string,
): Promise<void> {
  const apps = (await listConnectedApps(db, userId)).filter((a) => a.clientId === clientId);
  const device = apps.find((a) => a.device && a.grantIds[0] === grantId);
  if (!device)
    throw notFound('This device is not signed in to your account.').localized('errors.deviceNotSignedIn');
  await db.transaction().execute(async (trx) => {
    // By `sub` alone: a browser session that still names the app (its grant gone, as the app
    // revoked its refresh token) is not the device's, and must not be ended by its `sid`.
    if (apps.length === 1) await queueSubjectLogouts(trx, userId, [clientId]);
    await revokeGrants(trx, device.grantIds);
    await auditQueries.record(trx, `user:${userId}`, 'grant.revoke', userId, {
      client: clientId,
      device: true,
    });
  });
  wakeBackchannelOutboxes();
}

/**
 * Signs the account out of Sesame in every browser by ending all its provider sessions, and
 * every sign-in still in progress, for good, with the devices the person approved a code for
 * (RFC 8628) and every step-up: see {@link endEverySignInOf}. Apps keep the tokens they were
 * given in browsers: disconnecting an app is the separate revoke above.
 *
 * Asked from a browser's sign-in (`from`, its login time), it does nothing when that sign-in
 * was ended meanwhile (by another sign-out everywhere sent at once, say): the account page
 * never refuses it, and a burst sent from one sign-in ends it once.
 * @returns the sessions it ended (0 when there was nothing to do).
 */
export async function signOutEverywhere(
  db: Db,
  userId: string,
  from?: { loginTs: number | undefined },
): Promise<number> {
  const done = await db.transaction().execute(async (trx) => {
    if (from && signInEnded(await usersQueries.findById(trx, userId, 'update'), from)) return undefined;
    const ended = await endEverySignInOf(trx, userId, { tokens: false });
    await auditQueries.record(trx, `user:${userId}`, 'session.end_all', userId, {
      sessions: ended.removed,
      devices: ended.devices,
    });
    return ended;
  });
  if (!done) return 0;
  wakeBackchannelOutboxes();
  await untilAfterRevocation(done.at);
  return done.removed;
}
