import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { providerRouteOf } from './providerPaths.js';

type Step = (ctx: Context, next: Next) => Promise<void>;

/** The steps of one provider instance: by method, then by route. */
type Steps = Map<string, Map<string, Step>>;

const stepsByProvider = new WeakMap<Provider, Steps>();

/**
 * Runs `step` around the provider's handling of one route (`method` and the route as
 * providerRouteOf names it: `/auth/:uid`, `/session/end/confirm`, ...). Every step shares one
 * middleware on the provider, which each request passes with one lookup and no promise of its
 * own: with a middleware per step, a token or an introspection would pass through each (a
 * bound function and a promise apiece) for steps that are never about it.
 */
export function aroundProviderRoute(provider: Provider, method: string, route: string, step: Step): void {
  let steps = stepsByProvider.get(provider);
  if (!steps) {
    // Looked up by method, then route: no text made for the lookup, each request.
    const byMethod: Steps = new Map();
    provider.use(function aroundProviderRoutes(ctx, next) {
      const byRoute = byMethod.get(ctx.method);
      const providerRoute = byRoute && providerRouteOf(ctx.path);
      const around = providerRoute === undefined ? undefined : byRoute!.get(providerRoute);
      return around ? around(ctx, next) : next();
    });
    stepsByProvider.set(provider, byMethod);
    steps = byMethod;
  }
  let byRoute = steps.get(method);
  if (!byRoute) {
    byRoute = new Map();
    steps.set(method, byRoute);
  }
  if (byRoute.has(route)) throw new Error(`a step around ${method} ${route} is there already`);
  byRoute.set(route, step);
}
