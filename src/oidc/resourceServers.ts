import { errors, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { resourcesQueries } from '../db/queries/resources.js';
import type { RowCaches } from './rowCaches.js';
import { TTL } from './ttl.js';

/**
 * oidc-provider's `getResourceServerInfo` (RFC 8707): a registered API gets RFC 9068 JWT
 * access tokens — `aud` its identifier, signed with Sesame's keys, so the API verifies
 * them with the JWKS alone. Any other resource indicator is refused with invalid_target.
 * A client_credentials token, which no person consents to, goes only to a client the API
 * allows (`machine_clients`, migration 0025), with only the scopes allowed to it; any other
 * client is refused with invalid_target (RFC 8707 §2: a resource the client may not ask for).
 */
export function createGetResourceServerInfo(db: Db, caches: Pick<RowCaches, 'resources'>) {
  return async function getResourceServerInfo(
    ctx: KoaContextWithOIDC,
    identifier: string,
    client: { clientId: string },
  ): Promise<ResourceServer> {
    const row = await caches.resources.find(identifier, async () => {
      if (identifier.includes('\u0000')) return undefined;
      return resourcesQueries.findByIdentifier(db, identifier);
    });
    if (!row) throw new errors.InvalidTarget('the resource is not a registered API');
    let scopes = row.scopes as unknown as string[];
    if (ctx.oidc.params?.grant_type === 'client_credentials') {
      const clients = row.machine_clients ?? {};
      const allowed = Object.hasOwn(clients, client.clientId) ? clients[client.clientId] : undefined;
      if (!allowed) {
        throw new errors.InvalidTarget('this client is not allowed client_credentials tokens for the API');
      }
      scopes = scopes.filter((scope) => allowed.includes(scope));
    }
    return {
      scope: scopes.join(' '),
      audience: row.identifier,
      accessTokenTTL: TTL.AccessToken,
      accessTokenFormat: 'jwt',
    };
  };
}
