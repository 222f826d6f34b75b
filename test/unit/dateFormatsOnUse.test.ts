import { jest } from '@jest/globals';
import type { Config } from '../../src/config.js';

/**
 * A language's date format is made on its first date, not when the catalogs load: the four at
 * import read ~1.9 MB of ICU's data into a server that may only sign people in (catalog.ts).
 */
describe("the catalogs' date formats", () => {
  it('are made for a language on its first date, once', async () => {
    const made: string[] = [];
    const DateTimeFormat = Intl.DateTimeFormat;
    const spy = jest.spyOn(Intl, 'DateTimeFormat').mockImplementation(((
      locale?: string,
      options?: Intl.DateTimeFormatOptions,
    ) => {
      if (options?.timeZoneName === 'short') made.push(String(locale));
      return new DateTimeFormat(locale, options);
    }) as typeof Intl.DateTimeFormat);
    try {
      const { translatorFor } = await import('../../src/i18n/catalog.js');
      const { composeMail } = await import('../../src/mail/compose.js');
      expect(made).toEqual([]);
      const at = new Date('2026-12-02T12:36:00Z');
      const invite = (locale: 'de' | 'fr') =>
        composeMail(
          { rpName: 'Acme' } as Config,
          'invite',
          'ada@example.com',
          { email: 'ada@example.com', url: 'https://id.example.com/link/x', expiresAt: at, admin: false },
          locale,
        ).text;
      expect(invite('de')).toContain('läuft am 2. Dez. 2026, 12:36 UTC ab.');
      expect(invite('de')).toContain('läuft am 2. Dez. 2026, 12:36 UTC ab.');
      expect(invite('fr')).toContain('expire le 2 déc. 2026, 12:36 UTC.');
      expect(translatorFor('en')).toBeDefined();
      expect(made).toEqual(['de', 'fr']);
    } finally {
      spy.mockRestore();
    }
  });
});
