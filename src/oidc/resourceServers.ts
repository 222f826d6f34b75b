import { errors, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { resourcesQueries } from '../db/queries/resources.js';
import type { RowCaches } from './rowCaches.js';
import { TTL } from './ttl.js';

/**
 * oidc-provider's `getResourceServerInfo` (RFC 8707): a registered API gets RFC 9068 JWT
 * access tokens — `aud` its identifier, signed with Sesame's keys, so the API verifies
 * them with the JWKS alone. Any other resource indicator is refused with invalid_target.
 */
export function createGetResourceServerInfo(db: Db, caches: Pick<RowCaches, 'resources'>) {
  return async function getResourceServerInfo(
    _ctx: KoaContextWithOIDC,
    identifier: string,
  ): Promise<ResourceServer> {
    const row = await caches.resources.find(identifier, async () => {
      if (identifier.includes('\u0000')) return undefined;
      return resourcesQueries.findByIdentifier(db, identifier);
    });
    if (!row) throw new errors.InvalidTarget('the resource is not a registered API');
    return {
      scope: (row.scopes as unknown as string[]).join(' '),
      audience: row.identifier,
      accessTokenTTL: TTL.AccessToken,
      accessTokenFormat: 'jwt',
    };
  };
}
