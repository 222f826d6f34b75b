import providerRequests from 'oidc-provider/lib/helpers/als.js';

/** What Sesame knows about the HTTP request a piece of work runs for. */
interface RequestContext {
  /** The client's address as Koa reads it (TRUST_PROXY decides which X-Forwarded-For entry). */
  readonly ip: string;
}

/**
 * Sesame's requests run in oidc-provider's own AsyncLocalStorage, where each of the
 * provider's requests holds its Koa context (whose `ip` is the same address: issuerOrigin.ts
 * hands it on). One storage, not two: on Node 20 every storage in use adds work to each
 * promise made anywhere, and a second one cost ~6 kB of allocations (8 %) per introspection
 * (bench/README.md). The provider reads its storage only to pass it to configuration
 * functions Sesame does not define with a context (token lifetimes are numbers).
 */
/** Runs `work` on behalf of a request from `ip`; {@link clientAddress} reads it anywhere below. */
export function forRequestFrom<T>(ip: string, work: () => T): T {
  return providerRequests.run({ ip } satisfies RequestContext, work);
}

/** The address of the client whose request is being served; undefined outside a request (the CLI). */
export function clientAddress(): string | undefined {
  const ip = (providerRequests.getStore() as Partial<RequestContext> | undefined)?.ip;
  return typeof ip === 'string' ? ip : undefined;
}
