import { isLocale, type Locale, SUPPORTED_LOCALES } from './locales.js';

/** What a request offers to choose a page's language by. */
export interface LanguageHints {
  /** The OIDC `ui_locales` parameter of the sign-in, if any (OIDC Core §3.1.2.1). */
  uiLocales?: unknown;
  /** The language the signed-in person chose on their account page. */
  stored?: string | null;
  /** Koa's Accept-Language negotiation (the `negotiator` package: q-values, de-AT → de). */
  acceptsLanguages(languages: string[]): string | false;
  /** The Accept-Language header as sent; empty when absent. */
  acceptLanguage: string;
}

/**
 * The first tag of `ui_locales` (space-separated BCP 47 tags, most wanted first) that
 * Sesame speaks, by its language: `fr-CA` picks `fr`.
 */
export function localeFromUiLocales(uiLocales: unknown): Locale | undefined {
  if (typeof uiLocales !== 'string') return undefined;
  for (const tag of uiLocales.trim().split(/\s+/)) {
    const language = tag.toLowerCase().split('-')[0];
    if (isLocale(language)) return language;
  }
  return undefined;
}

/**
 * The page language: `ui_locales` of the sign-in first (the app asked for it), then the
 * person's own choice, then the browser's Accept-Language (RFC 9110 §12.5.4), then
 * DEFAULT_LOCALE. A wildcard or a tie in Accept-Language goes to DEFAULT_LOCALE.
 */
export function chooseLocale(hints: LanguageHints, fallback: Locale): Locale {
  const requested = localeFromUiLocales(hints.uiLocales);
  if (requested) return requested;
  if (isLocale(hints.stored)) return hints.stored;
  if (!hints.acceptLanguage.trim()) return fallback;
  const best = hints.acceptsLanguages([
    fallback,
    ...SUPPORTED_LOCALES.filter((locale) => locale !== fallback),
  ]);
  return isLocale(best) ? best : fallback;
}
