import fs from 'node:fs';
import path from 'node:path';
import i18next, { type TFunction } from 'i18next';
import { LOCALES_DIR } from '../paths.js';
import { type Locale, SUPPORTED_LOCALES } from './locales.js';

/** A catalog as a translator edits it: nested objects of strings (`locales/<code>.json`). */
export interface Catalog {
  [key: string]: string | Catalog;
}

/** Reads `locales/<code>.json`; read once when this module loads, never per request. */
export function readCatalog(locale: Locale): Catalog {
  return JSON.parse(fs.readFileSync(path.join(LOCALES_DIR, `${locale}.json`), 'utf8')) as Catalog;
}

/**
 * An i18next instance over every catalog. Two are made: `escaping` HTML-escapes inserted
 * values, for {@link Translator.html}. Asking one instance to escape for a single call
 * (`interpolation: { escapeValue: true }`) makes i18next rebuild its interpolation regexes
 * before that call and again after it (~50 µs for the login page's one such message, in
 * the bench's profile of 2026-12-05); an instance set up to escape builds them once.
 */
function catalogInstance(escaping: boolean) {
  const instance = i18next.createInstance();
  void instance.init({
    resources: Object.fromEntries(
      SUPPORTED_LOCALES.map((locale) => [locale, { translation: catalogs.get(locale)! }]),
    ),
    supportedLngs: [...SUPPORTED_LOCALES],
    fallbackLng: 'en',
    // Resources are in memory: init finishes before this line returns.
    initImmediate: false,
    returnEmptyString: false,
    // Pages escape on output (Eta's autoEscape); see {@link Translator.html} for messages with markup.
    interpolation: { escapeValue: escaping },
  });
  // Replaces i18next's own `datetime`, whose cache keeps one formatter per call's values (a
  // new one for every date) and whose zone would be the server's.
  instance.services.formatter?.add('datetime', (value, locale) => formatDateTime(value, locale ?? 'en'));
  return instance;
}

const catalogs = new Map(SUPPORTED_LOCALES.map((locale) => [locale, readCatalog(locale)]));

/**
 * How every message writes a date and time (`{{expires, datetime}}` in a catalog): as its
 * language does, in UTC (the zone the server knows for sure), which the text names. Each
 * language's format is made on its first date: making all four at import read ~1.9 MB of
 * ICU's data into memory (bench/README.md, "2026-12-07, 07:35"), which a server that only
 * signs people in never uses.
 */
const dateTimeFormats = new Map<Locale, Intl.DateTimeFormat>();

function dateTimeFormat(locale: Locale): Intl.DateTimeFormat {
  let format = dateTimeFormats.get(locale);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, {
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      hour: 'numeric',
      minute: '2-digit',
      timeZone: 'UTC',
      timeZoneName: 'short',
    });
    dateTimeFormats.set(locale, format);
  }
  return format;
}

function formatDateTime(value: Date | string | number, locale: string): string {
  const known = (SUPPORTED_LOCALES as readonly string[]).includes(locale) ? (locale as Locale) : 'en';
  return dateTimeFormat(known).format(new Date(value));
}

const i18n = catalogInstance(false);
const escapingI18n = catalogInstance(true);

/** Messages of one language. */
export interface Translator {
  readonly locale: Locale;
  /** A plain message; values are inserted as text (the page escapes the result). */
  readonly t: TFunction;
  /**
   * A message whose catalog text carries markup (its key ends in `Html`, e.g. `<strong>`):
   * the values are HTML-escaped here, and the page prints the result unescaped.
   */
  html(key: string, values?: Record<string, unknown>): string;
  /** Whether the catalog has the key, e.g. for a server message that may have a translation. */
  has(key: string): boolean;
}

/**
 * `t` of one language, with every plain message (a catalog key, no values) looked up once:
 * i18next resolves, interpolates and post-processes on each call (~4 µs here, against
 * ~15 ns from the Map), and a page says dozens of them. Only keys the catalog has are kept,
 * so the memory is the catalog's size whatever keys a request makes up.
 */
function rememberingT(locale: Locale, t: TFunction): TFunction {
  const said = new Map<string, string>();
  // TFunction's overloads cannot be written as a function expression: the wrapper takes any
  // call, passes every other one on unchanged, and is typed as what it wraps.
  const translate = t as unknown as (...args: unknown[]) => unknown;
  const remembering = (key: unknown, ...rest: unknown[]) => {
    if (rest.length > 0 || typeof key !== 'string') return translate(key, ...rest);
    const known = said.get(key);
    if (known !== undefined) return known;
    const text = translate(key);
    if (typeof text === 'string' && typeof i18n.getResource(locale, 'translation', key) === 'string')
      said.set(key, text);
    return text;
  };
  return remembering as unknown as TFunction;
}

const translators = new Map<Locale, Translator>(
  SUPPORTED_LOCALES.map((locale) => {
    const t = rememberingT(locale, i18n.getFixedT(locale));
    const escapingT = escapingI18n.getFixedT(locale);
    const translator: Translator = {
      locale,
      t,
      html: (key, values) => escapingT(key, values),
      has: (key) => i18n.getResource(locale, 'translation', key) !== undefined,
    };
    return [locale, translator];
  }),
);

/** The messages of `locale`. */
export function translatorFor(locale: Locale): Translator {
  return translators.get(locale)!;
}

/**
 * What the pages' scripts (src/client/*.ts) say, in `locale`: the catalog's `client`
 * section, handed to the page as JSON in <meta name="messages"> (the CSP allows no inline script).
 */
export function clientMessages(locale: Locale): Catalog {
  return i18n.getResource(locale, 'translation', 'client') as Catalog;
}
