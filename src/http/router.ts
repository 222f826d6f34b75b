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
 * implements is still a 501. A router is matched against a path only when one of its routes
 * starts with the path's first segment, or may ({@link firstSegmentsOf}); the stack of each
 * set of matching routers is composed once.
 */
export function routersByPath(routers: readonly Router[]): Middleware {
  const stacks = routers.map((router) => ({
    router,
    stack: [router.routes(), router.allowedMethods()] as Middleware[],
    firstSegments: { of: -1, segments: null as ReadonlySet<string> | null },
  }));
  const throughEvery = compose(stacks.flatMap(({ stack }) => stack));
  // The stack of each set of matching routers (one bit per router), composed at its first
  // request: each request used to compose its own (an array of every step, and a closure).
  if (stacks.length > 30) throw new Error('at most 30 routers');
  const composed = new Map<number, Middleware>();
  return function routeByPath(ctx, next) {
    const first = firstSegmentOf(ctx.path);
    let matching = 0;
    for (let i = 0; i < stacks.length; i++) {
      const { router, firstSegments } = stacks[i]!;
      // Read again if routes were added since.
      if (firstSegments.of !== router.stack.length) {
        firstSegments.segments = firstSegmentsOf(router);
        firstSegments.of = router.stack.length;
      }
      if (firstSegments.segments && !firstSegments.segments.has(first)) continue;
      if (router.match(ctx.path, ctx.method).path.length > 0) matching |= 1 << i;
    }
    if (matching === 0) return throughEvery(ctx, next);
    let stack = composed.get(matching);
    if (!stack) {
      stack = compose(stacks.filter((_, i) => matching & (1 << i)).flatMap(({ stack }) => stack));
      composed.set(matching, stack);
    }
    return stack(ctx, next);
  };
}

/** A path's first segment: `interaction` of `/interaction/abc`, `` of `/`. */
function firstSegmentOf(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

/** What in a route's path is not plain text to path-to-regexp: a parameter, a wildcard, an optional part, an escape. */
const PATTERN_CHARACTERS = /[:*{}()?+[\]\\]/;

/**
 * The first segment of every path a router's routes match, spelled exactly (every Sesame
 * router matches exactly: MATCH_EXACTLY), so a request whose path starts otherwise need not
 * be matched against each of them (a regular expression per route, ~155 of them for a login
 * page: bench/README.md, "2026-12-07, 14:20–16:00"); null when a route's first segment is a
 * pattern, or a middleware of the router's matches more than its path: every path is then
 * matched against it.
 */
function firstSegmentsOf(router: Router): ReadonlySet<string> | null {
  if (!router.opts.sensitive) return null;
  const segments = new Set<string>();
  for (const layer of router.stack) {
    if (typeof layer.path !== 'string' || layer.methods.length === 0 || !layer.path.startsWith('/'))
      return null;
    const first = firstSegmentOf(layer.path);
    if (PATTERN_CHARACTERS.test(first)) return null;
    segments.add(first);
  }
  return segments;
}
