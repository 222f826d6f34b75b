import { createLogger } from '../../src/logger.js';
import { BrowserSession } from '../support/browser.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Sesame's pages opened at another address than ISSUER's (http://127.0.0.1:P for
 * http://localhost:P, or http for an https ISSUER): their forms are refused, and the page
 * and the log say why.
 */
describe('a page opened at another address than ISSUER', () => {
  let sesame: TestApp;
  const lines: string[] = [];

  beforeAll(async () => {
    sesame = await startTestApp({}, { log: createLogger('warn', (line) => lines.push(line)) });
  });

  afterAll(() => sesame.stop());

  const warnings = () =>
    lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.level === 'warn' && String(entry.msg).includes('another address'));

  it('refuses its form with a message naming both addresses, in the page language, and logs it once a minute', async () => {
    // A browser at http://127.0.0.1:P: its Origin is the address it asked, Host included.
    const browser = new BrowserSession(sesame.listenUrl);
    const english = await browser.request('/account/logout', { form: {} });
    expect(english.status).toBe(403);
    expect(english.text).toContain(
      `This page was opened at ${sesame.listenUrl}, but this site is served at ${sesame.baseUrl}: open it there.`,
    );
    browser.headers['accept-language'] = 'de';
    const german = await browser.request('/account/logout', { form: {} });
    expect(german.status).toBe(403);
    expect(german.text).toContain(
      `Diese Seite wurde unter ${sesame.listenUrl} geöffnet, diese Website ist aber unter ${sesame.baseUrl} zu finden`,
    );
    // Two refusals, one line: a flood of them cannot fill the log.
    expect(warnings()).toEqual([
      expect.objectContaining({
        opened_at: sesame.listenUrl,
        issuer: sesame.baseUrl,
        hint: 'if people reach Sesame at opened_at (another host name, a proxy), set ISSUER to that address (https off localhost, for passkeys)',
      }),
    ]);
  });

  it('refuses a foreign origin as before, without naming it', async () => {
    const browser = new BrowserSession(sesame.listenUrl);
    const foreign = await browser.request('/account/logout', {
      form: {},
      headers: { origin: 'https://evil.example.com' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('Cross-origin request refused');
    expect(foreign.text).not.toContain('evil.example.com');
  });
});
