import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';

/** The scopes the provider knows; each is a person's: their ID token, claims or refresh token. */
export const PERSON_SCOPES = ['openid', 'offline_access', 'email', 'profile', 'groups'] as const;

const personScopes = new Set<string>(PERSON_SCOPES);

/**
 * A client_credentials token is the client's own: no person signed in or consented. The
 * provider grants such a request any scope it knows, so a token could read `openid email
 * profile groups`, with no `sub`, and an API that checks only `scope` would take it for a
 * person's consent. Asking for one of {@link PERSON_SCOPES} is refused with `invalid_scope`,
 * and nothing is issued; an API's own scopes (resources) pass as before, and a request
 * without `scope` (the usual one) passes one check.
 */
export function refusePersonScopesForClients(provider: Provider): void {
  const handlers = providerInternals(provider).grantTypeHandlers;
  const issue = handlers.get('client_credentials');
  if (!issue) return;
  handlers.set('client_credentials', async function withoutPersonScopes(ctx: KoaContextWithOIDC) {
    const scope = ctx.oidc.params?.scope;
    if (typeof scope === 'string') {
      const asked = scope.split(' ').find((value) => personScopes.has(value));
      if (asked)
        throw new errors.InvalidScope(
          `${asked} is a person's scope, which a client_credentials token (the client's own) cannot carry`,
          asked,
        );
    }
    return issue(ctx);
  });
}
