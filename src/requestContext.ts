import providerRequests from 'oidc-provider/lib/helpers/als.js';

/** A person's sign-in to Sesame as a request was admitted with it (requireSignIn). */
export interface AdmittedSignIn {
  readonly userId: string;
  /** The uid of the provider session that signed the request in (a sign-out deletes it). */
  readonly sessionUid: string;
  /** When that sign-in proved a passkey (seconds since the epoch), as the provider's session says. */
  readonly loginTs: number | undefined;
}

/** What Sesame knows about the HTTP request a piece of work runs for. */
interface RequestContext {
  /** The client's address as Koa reads it (TRUST_PROXY decides which X-Forwarded-For entry). */
  readonly ip: string;
  /** The sign-in the request was admitted with, on the pages that need one. */
  readonly signIn?: AdmittedSignIn;
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

/** What the request being served runs with; empty outside a request (the CLI). */
const current = () => (providerRequests.getStore() ?? {}) as Partial<RequestContext>;

/**
 * Runs the rest of the request (`work`) as admitted with `signIn`: the request was checked
 * on its head, and a change it makes once its body is in reads {@link admittedSignIn} to
 * check that sign-in still holds (see assertAdminAuthority).
 */
export function onSignIn<T>(signIn: AdmittedSignIn, work: () => T): T {
  const ip = clientAddress();
  return providerRequests.run(
    { ...(ip !== undefined && { ip }), signIn } satisfies Partial<RequestContext>,
    work,
  );
}

/** The address of the client whose request is being served; undefined outside a request (the CLI). */
export function clientAddress(): string | undefined {
  const { ip } = current();
  return typeof ip === 'string' ? ip : undefined;
}

/** The sign-in the request being served was admitted with; undefined outside one (an API key, the CLI). */
export function admittedSignIn(): AdmittedSignIn | undefined {
  return current().signIn;
}
