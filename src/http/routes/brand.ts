import type Router from '@koa/router';
import type { Context } from 'koa';
import type { BrandStore } from '../../branding/brand.js';
import { defaultFavicon } from '../../branding/defaultFavicon.js';
import type { BrandImageKind } from '../../branding/images.js';
import type { StoredBrandImage } from '../../db/queries/branding.js';
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
 * logo and favicon, for every page's layout. An image that the brand does not have is a 404,
 * except /favicon.ico, which is then Sesame's own icon.
 */
export function brandRoutes(brand: BrandStore): Router {
  const router = sesameRouter();

  router.get('/brand.css', async (ctx) => {
    const current = await brand.current();
    if (answeredNotModified(ctx, current.cssEtag)) return;
    ctx.type = 'text/css; charset=utf-8';
    ctx.body = current.css;
  });

  /** The brand's `kind` image; without one, `fallback`'s, or a 404 when there is none. */
  const serveImage = (kind: BrandImageKind, fallback?: () => StoredBrandImage) => async (ctx: Context) => {
    const current = await brand.current();
    const etag = kind === 'logo' ? current.logoEtag : current.faviconEtag;
    if (!etag) {
      if (!fallback) throw notFound(`This site has no ${kind}.`);
      sendImage(ctx, fallback());
      return;
    }
    // A 304 needs no bytes; otherwise the image is read, and sent with the ETag of what was read.
    if (answeredNotModified(ctx, etag)) return;
    const image = await brand.image(kind);
    if (!image) throw notFound(`This site has no ${kind}.`);
    sendImage(ctx, image);
  };
  router.get('/brand/logo', serveImage('logo'));
  router.get('/brand/favicon', serveImage('favicon'));
  // Browsers ask for it on their own, whatever the page links: a brand without a favicon gets Sesame's.
  router.get('/favicon.ico', serveImage('favicon', defaultFavicon));
  return router;
}

function sendImage(ctx: Context, image: StoredBrandImage) {
  if (answeredNotModified(ctx, image.etag)) return;
  // The exact stored type; X-Content-Type-Options: nosniff (on every response) stops browsers guessing another.
  ctx.type = image.type;
  ctx.body = image.bytes;
}
