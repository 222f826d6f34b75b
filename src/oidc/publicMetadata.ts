import { createHash } from 'node:crypto';
import type http from 'node:http';
import type Koa from 'koa';

/** The provider's documents that are the same for everyone: discovery and the JWKS. */
export const PUBLIC_METADATA_PATHS = new Set(['/.well-known/openid-configuration', '/jwks']);

/** If-None-Match names `etag` (weak comparison), or is `*`. */
function matches(ifNoneMatch: string, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed === etag || trimmed === `W/${etag}`;
  });
}

interface Rendered {
  body: Buffer;
  type: string;
  vary?: string;
  etag: string;
}

/**
 * Discovery and the JWKS as the provider rendered them once, kept as bytes with a strong
 * ETag (a hash of the bytes, so every instance serving the same document gives the same
 * one) and answered from Sesame's own middleware, without the provider's Koa app and its
 * rebuilding and serialising of the document on every request. A conditional request
 * whose ETag matches gets a 304.
 *
 * The copies belong to one provider instance: when the signing keys change, LiveProvider
 * builds a new instance, and its first request renders (and keeps) fresh bytes. Every other
 * setting that shapes the documents is read at start. Requests with an Origin header (CORS,
 * which the provider answers per origin) and anything but GET and HEAD go to the provider.
 */
export class PublicMetadataCache {
  #byProvider = new WeakMap<object, Map<string, Rendered>>();

  /** Serves `ctx` from the kept bytes; false when the provider has to answer it. */
  serve(ctx: Koa.Context, provider: object, cacheControl: string): boolean {
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || ctx.get('origin')) return false;
    const rendered = this.#byProvider.get(provider)?.get(ctx.path);
    if (!rendered) return false;
    // On the Node response: Koa's ctx.set and ctx.type normalise and look up on every call.
    const res = ctx.res;
    ctx.status = 200;
    res.setHeader('cache-control', cacheControl);
    res.setHeader('etag', rendered.etag);
    if (rendered.vary) res.setHeader('vary', rendered.vary);
    // Not ctx.fresh: it ignores the validator when the request says `Cache-Control: no-cache`
    // (as fetch() does with If-None-Match); that directive is for caches, and an origin
    // server answers a matching validator with 304 all the same (RFC 9110 §13.1.2).
    if (matches(ctx.get('if-none-match'), rendered.etag)) {
      ctx.status = 304;
      return true;
    }
    res.setHeader('content-type', rendered.type);
    ctx.body = rendered.body;
    return true;
  }

  /** Keeps what the provider writes in answer to a plain GET of `path`, for the next requests. */
  capture(ctx: Koa.Context, provider: object): void {
    if (ctx.method !== 'GET' || ctx.get('origin')) return;
    const res: http.ServerResponse = ctx.res;
    const end = res.end;
    const path = ctx.path;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      res.end = end;
      const type = res.getHeader('content-type');
      if (res.statusCode === 200 && (typeof chunk === 'string' || Buffer.isBuffer(chunk)) && type) {
        const body = Buffer.from(chunk);
        const vary = res.getHeader('vary');
        let kept = this.#byProvider.get(provider);
        if (!kept) {
          kept = new Map();
          this.#byProvider.set(provider, kept);
        }
        kept.set(path, {
          body,
          type: String(type),
          ...(vary !== undefined && { vary: String(vary) }),
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        });
      }
      return (end as (...args: unknown[]) => http.ServerResponse).call(res, chunk, ...rest);
    }) as typeof res.end;
  }
}
