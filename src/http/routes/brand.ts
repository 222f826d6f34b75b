import type Router from '@koa/router';
import type { Context } from 'koa';
import type { BrandStore } from '../../branding/brand.js';
import type { BrandImageKind } from '../../branding/images.js';
import { notFound } from '../errors.js';
import { sesameRouter } from '../router.js';

/**
 * Pages link these with `?v=<etag>`: such a URL never changes content, so browsers keep it
 * a year; the stable URL without the version is revalidated after five minutes.
 */
const VERSIONED = 'public, max-age=31536000, immutable';
const UNVERSIONED = 'public, max-age=300';

/** Sets the validators and caching of `etag`; true when the browser already has it (answered 304). */
function answeredNotModified(ctx: Context, etag: string): boolean {
  ctx.set('ETag', etag);
  ctx.set('Cache-Control', ctx.query.v === etag.replaceAll('"', '') ? VERSIONED : UNVERSIONED);
  // Compared here rather than by ctx.fresh, which ignores If-None-Match on a request that
  // says Cache-Control: no-cache, as fetch() does whenever it is given a validator.
  const presented = ctx
    .get('if-none-match')
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''));
  if (!presented.includes(etag) && !presented.includes('*')) return false;
  ctx.status = 304;
  return true;
}

/**
 * The brand's stylesheet (/brand.css: the accent colours, since CSP forbids inline style),
 * logo and favicon, for every page's layout. An image that the brand does not have is a 404.
 */
export function brandRoutes(brand: BrandStore): Router {
  const router = sesameRouter();

  router.get('/brand.css', async (ctx) => {
    const current = await brand.current();
    if (answeredNotModified(ctx, current.cssEtag)) return;
    ctx.type = 'text/css; charset=utf-8';
    ctx.body = current.css;
  });

  const serveImage = (kind: BrandImageKind) => async (ctx: Context) => {
    const current = await brand.current();
    const etag = kind === 'logo' ? current.logoEtag : current.faviconEtag;
    if (!etag) throw notFound(`This site has no ${kind}.`);
    // A 304 needs no bytes; otherwise the image is read, and sent with the ETag of what was read.
    if (answeredNotModified(ctx, etag)) return;
    const image = await brand.image(kind);
    if (!image) throw notFound(`This site has no ${kind}.`);
    answeredNotModified(ctx, image.etag);
    // The exact stored type; X-Content-Type-Options: nosniff (on every response) stops browsers guessing another.
    ctx.type = image.type;
    ctx.body = image.bytes;
  };
  router.get('/brand/logo', serveImage('logo'));
  router.get('/brand/favicon', serveImage('favicon'));
  // Browsers ask for it on their own, whatever the page links.
  router.get('/favicon.ico', serveImage('favicon'));
  return router;
}
