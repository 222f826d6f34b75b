import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Eta } from 'eta';
import type { Context } from 'koa';
import type { Brand } from '../branding/brand.js';
import { defaultFavicon } from '../branding/defaultFavicon.js';
import { clientMessages, translatorFor } from '../i18n/catalog.js';
import type { Locale } from '../i18n/locales.js';
import { VIEWS_DIR } from '../paths.js';
import { varyByLanguage } from './middleware/language.js';

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

/**
 * The brand as the layout links it; each URL carries the content's ETag, so a change is a new
 * URL. A brand without a favicon links Sesame's own, which /favicon.ico then serves.
 */
export function pageBrandOf(brand: Brand): PageBrand {
  return {
    name: brand.name,
    cssUrl: versioned('/brand.css', brand.cssEtag),
    logoUrl: brand.logoEtag ? versioned('/brand/logo', brand.logoEtag) : undefined,
    faviconUrl: brand.faviconEtag
      ? versioned('/brand/favicon', brand.faviconEtag)
      : versioned('/favicon.ico', defaultFavicon().etag),
  };
}

/**
 * The brand each request's pages show, by the Node request: Sesame's Koa app and the
 * provider's (which renders the logout, device and error pages) each have a context of
 * their own, but both hold the same request.
 */
const pageBrands = new WeakMap<IncomingMessage, PageBrand>();

/**
 * The links of each brand, made once: the brand store hands out one object until the brand
 * changes, and every page request showed it, building the same URLs again.
 */
const linksOfBrand = new WeakMap<Brand, PageBrand>();

/** Pages answering `req` show `brand`. */
export function showBrandOn(req: IncomingMessage, brand: Brand): void {
  let links = linksOfBrand.get(brand);
  if (!links) {
    links = pageBrandOf(brand);
    linksOfBrand.set(brand, links);
  }
  pageBrands.set(req, links);
}

/** Outside a request (never in the server) pages fall back to Sesame's own look. */
const UNBRANDED: PageBrand = {
  name: 'Sesame',
  cssUrl: '/brand.css',
  logoUrl: undefined,
  faviconUrl: undefined,
};

/** What a view writes into a form field it shows with an error: see {@link invalidFieldMarks}. */
type MarkField = (error: unknown, errorId: string, hintId?: string) => string;

/**
 * The attributes of the form fields one page shows, for the view to write into each (`<%~ %>`):
 * a field with an `error` is `aria-invalid`, described by its error's text (`errorId`) after
 * its hint (`hintId`, also for a field without an error), and the first such field of the page
 * has `autofocus`, so the keyboard is where the fix is when the page comes back refused (the
 * CSP allows no inline script to move it). The ids are the view's own, never typed input.
 */
function invalidFieldMarks(): MarkField {
  let focused = false;
  return (error, errorId, hintId) => {
    const describedBy = [hintId, error ? errorId : undefined].filter(Boolean).join(' ');
    let attributes = error ? ' aria-invalid="true"' : '';
    if (describedBy) attributes += ` aria-describedby="${describedBy}"`;
    if (error && !focused) {
      focused = true;
      attributes += ' autofocus';
    }
    return attributes;
  };
}

/**
 * Renders views/<name>.eta inside the shared layout, in `locale`: the view reads its words
 * with `it.t(key)` (and `it.html(key)` for messages with markup) and marks fields it shows
 * with an error with `it.markField` ({@link invalidFieldMarks}), the layout sets
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
    markField: invalidFieldMarks(),
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
  return renderView(name, data, locale, pageBrandFor(ctx));
}

/** The brand this request's pages show ({@link showBrandOn}), else Sesame's own look. */
const pageBrandFor = (ctx: Context) => pageBrands.get(ctx.req) ?? UNBRANDED;

/** The messages of the request's language, for a page's title and what the handler words itself. */
export function pageText(ctx: Context) {
  return translatorFor(ctx.state.locale ?? 'en');
}

/**
 * Answers with views/<name>.eta in the request's language (ctx.state.locale), saying which
 * (Content-Language) and what the language depends on, for caches (varyByLanguage).
 */
