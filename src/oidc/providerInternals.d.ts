// oidc-provider's private state of a provider instance (it has no types of its own): the parts
// Sesame reaches are the grant handlers the token endpoint calls by grant type, and the
// response modes that send an authorization's answer back to the app, and the public keys it
// publishes (what introspection verifies Sesame's JWT access tokens with).
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  import type { JSONWebKeySet } from 'jose';
  import type { KoaContextWithOIDC } from 'oidc-provider';

  export default function instance(provider: object): {
    grantTypeHandlers: Map<string, (ctx: KoaContextWithOIDC) => Promise<void>>;
    responseModes: Map<
      string,
      (ctx: KoaContextWithOIDC, redirectUri: string, payload: Record<string, unknown>) => unknown
    >;
    jwks: JSONWebKeySet;
  };
}
