import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Brand } from '../../src/branding/brand.js';
import { sendPage, sendSlottedPage, showBrandOn } from '../../src/http/views.js';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';

/**
 * The login page is rendered once per app, language and brand with markers where its
 * per-request values go (views.ts, sendSlottedPage); each view puts its own values there.
 * What a browser gets must be exactly the page rendered whole, whatever the values hold.
 */

const brand = (name: string, logoEtag?: string): Brand => ({
  name,
  palette: {} as Brand['palette'],
  logoEtag,
  faviconEtag: undefined,
  css: '',
  cssEtag: `"${name.length}css"`,
  overridden: { name: true, accent: false, logo: Boolean(logoEtag), favicon: false },
});

interface PageRequest {
  locale: string;
  brand: Brand;
  client: { name: string };
  perRequest: Record<string, string>;
  signupOpen: boolean;
}

let pending: PageRequest;
const app = new Koa();
app.use((ctx) => {
  const { locale, brand, client, perRequest, signupOpen } = pending;
  ctx.state.locale = locale as never;
  showBrandOn(ctx.req, brand);
  const data = { title: 'Sign in', script: 'login', client, signupOpen, selfRecovery: true };
  if (ctx.path === '/whole') sendPage(ctx, 'login', { ...data, ...perRequest });
  else sendSlottedPage(ctx, 'login', data, perRequest);
});
const server = app.listen(0, '127.0.0.1');
const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
beforeAll(
  () => new Promise((resolve) => (server.listening ? resolve(undefined) : server.once('listening', resolve))),
);
afterAll(() => new Promise((resolve) => server.close(resolve)));

async function bothWays(request: PageRequest) {
  pending = request;
  const whole = await fetch(`${base()}/whole`);
  const slotted = await fetch(`${base()}/slotted`);
  return { whole, slotted, wholeText: await whole.text(), slottedText: await slotted.text() };
}

const hostile = `"><script>alert('x')</script>&amp;`;

describe('a page rendered once with its per-request values put in', () => {
  it('is the page rendered whole, in every language, for values that need escaping', async () => {
    for (const locale of SUPPORTED_LOCALES) {
      for (const value of ['plain-value', hostile]) {
        const { whole, slotted, wholeText, slottedText } = await bothWays({
          locale,
          brand: brand('Acme <Corp>', 'logo1'),
          client: { name: `App ${value}` },
          perRequest: {
            uid: `uid-${value}`,
            csrf: `csrf-${value}`,
            passkeyOptions: JSON.stringify({ c: value }),
          },
          signupOpen: true,
        });
        expect(slottedText).toBe(wholeText);
        expect(slottedText).not.toContain('<script>');
        expect(slotted.headers.get('content-language')).toBe(locale);
        expect(slotted.headers.get('vary')).toBe(whole.headers.get('vary'));
        expect(slotted.headers.get('content-type')).toBe(whole.headers.get('content-type'));
      }
    }
  });

  it('shows each request its own values, not the ones it was first rendered with', async () => {
    const request = (n: number): PageRequest => ({
      locale: 'en',
      brand: brand('Sesame'),
      client: { name: 'Bench App' },
      perRequest: { uid: `uid${n}`, csrf: `csrf${n}`, passkeyOptions: `{"challenge":"c${n}"}` },
      signupOpen: false,
    });
    const first = await bothWays(request(1));
    const second = await bothWays(request(2));
    expect(second.slottedText).toBe(second.wholeText);
    expect(second.slottedText).not.toContain('uid1');
    expect(second.slottedText).toContain('data-uid="uid2"');
    expect(second.slottedText).toContain('&quot;challenge&quot;:&quot;c2&quot;');
    expect(first.slottedText).toContain('name="_csrf" value="csrf1"');
  });

  it('follows what else the page says: the app, the brand, the language, what is offered', async () => {
    const perRequest = { uid: 'u', csrf: 'c', passkeyOptions: '{}' };
    const variants: PageRequest[] = [
      { locale: 'en', brand: brand('One'), client: { name: 'A' }, perRequest, signupOpen: true },
      { locale: 'en', brand: brand('One'), client: { name: 'B' }, perRequest, signupOpen: true },
      { locale: 'en', brand: brand('Two'), client: { name: 'B' }, perRequest, signupOpen: true },
      { locale: 'en', brand: brand('Two'), client: { name: 'B' }, perRequest, signupOpen: false },
      { locale: 'de', brand: brand('Two'), client: { name: 'B' }, perRequest, signupOpen: false },
    ];
    const pages = new Set<string>();
    for (const variant of variants) {
      const { slottedText, wholeText } = await bothWays(variant);
      expect(slottedText).toBe(wholeText);
      pages.add(slottedText);
    }
    expect(pages.size).toBe(variants.length);
  });

  it('renders whole a page whose value is missing or empty, as the view tests for it', async () => {
    const missingOrEmpty: Array<Record<string, string>> = [
      { uid: 'u', csrf: 'c' },
      { uid: 'u', csrf: 'c', passkeyOptions: '' },
    ];
    for (const perRequest of missingOrEmpty) {
      const { slottedText, wholeText } = await bothWays({
        locale: 'en',
        brand: brand('Sesame'),
        client: { name: 'App' },
        perRequest,
        signupOpen: true,
      });
      expect(slottedText).toBe(wholeText);
      expect(slottedText).not.toContain('data-passkey-options');
    }
  });
});
