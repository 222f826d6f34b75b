/**
 * Provider endpoints that answer machines with JSON and never render a page: a request for
 * one needs no page language and no brand (the token and introspection endpoints are most
 * of the traffic a resource server sends).
 */
export const PAGELESS_PROVIDER_PATHS: ReadonlySet<string> = new Set([
  '/.well-known/openid-configuration',
  '/token',
  '/me',
  '/jwks',
  '/token/introspection',
  '/token/revocation',
  // Pushed authorization requests (RFC 9126), on by default in oidc-provider 9.
  '/request',
  // Device authorization grant (RFC 8628): the device's request.
  '/device/auth',
]);

/**
 * The pageless endpoints that programs call, at every sign-in (token, userinfo) or on every
 * API call (introspection), and that the per-IP limit does not count: app.ts answers them
 * without Sesame's middleware stack in front (src/http/providerApi.ts). Discovery and the
 * JWKS are not among them (their bytes are kept and answered in that stack), nor are the
 * device authorization request and the pushed authorization request: each stores a row for
 * anyone who asks (a public client needs no secret), so they are counted (app.ts).
 */
export const PROVIDER_API_PATHS: ReadonlySet<string> = new Set([
  '/token',
  '/me',
  '/token/introspection',
  '/token/revocation',
]);

/**
 * The most of a request body oidc-provider reads (its lib/shared/selective_body.js). Past it
 * the provider answers 400 "failed to parse the request body", which does not say why; a
 * request whose Content-Length is larger gets 413 and these words before it reaches the
 * provider (app.ts, providerApi.ts). A chunked body with no length still gets the provider's 400.
 */
export const PROVIDER_BODY_LIMIT_BYTES = 56 * 1024;
export const PROVIDER_BODY_TOO_LARGE = `The request body is larger than the ${PROVIDER_BODY_LIMIT_BYTES / 1024} kB this endpoint reads`;

/**
 * The most an authorization request may be: a browser's query string or form at `/auth`, or
 * the body of a pushed one (`/request`) or a device's (`/device/auth`). The provider stores every
 * parameter of such a request (state, nonce, ...) whole, for 10–30 minutes, for anyone who
 * asks: a 50 kB `state` made 50 kB rows, some 0.5 GB per client address under the per-IP
 * limit. Real requests are well under 2 kB.
 */
export const AUTHORIZATION_REQUEST_LIMIT_BYTES = 8 * 1024;
const AUTHORIZATION_REQUEST_PATHS: ReadonlySet<string> = new Set(['/auth', '/request', '/device/auth']);
/**
 * A logout's query string (or its form POST, which becomes one: http/postAsGet.ts) is held to
 * the same limit: the provider keeps its `state` in the visitor's session, stored for 30 minutes.
 * Its `id_token_hint` does not count: the provider only verifies it and keeps nothing of it, and
 * an ID token with the claims an administrator may give (custom claims, groups) can be over
 * 8 kB by itself. Node's limit on a request's head (16 kB) bounds the whole; a logout's form
 * POST may be as long, since the GET it is sent on as must fit there too.
 */
const LIMITED_PATHS: ReadonlySet<string> = new Set([...AUTHORIZATION_REQUEST_PATHS, '/session/end']);
const LOGOUT_FORM_LIMIT_BYTES = 16 * 1024;
const UNCOUNTED_LOGOUT_PARAMETER = 'id_token_hint=';
export const AUTHORIZATION_REQUEST_TOO_LARGE = `The authorization request is larger than the ${AUTHORIZATION_REQUEST_LIMIT_BYTES / 1024} kB it may be`;

export const AUTHORIZATION_REQUEST_LENGTH_REQUIRED =
  'An authorization request must say its length (Content-Length): a body without one is not read';
const LOGOUT_REQUEST_TOO_LARGE = `The logout request is larger than the ${AUTHORIZATION_REQUEST_LIMIT_BYTES / 1024} kB it may be (its id_token_hint not counted)`;
const LOGOUT_FORM_TOO_LARGE = `The logout form is larger than the ${LOGOUT_FORM_LIMIT_BYTES / 1024} kB it may be`;
const LOGOUT_REQUEST_LENGTH_REQUIRED =
  'A logout request must say its length (Content-Length): a body without one is not read';

/** Why the provider is not handed a request: the status to answer with and what to say. */
export interface ProviderRequestRefusal {
  status: 411 | 413 | 414;
  description: string;
}

/**
 * Why a request to the provider at `path` is too large to pass on, or undefined when it is
 * not: an authorization request or a logout over {@link AUTHORIZATION_REQUEST_LIMIT_BYTES}
 * (its query string, 414, or a POST's body, 413), or a POST of one that does not say its
 * length (411: its chunked body would be read whole before anything could count it), else a
 * POST whose body says it is longer than the provider reads (413; Node has checked the
 * Content-Length header is a number). Only a POST has a body that is read: the provider
 * reads those at `/request` and `/device/auth`, Sesame those at `/auth` and `/session/end`
 * (http/postAsGet.ts).
 */
