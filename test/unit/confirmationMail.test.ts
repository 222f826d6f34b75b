import type { Config } from '../../src/config.js';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';
import { composeMail } from '../../src/mail/compose.js';

/** Only the issuer's name of the configuration reaches a mail's words. */
const config = { rpName: 'Acme' } as Config;
const data = {
  email: 'ada@example.com',
  url: 'https://id.example.com/verify/x',
  expiresAt: new Date('2026-12-02T12:36:00Z'),
  mustVerify: false,
};

describe('the mail with a new link to confirm an address', () => {
  it('asks to confirm the address in every language, and welcomes nobody again', () => {
    const subjects = Object.fromEntries(
      SUPPORTED_LOCALES.map((locale) => {
        const mail = composeMail(config, 'confirmation', 'ada@example.com', data, locale);
        const welcome = composeMail(config, 'welcome', 'ada@example.com', data, locale);
        expect(mail.subject).not.toBe(welcome.subject);
        expect(mail.text).not.toContain(welcome.text.split('\n')[0]);
        expect(mail.text).toContain(data.url);
        expect(mail.html).toContain('<strong>ada@example.com</strong>');
        return [locale, mail.subject];
      }),
    );
    expect(subjects).toEqual({
      en: 'Confirm your email address for Acme',
      de: 'Bestätigen Sie Ihre E-Mail-Adresse für Acme',
      fr: 'Confirmez votre adresse e-mail pour Acme',
      es: 'Confirme su dirección de correo electrónico en Acme',
    });
  });
});
