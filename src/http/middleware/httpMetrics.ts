import type { Context, Next } from 'koa';
import { httpDuration } from '../../metrics.js';
import { providerRouteOf } from '../../oidc/providerPaths.js';

/**
 * The route a request is counted under: the provider endpoint, the template of the Sesame
 * route that answered (`/interaction/:uid/login/verify`), `/static` for assets, else
 * `unmatched`. Never the raw path: each distinct label value is a new time series, and a
 * caller chooses the path.
 */
function routeLabel(ctx: Context): string {
  const provider = providerRouteOf(ctx.path);
  if (provider) return provider;
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string') return matched;
  if (ctx.path.startsWith('/static/')) return '/static';
  return 'unmatched';
}

/** Observes every request's duration in the latency histogram, labelled by {@link routeLabel}. */
export function httpMetrics() {
  return async function timeRequest(ctx: Context, next: Next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      httpDuration.observe(routeLabel(ctx), (performance.now() - started) / 1000);
    }
  };
}
