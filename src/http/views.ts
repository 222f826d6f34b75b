import type { IncomingMessage } from 'node:http';
import { Eta } from 'eta';
import type { Context } from 'koa';
import type { Brand } from '../branding/brand.js';
import { clientMessages, translatorFor } from '../i18n/catalog.js';
import type { Locale } from '../i18n/locales.js';
import { VIEWS_DIR } from '../paths.js';

// autoEscape: every <%= %> is HTML-escaped; nothing a user typed reaches a page raw.
const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: false });

declare module 'koa' {
  interface DefaultState {
    /** The language this request's pages speak (src/http/middleware/language.ts). */
    locale?: Locale;
  }
}

/** What the layout shows of the brand: its name, and the URLs of its stylesheet and images. */
export interface PageBrand {
  name: string;
  cssUrl: string;
  logoUrl: string | undefined;
  faviconUrl: string | undefined;
}

/** Data every page's layout reads. */
export interface PageData {
  title: string;
  /** Token for forms and fetch calls on the page (see http/csrf.ts). */
  csrf?: string;
  /** Browser bundle (public/js/<name>.js) the page loads, if any. */
  script?: string;
  [key: string]: unknown;
}

const versioned = (path: string, etag: string) => `${path}?v=${etag.replaceAll('"', '')}`;

/** The brand as the layout links it; each URL carries the content's ETag, so a change is a new URL. */
export function pageBrandOf(brand: Brand): PageBrand {
  return {
    name: brand.name,
    cssUrl: versioned('/brand.css', brand.cssEtag),
    logoUrl: brand.logoEtag ? versioned('/brand/logo', brand.logoEtag) : undefined,
    faviconUrl: brand.faviconEtag ? versioned('/brand/favicon', brand.faviconEtag) : undefined,
  };
}

/**
 * The brand each request's pages show, by the Node request: Sesame's Koa app and the
 * provider's (which renders the logout, device and error pages) each have a context of
 * their own, but both hold the same request.
 */
const pageBrands = new WeakMap<IncomingMessage, PageBrand>();

/** Pages answering `req` show `brand`. */
export function showBrandOn(req: IncomingMessage, brand: Brand): void {
  pageBrands.set(req, pageBrandOf(brand));
}

/** Outside a request (never in the server) pages fall back to Sesame's own look. */
const UNBRANDED: PageBrand = {
  name: 'Sesame',
  cssUrl: '/brand.css',
  logoUrl: undefined,
  faviconUrl: undefined,
};

/**
 * Renders views/<name>.eta inside the shared layout, in `locale`: the view reads its words
 * with `it.t(key)` (and `it.html(key)` for messages with markup), the layout sets
 * `<html lang>` and hands the page's script its messages (<meta name="messages">). Admin pages stay English.
 */
export function renderView(
  name: string,
  data: PageData,
  locale: Locale = 'en',
  brand: PageBrand = UNBRANDED,
): string {
  const translator = translatorFor(locale);
  return eta.render(name, {
    brand,
    ...data,
    lang: locale,
    t: translator.t,
    html: translator.html,
    clientMessages: data.script ? clientMessages(locale) : undefined,
  });
}

/** views/<name>.eta for this request: in `locale` (the request's language unless given), with the request's brand. */
export function renderPage(
  ctx: Context,
  name: string,
  data: PageData,
  locale = ctx.state.locale ?? 'en',
): string {
  return renderView(name, data, locale, pageBrands.get(ctx.req) ?? UNBRANDED);
}

/** The messages of the request's language, for a page's title and what the handler words itself. */
export function pageText(ctx: Context) {
  return translatorFor(ctx.state.locale ?? 'en');
}

/**
 * Answers with views/<name>.eta in the request's language (ctx.state.locale), saying which
 * (Content-Language) and that the answer depends on Accept-Language, for caches.
 */
export function sendPage(ctx: Context, name: string, data: PageData): void {
  const locale = ctx.state.locale ?? 'en';
  ctx.type = 'html';
  ctx.set('Content-Language', locale);
  ctx.vary('Accept-Language');
  ctx.body = renderPage(ctx, name, data, locale);
}
