/**
 * The languages Sesame's pages speak: one catalog per code in `locales/<code>.json`. To add
 * one, copy `locales/en.json`, translate it, and add the code here; test/unit/catalogs.test.ts
 * fails until every key of the English catalog is translated.
 */
export const SUPPORTED_LOCALES = ['en', 'de', 'fr', 'es'] as const;

export type Locale = (typeof SUPPORTED_LOCALES)[number];

export function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (SUPPORTED_LOCALES as readonly string[]).includes(value);
}
