import { createHash } from 'node:crypto';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { isDeviceApproval, keepBrowserSessionEntry } from './deviceFlow.js';
import { saveGrantIf } from './grantSaves.js';
import { mayUseClient } from './groupAccess.js';
import type { GroupCache } from './groupCache.js';

/** What a grant says was allowed; the rest of its payload (ids, times) belongs to that one grant. */
const DECISION_FIELDS = ['openid', 'resources', 'rejected', 'rar'] as const;

type Grant = InstanceType<KoaContextWithOIDC['oidc']['provider']['Grant']>;

/**
 * Adds to `grant` what the request asks for that it does not hold yet: the scopes, and the
 * APIs the request names (RFC 8707) with the scopes of theirs it asks for. Returns whether
 * anything was added (and the grant must be saved).
 */
function grantAllRequested(grant: Grant, ctx: KoaContextWithOIDC): boolean {
  const requested = String(ctx.oidc.params?.scope ?? 'openid')
    .split(' ')
    .filter(Boolean);
  let added = false;
  const held = new Set(String(grant.getOIDCScope() ?? '').split(' '));
  if (requested.some((scope) => !held.has(scope))) {
    grant.addOIDCScope(requested.join(' '));
    added = true;
  }
  for (const [identifier, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
    const scopes = requested.filter((scope) => server.scopes.has(scope));
    const heldThere = grant.resources?.[identifier];
    const heldScopes = new Set(String(heldThere ?? '').split(' '));
    if (heldThere !== undefined && scopes.every((scope) => heldScopes.has(scope))) continue;
    grant.addResourceScope(identifier, scopes.join(' '));
    added = true;
  }
  return added;
}

/**
 * The id of the grant a consent page creates: the same for every submission of that page,
 * so an "Allow" sent twice at once (a double click, each on its own instance) stores one
 * grant twice, and both save the same result, where each stored a grant of its own and the
 * return then found the result changed under it. Made from the interaction's uid and its
 * `cid`, which is random and never leaves the server: a grant id is no credential
 * (storedIds.ts), yet it cannot be read off a URL either. Without a `cid`, the provider's own.
 */
export function consentGrantId(interaction: { uid: string; cid?: string }): string | undefined {
  if (!interaction.cid) return undefined;
  return createHash('sha256').update(`${interaction.cid}\u0000${interaction.uid}`).digest('base64url');
}

/**
 * oidc-provider's `loadExistingGrant`: which grant an authorization request runs under.
 * 1. The grant this browser session already holds for the client (or just consented to).
 * 2. First-party clients (and Sesame's own account pages) get a grant without a consent
 *    page: they are trusted to receive what they ask for. A grant the session holds for one
 *    is extended to what a later request asks for.
 * 3. Consent the person gave this client in another browser: the provider keeps grants
 *    per session, so a new browser would ask again. The newest earlier grant is copied
 *    into this session — a copy, not the same grant, because signing out revokes the
 *    session's grant and must not end the other browser's tokens. Scopes it does not
 *    cover still bring the consent page, which then extends only this copy. Revoking the
 *    app (account page) deletes its grants but its devices', and marks those as outliving
 *    the revoke (CONSENT_REVOKED), so no consent given before it is copied: the app asks again.
 *    The copy is stored only while the grant it copies is live and unmarked, so a sign-in
 *    that read that consent just before the revoke does not keep it either.
 *
 * A grant loaded here or by the consent page (interaction.ts) and extended is stored again
 * only as a change of the stored grant (grantSaves.ts): a revoked grant stays revoked.
 *
 * A device's approval (RFC 8628) never takes the grant the browser session holds, nor copies
 * earlier consent, nor gets a first-party app's grant without asking: it always shows the
 * consent page, and its grant is the one that page makes, which the account page lists as
 * that device's sign-in (deviceFlow.ts). RFC 8628 §5.4: the person who approves may have
 * been sent someone else's code (verification_uri_complete in a message); with a copied
 * consent, one click on the code page of a link signed in that stranger's device.
 */
export function createLoadExistingGrant(
  db: Db,
  groups: GroupCache,
): NonNullable<Configuration['loadExistingGrant']> {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC) {
    const { client, session, provider } = ctx.oidc;
    if (!client || !session) return undefined;
    // Extra client metadata keeps its snake_case name on the Client instance (only recognized metadata is camelCased).
    const firstParty = client.first_party === true;
    const device = isDeviceApproval(ctx);
    if (device) keepBrowserSessionEntry(ctx);
    const grantId =
      ctx.oidc.result?.consent?.grantId || (device ? undefined : session.grantIdFor(client.clientId));
    if (grantId) {
      const grant = await provider.Grant.find(grantId);
      if (grant) {
        // A first-party client asking this session for more than it was granted gets it, as a
        // new browser would: the grant was answered with the consent page (or consent_required
        // under prompt=none) for a client that never shows one. Only while the grant is still
        // stored: revoked since it was read, it stays revoked, and the sign-in goes on as one
        // begun after the revoke would, without it (below: a first-party client's new grant).
        const extended = firstParty && grantAllRequested(grant, ctx);
        if (!extended || (await saveGrantIf(grant, { live: true }))) return grant;
      }
    }
    // A device's approval is asked on the consent page, whose Allow names the grant (above).
    if (device) return undefined;
    const accountId = session.accountId;
    if (!accountId) return undefined;
    // Someone outside the client's allowed groups gets no grant at all; the policy refuses them.
    if (!(await mayUseClient(groups, ctx))) return undefined;
    if (firstParty) {
      const grant = new provider.Grant({ clientId: client.clientId, accountId });
      grantAllRequested(grant, ctx);
      await grant.save();
      return grant;
    }
    const earlier = await oidcModelsQueries.consentToCopy(db, accountId, client.clientId);
    if (!earlier) return undefined;
    const decision = Object.fromEntries(
      DECISION_FIELDS.filter((field) => earlier[field] !== undefined).map((field) => [
        field,
        structuredClone(earlier[field]),
      ]),
    );
    const copy = new provider.Grant({ ...decision, clientId: client.clientId, accountId });
    // Stored only while the consent copied still stands: after a Revoke of the app since it
    // was read there is none, and the policy asks for consent.
    const copied = typeof earlier.jti === 'string' && (await saveGrantIf(copy, { copyOf: earlier.jti }));
    return copied ? copy : undefined;
  };
}