export function sendPage(ctx: Context, name: string, data: PageData): void {
  // A page with a form token is this session's alone: no cache may keep it for a later view.
  if (data.csrf !== undefined) ctx.set('Cache-Control', 'no-store');
  const locale = ctx.state.locale ?? 'en';
  answerWithPage(ctx, locale, renderPage(ctx, name, data, locale));
}

/** The answer is `html`, a page in `locale`: saying which, and what it depends on, for caches. */
function answerWithPage(ctx: Context, locale: Locale, html: string): void {
  ctx.type = 'html';
  ctx.set('Content-Language', locale);
  varyByLanguage(ctx);
  ctx.body = html;
}

/** A page's text with a marker where each per-request value goes: `parts[i]`, then the value of `slots[i]`, …, then the last part. */
interface SlottedPage {
  parts: string[];
  slots: string[];
}

/**
 * The markers {@link sendSlottedPage} renders in place of per-request values: random per
 * process (nothing a client name or a catalog says can be one), and made of letters and
 * digits, which escaping leaves as they are.
 */
const SLOT_MARKER = `slot${randomBytes(12).toString('hex')}`;
const markerOf = (name: string) => `${SLOT_MARKER}${name}${SLOT_MARKER}`;

/** Rendered pages by everything but their per-request values; cleared when full (one entry is a page, ~3 kB). */
const slottedPages = new Map<string, SlottedPage | null>();
const MAX_SLOTTED_PAGES = 500;

function slottedPageOf(
  name: string,
  data: PageData,
  perRequest: Record<string, string>,
  locale: Locale,
  brand: PageBrand,
): SlottedPage | null {
  const key = JSON.stringify([name, locale, brand, data, Object.keys(perRequest)]);
  let page = slottedPages.get(key);
  if (page !== undefined) return page;
  const markers = Object.fromEntries(Object.keys(perRequest).map((slot) => [slot, markerOf(slot)]));
  const text = renderView(name, { ...data, ...markers }, locale, brand);
  const pieces = text.split(new RegExp(`${SLOT_MARKER}(\\w+?)${SLOT_MARKER}`));
  page = { parts: pieces.filter((_, i) => i % 2 === 0), slots: pieces.filter((_, i) => i % 2 === 1) };
  // A view that did more with a value than print it escaped (a test, a slice) would not show
  // its marker as it is: such a page is rendered whole every time.
  const printed = new Set(page.slots);
  if (Object.keys(perRequest).some((slot) => !printed.has(slot))) page = null;
  if (slottedPages.size >= MAX_SLOTTED_PAGES) slottedPages.clear();
  slottedPages.set(key, page);
  return page;
}

/**
 * {@link sendPage} for a page viewed on every sign-in, whose words, brand and layout are the
 * same for many requests and only a few values its own (an interaction's uid, a CSRF token, a
 * challenge): the page is rendered once with markers in their places, and each request puts
 * its values there, escaped as the view's `<%= %>` escapes them. Rendering the login page
 * (Eta, i18next) took ~225 µs per view inside the server under the bench's logins (38 µs in a
 * warm loop: in the server it runs mostly cold); joining its pieces takes a few. The view
 * must print each per-request value only through `<%= %>`, and nothing in it may depend on
 * their content; one that does is rendered whole.
 */
export function sendSlottedPage(
  ctx: Context,
  name: string,
  data: PageData,
  perRequest: Record<string, string>,
): void {
  const locale = ctx.state.locale ?? 'en';
  const brand = pageBrandFor(ctx);
  // An empty value is false to the view's tests, as no marker is: such a page is rendered whole.
  const page = Object.values(perRequest).every(Boolean)
    ? slottedPageOf(name, data, perRequest, locale, brand)
    : null;
  if (!page) {
    sendPage(ctx, name, { ...data, ...perRequest });
    return;
  }
  const escapeHtml = eta.config.escapeFunction;
  let html = page.parts[0]!;
  for (let i = 0; i < page.slots.length; i++)
    html += escapeHtml(perRequest[page.slots[i]!]) + page.parts[i + 1];
  answerWithPage(ctx, locale, html);
}
