import Router, { type RouterMiddleware } from '@koa/router';
import type { Middleware } from 'koa';
import compose from 'koa-compose';

/**
 * How every Sesame router matches paths: exactly as written. @koa/router matches routes
 * case-insensitively and with an optional trailing slash by default, while its `use()`
 * middleware under a prefix matches case-sensitively; `GET /Api/admin/clients` then ran the
 * handler without the API-key check. Sesame's URLs are lower case and have no trailing
 * slash, so any other spelling is a 404.
 */
const MATCH_EXACTLY = { sensitive: true, strict: true } as const;

/**
 * A router whose `guards` (authentication, body parsing, CSRF, rate limits, error
 * rendering: whatever every route of it needs) are the first middleware of each route's
 * own stack, so no route can run without them whatever path matching decides. `use()` is
 * refused: middleware it adds is matched by path separately from the routes, which is how
 * the guards and the routes came to disagree.
 *
 * Routes are registered under `prefix` here rather than by @koa/router's own prefix, which
 * in strict mode turns a route `/` into `prefix/`: `/admin` and `/link/:token` stay as they are.
 */
export function sesameRouter(options: { prefix?: string } = {}, ...guards: RouterMiddleware[]): Router {
  const prefix = options.prefix ?? '';
  const router = new Router(MATCH_EXACTLY);
  const register = router.register.bind(router);
  const under = (path: string) => (prefix && path === '/' ? prefix : `${prefix}${path}`);
  router.register = (path, methods, middleware, additionalOptions) =>
    register(
      typeof path === 'string' ? under(path) : Array.isArray(path) ? path.map(under) : path,
      methods,
      [...guards, ...(Array.isArray(middleware) ? middleware : [middleware])],
      additionalOptions,
    );
  router.use = () => {
    throw new Error('Give middleware every route needs to sesameRouter(), or to the route itself');
  };
  return router;
}

/**
 * The routers as one middleware: each router's routes, then its `allowedMethods()` (405 with
 * `Allow`, OPTIONS), in the order given. A request goes only through the routers with a route
 * for its path, in that order: run one after another, every router matched the path against
 * all its routes and added two steps, each a promise, to every request answered by a later
 * one (the login page passed a dozen). The answer is the same: a router without a route for
 * the path answers nothing, and a 405 or an OPTIONS answer names the methods of every route
 * of the path. A path no router knows goes through all of them, as before, so a method none
 * implements is still a 501.
 */
export function routersByPath(routers: readonly Router[]): Middleware {
  const stacks = routers.map((router) => ({
    router,
    stack: [router.routes(), router.allowedMethods()] as Middleware[],
  }));
  const throughEvery = compose(stacks.flatMap(({ stack }) => stack));
  return function routeByPath(ctx, next) {
    const matching = stacks.filter(({ router }) => router.match(ctx.path, ctx.method).path.length > 0);
    if (matching.length === 0) return throughEvery(ctx, next);
    return compose(matching.flatMap(({ stack }) => stack))(ctx, next);
  };
}
