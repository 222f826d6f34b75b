import type Provider from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { ACCOUNT_CLIENT_ID } from './accountClient.js';
import { storedId } from './storedIds.js';
import { EXPIRED_KEPT_SECONDS } from './ttl.js';

/** Where an expired sign-in sends the person back to: Sesame's account page, or an app's site. */
export type WayBack = { account: true } | { account: false; appName: string; url: string };

// An interaction uid is what oidc-provider makes (nanoid: base64url characters).
const UID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Which app a sign-in that expired (past TTL.Interaction: its page reloaded, or its passkey
 * button pressed, too late) was for, and where its site is, while Sesame still knows: the
 * interaction is kept EXPIRED_KEPT_SECONDS.Interaction past its end. The site is the origin of
 * the redirect URI the app asked with, and only while the app is still registered as a web
 * app with that URI (a native app's loopback or custom-scheme URI is no page to open).
 * Nothing else of the sign-in is read, and nothing of it can be resumed.
 */
export async function wayBackFromExpiredSignIn(
  db: Db,
  provider: Provider,
  uid: string,
): Promise<WayBack | undefined> {
  if (!UID_SHAPE.test(uid)) return undefined;
  const payload = await oidcModelsQueries.findRecentlyExpired(
    db,
    'Interaction',
    'id',
    storedId('Interaction', uid),
    EXPIRED_KEPT_SECONDS.Interaction,
  );
  const params = (payload?.params ?? {}) as { client_id?: unknown; redirect_uri?: unknown };
  const { client_id: clientId, redirect_uri: redirectUri } = params;
  if (typeof clientId !== 'string' || typeof redirectUri !== 'string') return undefined;
  if (clientId === ACCOUNT_CLIENT_ID) return { account: true };
  const client = await provider.Client.find(clientId);
  if (client?.applicationType !== 'web' || !client.redirectUriAllowed(redirectUri)) return undefined;
  const url = URL.parse(redirectUri);
  if (url?.protocol !== 'https:' && url?.protocol !== 'http:') return undefined;
  return { account: false, appName: client.clientName ?? clientId, url: `${url.origin}/` };
}
