// oidc-provider's private state of a provider instance (it has no types of its own): the one
// part Sesame reaches is the grant handlers the token endpoint calls by grant type.
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  import type { KoaContextWithOIDC } from 'oidc-provider';

  export default function instance(provider: object): {
    grantTypeHandlers: Map<string, (ctx: KoaContextWithOIDC) => Promise<void>>;
  };
}
