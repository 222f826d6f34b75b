import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa from 'koa';
import { cookieNames } from '../../src/cookieNames.js';
import { localeOf } from '../../src/http/middleware/language.js';
import type { Locale } from '../../src/i18n/locales.js';
import { chooseLocale, localeFromAcceptLanguage, localeFromUiLocales } from '../../src/i18n/negotiate.js';

const koa = new Koa();

/** The language chosen for a request with these headers and hints, as in the server. */
function choose(
  acceptLanguage: string,
  more: { uiLocales?: unknown; stored?: string | null } = {},
  fallback: Locale = 'en',
  headers: Record<string, string> = {},
) {
  const req = {
    headers: { ...headers, ...(acceptLanguage && { 'accept-language': acceptLanguage }) },
    socket: {},
  } as IncomingMessage;
  const ctx = koa.createContext(req, {} as ServerResponse);
  return localeOf(ctx, { defaultLocale: fallback, secureCookies: false }, more);
}

describe('choosing the language of a page', () => {
  it.each([
    ['de', 'de'],
    ['de-AT', 'de'],
    ['fr-CA,fr;q=0.9,en;q=0.5', 'fr'],
    ['en-US;q=0.5, es;q=0.9', 'es'],
    ['ja, de;q=0.3', 'de'],
    ['de;q=0, fr', 'fr'],
    ['ES-419', 'es'],
    // A more specific first choice is still the first choice: the negotiator Koa uses let a
    // lower-ranked exact match win (French for both).
    ['de-CH,fr;q=0.9,de;q=0.8', 'de'],
    ['en-US,fr;q=0.9,en;q=0.8', 'en'],
    ['fr;q=0.5, de-AT;q=0.8', 'de'],
    ['de ; q = 0.5, fr;q=0.4', 'de'],
    ['es, de', 'es'],
  ])('follows Accept-Language %j to %s (q-values, region falls back to its language)', (header, expected) => {
    expect(choose(header)).toBe(expected);
  });

  it('takes a wildcard as DEFAULT_LOCALE unless q=0 refuses it, and a refused language never', () => {
    expect(localeFromAcceptLanguage('ja, *;q=0.5, de;q=0.3', 'fr')).toBe('fr');
    expect(localeFromAcceptLanguage('fr;q=0, *', 'fr')).toBe('en');
    expect(localeFromAcceptLanguage('en;q=0, de;q=0, fr;q=0, es;q=0, *', 'en')).toBeUndefined();
    expect(localeFromAcceptLanguage('de;q=0', 'en')).toBeUndefined();
    expect(localeFromAcceptLanguage('de-AT;q=0, de', 'en')).toBe('de');
  });

  it('leaves out malformed entries and never throws', () => {
    expect(localeFromAcceptLanguage('de;q=abc, fr', 'en')).toBe('fr');
    expect(localeFromAcceptLanguage('de;q=2, es;q=0.5', 'en')).toBe('es');
    expect(localeFromAcceptLanguage('<script>, de-, -de, d e, es', 'en')).toBe('es');
    for (const header of [
      ';;,,q=1',
      ',',
      ';q=1',
      'x'.repeat(100_000),
      `${'de;'.repeat(10_000)}q=1`,
      '\u0000',
    ])
      expect(() => localeFromAcceptLanguage(header, 'en')).not.toThrow();
  });

  it('uses DEFAULT_LOCALE without Accept-Language, for a wildcard, and for languages it does not speak', () => {
    expect(choose('', {}, 'fr')).toBe('fr');
    expect(choose('*', {}, 'fr')).toBe('fr');
    expect(choose('ja, zh;q=0.8', {}, 'es')).toBe('es');
    expect(choose('x'.repeat(5000), {}, 'de')).toBe('de');
  });

  it("puts the app's ui_locales before the person's choice, and that before the browser", () => {
    expect(choose('de', { uiLocales: 'fr' })).toBe('fr');
    expect(choose('de', { uiLocales: 'ja fr-CA es' })).toBe('fr');
    expect(choose('de', { uiLocales: 'fr', stored: 'es' })).toBe('fr');
    expect(choose('de', { stored: 'es' })).toBe('es');
    expect(choose('de', { uiLocales: 'ja', stored: 'es' })).toBe('es');
  });

  it('ignores ui_locales and stored values it cannot use', () => {
    expect(localeFromUiLocales(undefined)).toBeUndefined();
    expect(localeFromUiLocales(['fr'])).toBeUndefined();
    expect(localeFromUiLocales('  ')).toBeUndefined();
    expect(choose('de', { uiLocales: 42, stored: 'klingon' })).toBe('de');
  });

  it('answers a header the same once it was kept, for each fallback', () => {
    for (let time = 0; time < 2; time++) {
      expect(chooseLocale({ acceptLanguage: '*;q=0.7' }, 'de')).toBe('de');
      expect(chooseLocale({ acceptLanguage: '*;q=0.7' }, 'fr')).toBe('fr');
      expect(choose('fr-CA,fr;q=0.9,en;q=0.5')).toBe('fr');
      expect(choose(`${'x-private;q=0.1, '.repeat(20)}*`, {}, 'es')).toBe('es');
    }
  });

  it("takes the browser's remembered choice for a page after ui_locales and before Accept-Language", () => {
    const { language } = cookieNames({ secureCookies: false });
    const remembered = { cookie: `${language}=fr` };
    expect(choose('de', {}, 'en', remembered)).toBe('fr');
    expect(choose('de', { uiLocales: 'es' }, 'en', remembered)).toBe('es');
    // The account's own answer wins over what the browser remembers, a choice of none too.
    expect(choose('de', { stored: 'es' }, 'en', remembered)).toBe('es');
    expect(choose('de', { stored: null }, 'en', remembered)).toBe('de');
    expect(choose('de', {}, 'en', { cookie: `${language}=klingon` })).toBe('de');
    // A page's script says its page's language in Accept-Language.
    expect(choose('de', {}, 'en', { ...remembered, accept: 'application/json' })).toBe('de');
  });
});
