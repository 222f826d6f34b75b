import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';

/** The scopes the provider knows; each is a person's: their ID token, claims or refresh token. */
export const PERSON_SCOPES = ['openid', 'offline_access', 'email', 'profile', 'groups'] as const;

const personScopes = new Set<string>(PERSON_SCOPES);

/**
 * A client_credentials token is the client's own: no person signed in or consented. The
 * provider grants such a request any scope it knows, so a token could read `openid email
 * profile groups`, with no `sub`, and an API that checks only `scope` would take it for a
 * person's consent. {@link PERSON_SCOPES} asked for are left out of the token, as scopes Sesame
 * does not know are (RFC 6749 §3.3: the answer's `scope` says what was granted), rather than
 * refused: a client that sends `openid` out of habit (Keycloak issues for it) still gets its
 * token. An API's own scopes (resources) pass as before, and a request without `scope` (the
 * usual one) passes one check.
 */
export function leavePersonScopesOutForClients(provider: Provider): void {
  const handlers = providerInternals(provider).grantTypeHandlers;
  const issue = handlers.get('client_credentials');
  if (!issue) return;
  handlers.set('client_credentials', async function withoutPersonScopes(ctx: KoaContextWithOIDC) {
    const params = ctx.oidc.params as { scope?: unknown } | undefined;
    if (params && typeof params.scope === 'string') {
      const kept = params.scope.split(' ').filter((value) => value && !personScopes.has(value));
      params.scope = kept.length ? kept.join(' ') : undefined;
    }
    return issue(ctx);
  });
}
