import type { Context, Next } from 'koa';
import type { Locale } from '../../i18n/locales.js';
import { chooseLocale } from '../../i18n/negotiate.js';

/**
 * The language of a request's pages (see {@link chooseLocale}): `more` adds what a route
 * learned, the sign-in's `ui_locales` and the signed-in person's own choice.
 */
export function localeOf(
  ctx: Context,
  fallback: Locale,
  more: { uiLocales?: unknown; stored?: string | null } = {},
): Locale {
  return chooseLocale(
    {
      ...more,
      acceptLanguage: ctx.get('accept-language'),
    },
    fallback,
  );
}

/** Chooses every request's language from Accept-Language and DEFAULT_LOCALE; routes that know more choose again. */
export function pageLanguage(defaultLocale: Locale) {
  return async function choosePageLanguage(ctx: Context, next: Next) {
    ctx.state.locale = localeOf(ctx, defaultLocale);
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
