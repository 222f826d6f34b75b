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
 * The language each Accept-Language header (with the fallback it was weighed against) came to:
 * browsers send a few distinct headers, and every page and sign-in step of theirs asks again
 * (~15 µs each through the negotiator). Only short headers are kept, and at most this many,
 * then all are forgotten at once: a client sending a new header every time only costs the
 * negotiation it always did.
 */
const negotiated = new Map<string, Locale>();
const MOST_KEPT = 1_000;
const LONGEST_KEPT = 256;

/**
 * The page language: `ui_locales` of the sign-in first (the app asked for it), then the
 * person's own choice, then the browser's Accept-Language (RFC 9110 §12.5.4), then
 * DEFAULT_LOCALE. A wildcard or a tie in Accept-Language goes to DEFAULT_LOCALE.
 */
export function chooseLocale(hints: LanguageHints, fallback: Locale): Locale {
  const requested = localeFromUiLocales(hints.uiLocales);
  if (requested) return requested;
  if (isLocale(hints.stored)) return hints.stored;
  const header = hints.acceptLanguage;
  if (!header.trim()) return fallback;
  const key = `${fallback} ${header}`;
  const known = negotiated.get(key);
  if (known) return known;
  const best = hints.acceptsLanguages([
    fallback,
    ...SUPPORTED_LOCALES.filter((locale) => locale !== fallback),
  ]);
  const chosen = isLocale(best) ? best : fallback;
  if (header.length <= LONGEST_KEPT) {
    if (negotiated.size >= MOST_KEPT) negotiated.clear();
    negotiated.set(key, chosen);
  }
  return chosen;
}