export function providerRequestTooLarge(
  req: { method?: string; url?: string; headers: { 'content-length'?: string } },
  path: string,
): ProviderRequestRefusal | undefined {
  const post = req.method === 'POST';
  if (LIMITED_PATHS.has(path)) {
    const logout = !AUTHORIZATION_REQUEST_PATHS.has(path);
    if (post && req.headers['content-length'] === undefined)
      return {
        status: 411,
        description: logout ? LOGOUT_REQUEST_LENGTH_REQUIRED : AUTHORIZATION_REQUEST_LENGTH_REQUIRED,
      };
    if (post) {
      if (Number(req.headers['content-length']) > postAsGetLimit(path))
        return { status: 413, description: logout ? LOGOUT_FORM_TOO_LARGE : AUTHORIZATION_REQUEST_TOO_LARGE };
    } else if (queryLength(req.url, logout) > AUTHORIZATION_REQUEST_LIMIT_BYTES) {
      return {
        status: 414,
        description: logout ? LOGOUT_REQUEST_TOO_LARGE : AUTHORIZATION_REQUEST_TOO_LARGE,
      };
    }
  }
  return post && Number(req.headers['content-length']) > PROVIDER_BODY_LIMIT_BYTES
    ? { status: 413, description: PROVIDER_BODY_TOO_LARGE }
    : undefined;
}

/** The most a form POST to `path` (`/auth`, `/session/end`: http/postAsGet.ts) may be, in bytes. */
export function postAsGetLimit(path: string): number {
  return path === '/session/end' ? LOGOUT_FORM_LIMIT_BYTES : AUTHORIZATION_REQUEST_LIMIT_BYTES;
}

/**
 * The length of a request target's query string (0 without one); of a logout's, without its
 * `id_token_hint` parameters (see {@link LIMITED_PATHS}).
 */
function queryLength(url = '', logout = false): number {
  const query = url.indexOf('?');
  if (query === -1) return 0;
  let length = url.length - query - 1;
  if (logout && url.includes(UNCOUNTED_LOGOUT_PARAMETER)) {
    for (const parameter of url.slice(query + 1).split('&')) {
      if (parameter.startsWith(UNCOUNTED_LOGOUT_PARAMETER)) length -= parameter.length;
    }
  }
  return length;
}

/**
 * The paths oidc-provider answers, from its default `routes` (Sesame keeps them). Requests
 * for these skip Sesame's own routers and go straight to the provider: they are most of the
 * traffic (token, userinfo, JWKS, discovery), and matching each against every Sesame route
 * first costs more than the lookup here. test/integration/startup.test.ts checks the list
 * against the endpoints discovery advertises.
 */
export const PROVIDER_PATHS: ReadonlySet<string> = new Set([
  ...PAGELESS_PROVIDER_PATHS,
  // The endpoints a person's browser is sent to: they may render a page (an error, logout, the device code).
  '/auth',
  '/session/end',
  '/session/end/confirm',
  '/session/end/success',
  '/device',
]);

/**
 * Where the provider resumes an authorization after an interaction, and the route each names:
 * `/auth/:uid`, `/device/:uid`. The route's text is made once: a login's return is named by
 * httpMetrics.ts, app.ts's `route` and routeSteps.ts, each request.
 */
const RESUME_PREFIXES = ['/auth/', '/device/'] as const;
const RESUME_ROUTES = RESUME_PREFIXES.map((prefix) => `${prefix}:uid`);

/** Whether oidc-provider owns the path: one of its endpoints, or a resumed authorization. */
export function isProviderPath(path: string): boolean {
  return providerRouteOf(path) !== undefined;
}

/**
 * The provider endpoint a path belongs to (`/auth/:uid`, `/device/:uid` when resumed), or
 * undefined. Spelled exactly: a resume names one uid, so `/auth/` or `/device/x/` is no
 * provider path (the provider's router would take them for `/auth` and `/device`, past the
 * per-IP limits app.ts puts on those).
 */
export function providerRouteOf(path: string): string | undefined {
  if (PROVIDER_PATHS.has(path)) return path;
  for (let i = 0; i < RESUME_PREFIXES.length; i++) {
    const prefix = RESUME_PREFIXES[i]!;
    if (path.startsWith(prefix))
      return path.length > prefix.length && !path.includes('/', prefix.length) ? RESUME_ROUTES[i] : undefined;
  }
  return undefined;
}

/** The last segment of a path: the uid of a return to a sign-in (`/auth/:uid`). */
export const lastPathSegment = (path: string) => path.slice(path.lastIndexOf('/') + 1);
