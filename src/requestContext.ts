import { AsyncLocalStorage } from 'node:async_hooks';

/** What Sesame knows about the HTTP request a piece of work runs for. */
interface RequestContext {
  /** The client's address as Koa reads it (TRUST_PROXY decides which X-Forwarded-For entry). */
  readonly ip: string;
}

const current = new AsyncLocalStorage<RequestContext>();

/** Runs `work` on behalf of a request from `ip`; {@link clientAddress} reads it anywhere below. */
export function forRequestFrom<T>(ip: string, work: () => T): T {
  return current.run({ ip }, work);
}

/** The address of the client whose request is being served; undefined outside a request (the CLI). */
export function clientAddress(): string | undefined {
  return current.getStore()?.ip;
}
