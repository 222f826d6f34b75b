import type { Context, Next } from 'koa';
import type { Config } from '../../config.js';
import { cookieNames } from '../../cookieNames.js';
import { isLocale, type Locale } from '../../i18n/locales.js';
import { chooseLocale } from '../../i18n/negotiate.js';

/**
 * What a page's language is chosen with: DEFAULT_LOCALE, and the cookies' names, for the
 * language the person chose on their account page. Their browser keeps that choice (the
 * `language` cookie of cookieNames.ts): set when they choose and each time they sign in
 * (cleared when they have no choice), so every page they reach, not only those that read
 * their account, speaks it without a database read.
 */
export type PageLanguageConfig = Pick<Config, 'defaultLocale' | 'secureCookies'>;

/**
 * Says, for caches, what the language of a page or a worded refusal was chosen by: the
 * browser's Accept-Language and its remembered choice (the language cookie).
 * Pages that hold a form token are no-store, and no cache keeps them at all; the others (an
 * error page, a signed-out page) carry no Cache-Control, and a shared cache could keep one
 * and serve it to a browser that asked in another language.
 */
export function varyByLanguage(ctx: Context): void {
  ctx.vary('Accept-Language');
  ctx.vary('Cookie');
}

/** As long as a browser keeps a cookie (Chrome's cap is 400 days); each sign-in sets it again. */
const LANGUAGE_COOKIE_MAX_AGE = 400 * 24 * 60 * 60 * 1000;

/**
 * The choice this browser remembers, for a page. A page's script says its page's language
 * itself, in Accept-Language (src/client/api.ts): that page was chosen with this cookie, or
 * by the sign-in's ui_locales over it, which a call is not always told before its first checks.
 */
function rememberedChoice(ctx: Context, config: Pick<Config, 'secureCookies'>): Locale | undefined {
  const accept = ctx.get('accept');
  if (accept.includes('application/json') && !accept.includes('text/html')) return undefined;
  const value = ctx.cookies.get(cookieNames(config).language);
  return isLocale(value) ? value : undefined;
}

/** Keeps the person's choice (null: none, "as my browser asks") in this browser, when it holds another. */
export function rememberLanguageChoice(
  ctx: Context,
  locale: string | null,
  config: Pick<Config, 'secureCookies'>,
): void {
  const choice = isLocale(locale) ? locale : null;
  const name = cookieNames(config).language;
  if ((ctx.cookies.get(name) ?? null) === choice) return;
  ctx.cookies.set(name, choice, {
    httpOnly: true,
    sameSite: 'lax',
    secure: config.secureCookies,
    overwrite: true,
    ...(choice && { maxAge: LANGUAGE_COOKIE_MAX_AGE }),
  });
}

/**
 * The language of a request's pages (see {@link chooseLocale}): `more` adds what a route
 * learned, the sign-in's `ui_locales` and the signed-in person's own choice (null: they made
 * none). Without the latter, the choice this browser remembers stands for it.
 */
export function localeOf(
  ctx: Context,
  config: PageLanguageConfig,
  more: { uiLocales?: unknown; stored?: string | null } = {},
): Locale {
  return chooseLocale(
    {
      uiLocales: more.uiLocales,
      stored: more.stored === undefined ? rememberedChoice(ctx, config) : more.stored,
      acceptLanguage: ctx.get('accept-language'),
    },
    config.defaultLocale,
  );
}

/**
 * Chooses every request's language from the remembered choice, Accept-Language and
 * DEFAULT_LOCALE; routes that know more choose again.
 */
export function pageLanguage(config: PageLanguageConfig) {
  return async function choosePageLanguage(ctx: Context, next: Next) {
    ctx.state.locale = localeOf(ctx, config);
    await next();
  };
}

/** APIs for programs answer in English whatever the caller's Accept-Language: their messages are for developers. */
export function isApiPath(ctx: Context): boolean {
  return ctx.path.startsWith('/api/') || ctx.path.startsWith('/passkey-api/');
}

/**
 * The language a refusal speaks: the request's for people's pages and their scripts;
 * English for APIs and the admin pages (which stay English).
 */
export function refusalLocale(ctx: Context): Locale {
  const admin = ctx.path === '/admin' || ctx.path.startsWith('/admin/');
  return isApiPath(ctx) || admin ? 'en' : (ctx.state.locale ?? 'en');
}
