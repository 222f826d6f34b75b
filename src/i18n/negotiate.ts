import { isLocale, type Locale, SUPPORTED_LOCALES } from './locales.js';

/** What a request offers to choose a page's language by. */
export interface LanguageHints {
  /** The OIDC `ui_locales` parameter of the sign-in, if any (OIDC Core §3.1.2.1). */
  uiLocales?: unknown;
  /** The language the signed-in person chose on their account page. */
  stored?: string | null;
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

/** One entry of Accept-Language: a language range (lower case) and its weight. */
interface Range {
  tag: string;
  q: number;
}

const RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/;
const WEIGHT = /^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** The header's ranges, most wanted first (a stable sort keeps the header's order among equals); malformed entries are left out. */
function rangesOf(header: string): Range[] {
  const ranges: Range[] = [];
  for (const entry of header.toLowerCase().split(',')) {
    const [tag = '', ...parameters] = entry.split(';').map((part) => part.trim());
    if (!RANGE.test(tag)) continue;
    const weight = parameters.find((parameter) => parameter.startsWith('q'));
    const q = weight === undefined ? 1 : Number(WEIGHT.exec(weight.replace(/\s+/g, ''))?.[1] ?? Number.NaN);
    if (!Number.isNaN(q)) ranges.push({ tag, q });
  }
  return ranges.sort((a, b) => b.q - a.q);
}

/**
 * The language the browser wants most that Sesame speaks (RFC 9110 §12.5.4): its ranges in
 * q order, each taken by its tag or its primary subtag, so `de-CH,fr;q=0.9` gives German (the
 * negotiator Koa uses let a lower-ranked exact `fr` win over the more specific first choice).
 * `*` stands for the fallback, or, when the header refuses that (q=0), the first language it
 * does not refuse; q=0 refuses a language.
 */
export function localeFromAcceptLanguage(header: string, fallback: Locale): Locale | undefined {
  const ranges = rangesOf(header);
  const refused = new Set(ranges.filter((range) => range.q === 0).map((range) => range.tag));
  const allowed = (locale: Locale) => !refused.has(locale);
  for (const { tag, q } of ranges) {
    if (q === 0) break;
    if (tag === '*') return allowed(fallback) ? fallback : SUPPORTED_LOCALES.find(allowed);
    const language = tag.split('-')[0];
    if (isLocale(tag) && allowed(tag)) return tag;
    if (isLocale(language) && allowed(language)) return language;
  }
  return undefined;
}

/**
 * The language each Accept-Language header (with the fallback it was weighed against) came to:
 * browsers send a few distinct headers, and every page and sign-in step of theirs asks again.
 * Only short headers are kept, and at most this many, then all are forgotten at once: a
 * client sending a new header every time only costs the reading it always did.
 */
const negotiated = new Map<string, Locale>();
const MOST_KEPT = 1_000;
const LONGEST_KEPT = 256;

/**
 * The page language: `ui_locales` of the sign-in first (the app asked for it), then the
 * person's own choice, then the browser's Accept-Language (RFC 9110 §12.5.4), then
 * DEFAULT_LOCALE.
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
  const chosen = localeFromAcceptLanguage(header, fallback) ?? fallback;
  if (header.length <= LONGEST_KEPT) {
    if (negotiated.size >= MOST_KEPT) negotiated.clear();
    negotiated.set(key, chosen);
  }
  return chosen;
}
