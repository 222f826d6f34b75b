// oidc-provider's one AsyncLocalStorage (it has no types of its own): each of the provider's
// requests runs in it with the request's Koa context. See src/requestContext.ts.
declare module 'oidc-provider/lib/helpers/als.js' {
  import type { AsyncLocalStorage } from 'node:async_hooks';

  const requests: AsyncLocalStorage<unknown>;
  export default requests;
}
