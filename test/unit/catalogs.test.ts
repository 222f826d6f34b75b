import fs from 'node:fs';
import path from 'node:path';
import { type Catalog, readCatalog, translatorFor } from '../../src/i18n/catalog.js';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';
import { LOCALES_DIR } from '../../src/paths.js';

/**
 * The message catalogs (locales/*.json) against the English one: a translator who misses
 * a key, leaves one empty, adds one the code never asks for, drops or renames a
 * `{{placeholder}}`, or changes the markup of an `…Html` message fails this test.
 */

const PLURAL = /_(zero|one|two|few|many|other)$/;

/** Every message under its dotted key (`login.title`). */
function flatten(catalog: Catalog, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(catalog)) {
    const dotted = prefix + key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [inner, text] of flatten(value, `${dotted}.`)) out.set(inner, text);
    } else {
      out.set(dotted, value);
    }
  }
  return out;
}

/** Messages by key with plural forms (`_one`, `_other`…) grouped under their base key. */
function byBaseKey(catalog: Catalog): Map<string, Map<string, unknown>> {
  const out = new Map<string, Map<string, unknown>>();
  for (const [key, text] of flatten(catalog)) {
    const form = PLURAL.exec(key)?.[1] ?? '';
    const base = key.replace(PLURAL, '');
    if (!out.has(base)) out.set(base, new Map());
    out.get(base)!.set(form, text);
  }
  return out;
}

/** The names of a message's placeholders, whatever their format (`{{scopes, list}}` → scopes). */
function placeholders(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([\w.]+)[^}]*\}\}/g)].map((match) => match[1]!).sort();
}

/** The tags of a message, in order (`<strong>`, `</strong>`, `<time>`…). */
function tags(text: string): string[] {
  return [...text.matchAll(/<\/?([a-z]+)/g)].map((match) => match[0]);
}

const english = byBaseKey(readCatalog('en'));

describe('message catalogs', () => {
  it('has one catalog file for each supported language, and no other', () => {
    const files = fs
      .readdirSync(LOCALES_DIR)
      .filter((name) => name.endsWith('.json'))
      .map((name) => path.basename(name, '.json'))
      .sort();
    expect(files).toEqual([...SUPPORTED_LOCALES].sort());
  });

  describe.each(SUPPORTED_LOCALES)('%s', (locale) => {
    const catalog = byBaseKey(readCatalog(locale));
    const pluralForms = new Intl.PluralRules(locale).resolvedOptions().pluralCategories;

    it('has every key of the English catalog and no other', () => {
      const missing = [...english.keys()].filter((key) => !catalog.has(key));
      const extra = [...catalog.keys()].filter((key) => !english.has(key));
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    });

    it('has only non-empty strings', () => {
      const bad = [...flatten(readCatalog(locale))]
        .filter(([, text]) => typeof text !== 'string' || text.trim() === '')
        .map(([key]) => key);
      expect(bad).toEqual([]);
    });

    it("has exactly the plural forms the language's rules use", () => {
      for (const [key, forms] of catalog) {
        if (!english.get(key)?.has('other')) continue;
        expect({ key, forms: [...forms.keys()].sort() }).toEqual({ key, forms: [...pluralForms].sort() });
      }
    });

    it('uses the same placeholders and markup as English in every message', () => {
      for (const [key, forms] of catalog) {
        const source = [...(english.get(key)?.values() ?? [])].map(String);
        for (const text of [...forms.values()].map(String)) {
          expect({ key, placeholders: placeholders(text) }).toEqual({
            key,
            placeholders: placeholders(source.at(-1) ?? ''),
          });
          expect({ key, tags: tags(text) }).toEqual({ key, tags: tags(source.at(-1) ?? '') });
          if (!key.endsWith('Html'))
            expect({ key, markup: /[<>]/.test(text) }).toEqual({ key, markup: false });
        }
      }
    });
  });
});

describe('messages on pages', () => {
  it('inserts values into a message with markup as text, never as markup', () => {
    const html = translatorFor('de').html('consent.leadHtml', { client: '<img src=x onerror=alert(1)>&' });
    expect(html).toBe('<strong>&lt;img src=x onerror=alert(1)&gt;&amp;</strong> möchte:');
  });

  it('writes every message with markup exactly as escaping its values for that one call does', () => {
    const hostile = `<b class="x">Tom & 'Jerry'/</b>`;
    let compared = 0;
    for (const locale of SUPPORTED_LOCALES) {
      const translator = translatorFor(locale);
      for (const [key, text] of flatten(readCatalog(locale))) {
        if (!key.replace(PLURAL, '').endsWith('Html') || typeof text !== 'string') continue;
        const values: Record<string, unknown> = {};
        for (const match of text.matchAll(/\{\{\s*([\w.]+)\s*(?:,\s*(\w+))?[^}]*\}\}/g)) {
          const [, name, format] = match;
          values[name!] =
            format === 'datetime' ? new Date('2026-12-05T10:40:00Z') : name === 'count' ? 2 : hostile;
        }
        // The old way: i18next asked to escape for this call alone.
        const perCall = translator.t(key, { ...values, interpolation: { escapeValue: true } });
        expect([locale, key, translator.html(key, values)]).toEqual([locale, key, perCall]);
        if (Object.values(values).includes(hostile)) expect(perCall).not.toContain(hostile);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(40);
  });

  it('writes plurals, lists and dates as each language does', () => {
    expect(translatorFor('en').t('account.passkeyCount', { count: 1 })).toBe('You have 1 passkey.');
    expect(translatorFor('fr').t('account.passkeyCount', { count: 2 })).toBe('Vous avez 2 clés d’accès.');
    expect(
      translatorFor('de').t('consent.apiWithScopes', { api: 'Notes', scopes: ['read', 'write', 'admin'] }),
    ).toBe('Notes für Sie nutzen: read, write und admin');
    expect(translatorFor('en').t('consent.apiWithScopes', { api: 'Notes', scopes: ['read', 'write'] })).toBe(
      'Use Notes for you: read, write',
    );
    expect(translatorFor('de').t('account.lastUsed', { date: '2026-12-02T12:36:00Z' })).toBe(
      'Zuletzt verwendet am 2. Dez. 2026, 12:36 UTC',
    );
    expect(translatorFor('en').t('account.appSince', { date: new Date('2026-12-02T12:36:00Z') })).toBe(
      'since Dec 2, 2026, 12:36 PM UTC',
    );
  });

  it('says a plain message in each language every time it is asked, kept or not', () => {
    for (let i = 0; i < 2; i++) {
      for (const locale of SUPPORTED_LOCALES) {
        expect(translatorFor(locale).t('account.title')).toBe(
          flatten(readCatalog(locale)).get('account.title'),
        );
      }
      // A key no catalog has comes back as itself, as from i18next.
      expect(translatorFor('de').t('no.such.key')).toBe('no.such.key');
    }
    expect(translatorFor('de').t('account.title')).not.toBe(translatorFor('en').t('account.title'));
  });
});
