import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa from 'koa';
import { localeOf } from '../../src/http/middleware/language.js';
import type { Locale } from '../../src/i18n/locales.js';
import { chooseLocale, localeFromUiLocales } from '../../src/i18n/negotiate.js';

const koa = new Koa();

/** The language chosen for a request with this Accept-Language and these hints, negotiated by Koa as in the server. */
function choose(
  acceptLanguage: string,
  more: { uiLocales?: unknown; stored?: string | null } = {},
  fallback: Locale = 'en',
) {
  const req = { headers: acceptLanguage ? { 'accept-language': acceptLanguage } : {} } as IncomingMessage;
  const ctx = koa.createContext(req, {} as ServerResponse);
  return localeOf(ctx, fallback, more);
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
  ])('follows Accept-Language %j to %s (q-values, region falls back to its language)', (header, expected) => {
    expect(choose(header)).toBe(expected);
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

  it('weighs each header against the fallback once, and answers it the same for that fallback after', () => {
    const asked: string[] = [];
    const hints = (acceptLanguage: string) => ({
      acceptLanguage,
      acceptsLanguages(languages: string[]) {
        asked.push(acceptLanguage);
        // As a wildcard does: the first language offered, which is the fallback.
        return languages[0]!;
      },
    });
    expect(chooseLocale(hints('*;q=0.7'), 'de')).toBe('de');
    expect(chooseLocale(hints('*;q=0.7'), 'de')).toBe('de');
    expect(chooseLocale(hints('*;q=0.7'), 'fr')).toBe('fr');
    expect(chooseLocale(hints('*;q=0.7'), 'fr')).toBe('fr');
    expect(asked).toEqual(['*;q=0.7', '*;q=0.7']);
    // A long header is weighed every time, not kept.
    const long = `${'x-private;q=0.1, '.repeat(20)}*`;
    chooseLocale(hints(long), 'es');
    chooseLocale(hints(long), 'es');
    expect(asked.filter((header) => header === long)).toHaveLength(2);
    // The negotiator as the server runs it agrees after the header was kept.
    expect(choose('fr-CA,fr;q=0.9,en;q=0.5')).toBe('fr');
    expect(choose('fr-CA,fr;q=0.9,en;q=0.5')).toBe('fr');
  });
});
