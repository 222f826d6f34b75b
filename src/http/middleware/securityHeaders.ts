import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';

/**
 * A strict Content-Security-Policy: scripts and styles come only from Sesame's own files,
 * never inline, so injected markup cannot run. form-action is left open on the pages of a
 * sign-in on purpose: the consent form's POST ends in a redirect to the app, which Chromium
 * checks against it. The pages whose forms never leave Sesame close it ({@link formsStayHere}).
 */
export function contentSecurityPolicy(
  imageOrigins: readonly string[] = [],
  options: { formsStayHere?: boolean } = {},
): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    // Images are Sesame's own (the brand's logo, QR codes as data: URLs); a page that shows
    // an app's logo_uri adds that one origin, and only there (see allowImagesFrom).
    ['img-src', "'self'", 'data:', ...imageOrigins].join(' '),
    "connect-src 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    ...(options.formsStayHere ? ["form-action 'self'"] : []),
  ].join('; ');
}

const CSP = contentSecurityPolicy();
const CSP_FORMS_STAY_HERE = contentSecurityPolicy([], { formsStayHere: true });

/**
 * The account and admin pages, and those of a one-time link, the first-run setup and "Lost
 * your passkey?": every form there posts to Sesame and is answered on Sesame (sign-out too;
 * a link's and the setup's pages go on to /account or /admin by script, not by a form).
 */
const PAGES_WHOSE_FORMS_STAY_HERE = /^\/(?:account|admin|link|setup|recover)(?:\/|$)/;

/**
 * On the pages whose forms stay here, adds `form-action 'self'` to the policy: markup injected
 * there could not send a form (a passkey step-up's, a new passkey's name) to another site. Not
 * on a sign-in's pages, whose forms end at the app (consent, and the form_post answer).
 */
export function formsStayHere(res: ServerResponse, path: string): void {
  if (PAGES_WHOSE_FORMS_STAY_HERE.test(path)) res.setHeader('content-security-policy', CSP_FORMS_STAY_HERE);
}

/**
 * Lets this response's page show an image from `url` (an app's https logo_uri) by adding its
 * origin, and nothing wider, to img-src; undefined when the URL is not an https URL.
 * @returns the URL to put in the page.
 */
export function allowImagesFrom(ctx: Context, url: string | undefined): string | undefined {
  const origin = url === undefined ? undefined : imageOrigin(url);
  if (!origin) return undefined;
  ctx.set('Content-Security-Policy', contentSecurityPolicy([origin]));
  return url;
}

// A host of DNS labels (or an IPv4 address) and a port: URL's parser lets `*`, `;` and `'` into
// a host, and in a CSP source they would widen it (`https://*`) or end the directive and start
// another (`https://x;sandbox`).
const PLAIN_HTTPS_ORIGIN = /^https:\/\/[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?$/;

/**
 * The origin of an https image URL (an app's logo_uri) when it is safe as a CSP source, else
 * undefined. Client registration refuses any other (clients.ts), and pages show no logo for
 * one stored before that rule.
 */
export function imageOrigin(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const { protocol, origin } = new URL(url);
  return protocol === 'https:' && PLAIN_HTTPS_ORIGIN.test(origin) ? origin : undefined;
}

/** Sets on `res` the headers every response carries (app.ts: for every request, and for the kept discovery and JWKS). */
export function securityHeaderSetter(options: { hsts: boolean }): (res: ServerResponse) => void {
  // Set on the Node response itself, each name in lower case: Koa's ctx.set makes four
  // arrays per header, and Node lower-cases a name that is not already (a new string). On
  // every response: ~4.3 kB of the ~70 kB an introspection allocated
  // (bench/README.md, "Measured on 2026-12-03, 16:20–17:00").
  const headers: ReadonlyArray<readonly [string, string]> = [
    ['content-security-policy', CSP],
    ['x-content-type-options', 'nosniff'],
    ['x-frame-options', 'DENY'],
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with a
    // form POST, which the CSRF origin check refuses; other sites still get no referrer.
    ['referrer-policy', 'same-origin'],
    ['cross-origin-opener-policy', 'same-origin'],
    ['permissions-policy', 'publickey-credentials-create=(self), publickey-credentials-get=(self)'],
    ...(options.hsts ? [['strict-transport-security', 'max-age=31536000'] as const] : []),
  ];
  return function setSecurityHeaders(res: ServerResponse) {
    for (let i = 0; i < headers.length; i++) res.setHeader(headers[i]![0], headers[i]![1]);
  };
}
