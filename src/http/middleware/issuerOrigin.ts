import type { IncomingHttpHeaders } from 'node:http';
import type { Context, Next } from 'koa';
import type { Config } from '../../config.js';

/**
 * Every URL Sesame and oidc-provider build (discovery's endpoints, redirects, the issuer
 * the provider compares) comes from ISSUER. Host and X-Forwarded-Host/-Proto are written
 * by whoever sends the request: believed, `Host: evil.example` put
 * `http://evil.example/token` into the discovery document that caches and clients keep.
 *
 * The request's forwarded headers are rewritten to Sesame's own view before any handler
 * or the provider reads them: the issuer's host and protocol, and the client address Koa
 * already read under TRUST_PROXY (so the provider, which trusts these headers, sees the
 * same address as the rate limit and the logs).
 */
export function issuerOrigin(config: Config) {
  const pin = issuerHeaderPinner(config);
  const secure = config.secureCookies;
  return function pinIssuerOrigin(ctx: Context, next: Next) {
    // The Host the browser asked, kept for the CSRF check's message (csrf.ts) only.
    ctx.state.requestedHost = ctx.get('host');
    // Read (and cached by Koa) before the header it comes from is replaced.
    pin(ctx.req.headers, ctx.ip);
    // The scheme is the issuer's too: Koa's cookie jar takes it from the socket (or, under
    // TRUST_PROXY, X-Forwarded-Proto), and refuses to set a Secure cookie on plain http. An
    // https issuer behind a proxy it does not trust answered 500 on every page with a form.
    if (secure) ctx.cookies.secure = true;
    return next();
  };
}

/** Rewrites a request's Host and forwarded headers to the issuer's, with `ip` as the client address (see {@link issuerOrigin}). */
export function issuerHeaderPinner(config: Pick<Config, 'issuer'>) {
  const { host, protocol } = new URL(config.issuer);
  const proto = protocol.slice(0, -1);
  return function pinHeaders(headers: IncomingHttpHeaders, ip: string) {
    headers.host = host;
    headers['x-forwarded-host'] = host;
    headers['x-forwarded-proto'] = proto;
    headers['x-forwarded-for'] = ip;
  };
}
