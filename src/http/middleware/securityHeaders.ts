import type { Context, Next } from 'koa';

/**
 * A strict Content-Security-Policy: scripts and styles come only from Sesame's own files,
 * never inline, so injected markup cannot run. form-action is left open on purpose: the
 * consent form's POST ends in a redirect to the app, which Chromium checks against it.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: https:",
  "connect-src 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function securityHeaders(options: { hsts: boolean }) {
  return async function setSecurityHeaders(ctx: Context, next: Next) {
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with a
    // form POST, which the CSRF origin check refuses; other sites still get no referrer.
    ctx.set('Referrer-Policy', 'same-origin');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Permissions-Policy', 'publickey-credentials-create=(self), publickey-credentials-get=(self)');
    if (options.hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000');
    await next();
  };
}
