import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { providerRouteOf } from './providerPaths.js';

type Step = (ctx: Context, next: Next) => Promise<void>;

const stepsByProvider = new WeakMap<Provider, Map<string, Step>>();

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
    const byRoute = new Map<string, Step>();
    provider.use(function aroundProviderRoutes(ctx, next) {
      const around = byRoute.get(`${ctx.method} ${providerRouteOf(ctx.path)}`);
      return around ? around(ctx, next) : next();
    });
    stepsByProvider.set(provider, byRoute);
    steps = byRoute;
  }
  const key = `${method} ${route}`;
  if (steps.has(key)) throw new Error(`a step around ${key} is there already`);
  steps.set(key, step);
}
