import type http from 'node:http';
import type Koa from 'koa';
import type { Logger } from '../logger.js';
import { httpDuration } from '../metrics.js';
import {
  PROVIDER_API_PATHS,
  type ProviderRequestRefusal,
  providerRequestTooLarge,
} from '../oidc/providerPaths.js';
import { requestLine } from './middleware/requestLog.js';

/** What a request for one of the provider's API endpoints gets from Sesame before the provider answers it. */
export interface ProviderApiFrontDoor {
  /** The provider's request handler (LiveProvider.handle). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> | void;
  log: Logger;
  /** issuerHeaderPinner (issuerOrigin.ts). */
  pinHeaders(headers: http.IncomingHttpHeaders, ip: string): void;
  /** securityHeaderSetter (securityHeaders.ts). */
  setSecurityHeaders(res: http.ServerResponse): void;
}

/** A request target's path: what Koa's `ctx.path` is for the origin-form targets clients send. */
function pathOf(url: string | undefined): string {
  if (!url) return '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The server's request listener: the provider's API endpoints (PROVIDER_API_PATHS: token,
 * userinfo, introspection, revocation) go to the provider
 * with only what Sesame's middleware stack does for them, everything else to `koa`.
 *
 * Through the stack, each of those requests built a Koa context of Sesame's and ran ten
 * middleware before the provider built its own: 8–9 kB of the ~62 kB an introspection
 * allocated and of the ~76 kB of a client_credentials token. What the stack did for them,
 * done here without it, takes ~5 kB of that back: each allocates ~3.5 kB less
 * (bench/README.md, "Measured on 2026-12-05, 09:15–10:10"). For these paths the stack did
 * what is done here, in its order: the latency histogram and the request log line; the
 * client address as Koa reads it under TRUST_PROXY, with Host and the forwarded headers
 * pinned to the issuer's (issuerOrigin.ts); the security headers. The rest of the stack does nothing for them: they render no page (no
 * language or brand), are not counted by the per-IP limit, and the provider answers its own
 * errors. Nor is the address kept for the request (requestContext.ts) as the stack keeps it:
 * the provider runs each of its routes in its own storage, with its context, whose address is
 * the one pinned here. A path is matched exactly, as the stack matches it (`/TOKEN` and
 * `/token/` are Sesame's 404s).
 */
export function frontDoor(koa: Koa, api: ProviderApiFrontDoor): http.RequestListener {
  const toKoa = koa.callback();
  const line = requestLine(api.log);

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, route: string) {
    const started = performance.now();
    const url = req.url;
    const ip = clientAddress(koa, req);
    api.pinHeaders(req.headers, ip);
    api.setSecurityHeaders(res);
    try {
      const tooLarge = providerRequestTooLarge(req, route);
      if (tooLarge) refuseLargeBody(res, tooLarge);
      else await api.handle(req, res);
    } catch (error) {
      // The provider's own Koa answers what its handlers throw; this is what escaped it.
      api.log.error('request failed', {
        method: req.method,
        path: route,
        error: String((error as Error)?.stack ?? error),
      });
      if (res.headersSent) {
        res.destroy();
      } else {
        sendError(res, 500, 'server_error', 'Something went wrong on our side');
      }
    } finally {
      httpDuration.observe(route, (performance.now() - started) / 1000);
      line?.(req.method, url, res.statusCode, started, ip);
    }
  }

  return function listen(req, res) {
    if (req.url?.[0] !== '/' && req.url !== '*' && !toOriginForm(req)) {
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('Bad request target');
      return;
    }
    const path = pathOf(req.url);
    if (PROVIDER_API_PATHS.has(path)) void answer(req, res, path);
    else void toKoa(req, res);
  };
}

/**
 * Rewrites an absolute-form request target (`GET http://host/path`, RFC 9112 §3.2.2) to
 * origin-form (`/path?query`), as a proxy would have sent it; false when it is not an http(s)
 * URL. The provider builds every URL it answers with (discovery's endpoints, the device
 * page's form) from Koa's `ctx.href`, which takes an absolute target's own origin: one such
 * request at the right moment put `http://evil.example/token` into the discovery document
 * kept for everyone. Sesame's origin is the issuer's, whatever the target names.
 */
function toOriginForm(req: http.IncomingMessage): boolean {
  const url = URL.parse(req.url ?? '');
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') return false;
  req.url = `${url.pathname}${url.search}`;
  return true;
}

/** An error in the provider's JSON shape (`error`, `error_description`), answered here instead of by it. */
function sendError(res: http.ServerResponse, status: number, error: string, description: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ error, error_description: description }));
}

/**
 * The refusal in the provider's JSON error shape, before the body is read. Node reads and
 * drops a body of a stated length once the answer is sent (as for any answer that leaves it
 * unread), and the connection stays open; one without a length (411) could go on for ever,
 * so that connection is closed.
 */
export function refuseLargeBody(res: http.ServerResponse, refusal: ProviderRequestRefusal): void {
  if (refusal.status === 411) res.setHeader('Connection', 'close');
  sendError(res, refusal.status, 'invalid_request', refusal.description);
}

/**
 * The client's address exactly as `koa` reads it for a request (`ctx.ip`: the X-Forwarded-For
 * entry that TRUST_PROXY's hops wrote, else the socket's), with Koa's own request getters.
 */
export function clientAddress(koa: Koa, req: http.IncomingMessage): string {
  const request = Object.create(koa.request) as { app: Koa; req: http.IncomingMessage; ip: string };
  request.app = koa;
  request.req = req;
  return request.ip;
}
