import type { Context, Next } from 'koa';

/**
 * A strict Content-Security-Policy: scripts and styles come only from Sesame's own files,
 * never inline, so injected markup cannot run. form-action is left open on purpose: the
 * consent form's POST ends in a redirect to the app, which Chromium checks against it.
 */
export function contentSecurityPolicy(imageOrigins: readonly string[] = []): string {
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
  ].join('; ');
}

const CSP = contentSecurityPolicy();

/**
 * Lets this response's page show an image from `url` (an app's https logo_uri) by adding its
 * origin, and nothing wider, to img-src; undefined when the URL is not an https URL.
 * @returns the URL to put in the page.
 */
export function allowImagesFrom(ctx: Context, url: string | undefined): string | undefined {
  if (!url || !URL.canParse(url)) return undefined;
  const { protocol, origin } = new URL(url);
  if (protocol !== 'https:') return undefined;
  ctx.set('Content-Security-Policy', contentSecurityPolicy([origin]));
  return url;
}

export function securityHeaders(options: { hsts: boolean }) {
  return function setSecurityHeaders(ctx: Context, next: Next) {
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with a
    // form POST, which the CSRF origin check refuses; other sites still get no referrer.
    ctx.set('Referrer-Policy', 'same-origin');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Permissions-Policy', 'publickey-credentials-create=(self), publickey-credentials-get=(self)');
    if (options.hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000');
    return next();
  };
}
