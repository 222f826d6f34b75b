import type { Config } from '../../src/config.js';
import { composeMail } from '../../src/mail/compose.js';

/** Only the issuer's name of the configuration reaches a mail's words. */
const config = { rpName: 'Acme' } as Config;
const at = new Date('2026-12-02T12:36:00Z');

describe('dates in mails', () => {
  it("writes a link's expiry as the recipient's language does, in UTC", () => {
    const mail = (locale: 'en' | 'de' | 'fr' | 'es') =>
      composeMail(
        config,
        'invite',
        'ada@example.com',
        { email: 'ada@example.com', url: 'https://id.example.com/link/x', expiresAt: at, admin: false },
        locale,
      );
    expect(mail('de').text).toContain('läuft am 2. Dez. 2026, 12:36 UTC ab.');
    expect(mail('de').html).toContain('läuft am 2. Dez. 2026, 12:36 UTC ab.');
    expect(mail('fr').text).toContain('expire le 2 déc. 2026, 12:36 UTC.');
    expect(mail('es').text).toContain('caduca el 2 dic 2026, 12:36 UTC.');
    expect(mail('en').text).toContain('expires on Dec 2, 2026, 12:36 PM UTC.');
  });

  it('writes the time of a security notice in the recipient language', () => {
    const notice = composeMail(
      config,
      'notice',
      'ada@example.com',
      {
        notice: 'passkey_added',
        email: 'ada@example.com',
        passkeyName: 'Laptop',
        at,
        accountUrl: 'https://id.example.com/account',
      },
      'de',
    );
    expect(notice.text).toContain('Seit 2. Dez. 2026, 12:36 UTC kann sich ein neuer Passkey (Laptop)');
    expect(notice.html).toContain('Seit 2. Dez. 2026, 12:36 UTC kann sich ein neuer Passkey (Laptop)');
  });
});
