import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { ROOT } from '../../src/paths.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { eventually } from '../support/eventually.js';
import { icoOf, jpegDeclaring, pngDeclaring } from '../support/images.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { autofocusedField } from '../support/refusedFields.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/** A 1×1 PNG, and images of each accepted kind. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);
const ICO = icoOf(PNG);
const JPEG = jpegDeclaring(64, 32);
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
/** A PNG signature followed by `size` bytes in all: a file of that size of the right type. */
const pngOfSize = (size: number) => Buffer.concat([PNG, Buffer.alloc(size - PNG.length, 0)]);

const fileBlob = (bytes: Buffer, type: string) => new Blob([new Uint8Array(bytes)], { type });

/** The row an admin's changes land in, images as their sizes, to tell "nothing changed". */
async function brandingRow(sesame: TestApp) {
  const row = await sesame.db.selectFrom('branding').selectAll().executeTakeFirst();
  return row && { ...row, logo: row.logo?.length, favicon: row.favicon?.length, updated_at: undefined };
}

const titleOf = (page: PageResponse) => /<title>([^<]*)<\/title>/.exec(page.text)?.[1];
const stylesheetOf = (page: PageResponse) =>
  /<link rel="stylesheet" href="(\/brand\.css[^"]*)">/.exec(page.text)?.[1];

describe('branding from the config (BRAND_*)', () => {
  let sesame: TestApp;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-brand-'));
    fs.writeFileSync(path.join(dir, 'logo.png'), PNG);
    fs.writeFileSync(path.join(dir, 'favicon.ico'), ICO);
    sesame = await startTestApp({
      BRAND_NAME: 'Acme Login',
      BRAND_ACCENT: '#005A00',
      BRAND_LOGO: path.join(dir, 'logo.png'),
      BRAND_FAVICON: path.join(dir, 'favicon.ico'),
    });
  });

  afterAll(async () => {
    await sesame.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows the name, the logo (named by the brand) and the favicon on every page', async () => {
    const page = await new Person(sesame.baseUrl).browser.request('/no/such/page');
    expect(page.status).toBe(404);
    expect(titleOf(page)).toMatch(/ · Acme Login$/);
    expect(page.text).toMatch(/<img src="\/brand\/logo\?v=[\w-]+" alt="Acme Login">/);
    expect(page.text).toMatch(/<link rel="icon" href="\/brand\/favicon\?v=[\w-]+">/);
  });

  it("shows it on the provider's own pages too: an authorization error and the signed-out page", async () => {
    const browser = new Person(sesame.baseUrl).browser;
    for (const url of ['/auth?client_id=nobody&response_type=code&scope=openid', '/session/end/success']) {
      const page = await browser.request(url);
      expect(page.text).toContain('<html');
      expect(titleOf(page)).toMatch(/ · Acme Login$/);
      expect(page.text).toMatch(/<img src="\/brand\/logo\?v=[\w-]+" alt="Acme Login">/);
    }
  });

  it('serves the accent as a stylesheet, with white labels on it and a lighter variant in dark mode', async () => {
    const page = await new Person(sesame.baseUrl).browser.request('/no/such/page');
    const response = await fetch(new URL(stylesheetOf(page)!, sesame.baseUrl));
    expect(response.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const css = await response.text();
    expect(css).toContain(':root { --accent: #005a00; --on-accent: #ffffff; }');
    expect(css).toMatch(
      /@media \(prefers-color-scheme: dark\) \{ :root \{ --accent: #[0-9a-f]{6}; --on-accent: #111827; \} \}/,
    );
    // Revalidation by ETag: the same stylesheet is a 304 with no body.
    const again = await fetch(`${sesame.baseUrl}/brand.css`, {
      headers: { 'if-none-match': response.headers.get('etag')! },
    });
    expect(again.status).toBe(304);
    expect(again.headers.get('cache-control')).toBe('public, max-age=300');
  });

  it('serves the images with their exact type, nosniff and an ETag', async () => {
    for (const [url, bytes, type] of [
      ['/brand/logo', PNG, 'image/png'],
      ['/brand/favicon', ICO, 'image/x-icon'],
      ['/favicon.ico', ICO, 'image/x-icon'],
    ] as const) {
      const response = await fetch(`${sesame.baseUrl}${url}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe(type);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(Buffer.from(await response.arrayBuffer())).toEqual(bytes);
      const etag = response.headers.get('etag')!;
      expect(etag).toMatch(/^"[\w-]+"$/);
      expect((await fetch(`${sesame.baseUrl}${url}`, { headers: { 'if-none-match': etag } })).status).toBe(
        304,
      );
    }
  });
});

describe('branding without settings', () => {
  let sesame: TestApp;
  beforeAll(async () => {
    sesame = await startTestApp({ RP_NAME: 'Example Corp' });
  });
  afterAll(() => sesame.stop());

  it("shows RP_NAME and no logo (a 404), and links Sesame's own favicon at /favicon.ico", async () => {
    const page = await new Person(sesame.baseUrl).browser.request('/no/such/page');
    expect(titleOf(page)).toMatch(/ · Example Corp$/);
    expect(page.text).not.toContain('/brand/logo');
    for (const url of ['/brand/logo', '/brand/favicon']) {
      expect((await fetch(`${sesame.baseUrl}${url}`)).status).toBe(404);
    }
    const linked = /<link rel="icon" href="(\/favicon\.ico\?v=[\w-]+)">/.exec(page.text)?.[1];
    expect(linked).toBeDefined();
    const builtIn = fs.readFileSync(path.join(ROOT, 'public', 'favicon.ico'));
    // Browsers ask for /favicon.ico whatever the page links: it is the same icon, never a 404.
    for (const url of [linked!, '/favicon.ico']) {
      const response = await fetch(`${sesame.baseUrl}${url}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/x-icon');
      expect(Buffer.from(await response.arrayBuffer())).toEqual(builtIn);
      expect(response.headers.get('cache-control')).toBe(
        url === linked ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
      );
      const etag = response.headers.get('etag')!;
      expect(linked).toBe(`/favicon.ico?v=${etag.replaceAll('"', '')}`);
      const again = await fetch(`${sesame.baseUrl}${url}`, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
    }
    const css = await (await fetch(`${sesame.baseUrl}/brand.css`)).text();
    expect(css).toContain('--accent: #4f46e5; --on-accent: #ffffff;');
  });
});

describe('/admin/branding', () => {
  let sesame: TestApp;
  /** A second server on the same database (Postgres only: the embedded database has one owner). */
  let other: TestApp | undefined;
  let admin: Person;
  let adminId: string;
  let someone: Person;

  /** The admin confirms with their passkey, as the page's script asks before the form posts. */
  async function confirmWithPasskey() {
    const page = await admin.browser.request('/admin/branding');
    expect((await stepUp(admin, page.csrf())).status).toBe(200);
  }

  async function signUp(email: string) {
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(asPage(await person.browser.follow('/account')), email);
    await person.browser.follow(next);
    return person;
  }

  beforeAll(async () => {
    sesame = await startTestApp();
    if (onPostgres) {
      const { DATABASE_URL, DATABASE_DIRECT_URL } = sesame.env;
      other = await startTestApp({ DATABASE_URL: DATABASE_URL!, DATABASE_DIRECT_URL: DATABASE_DIRECT_URL! });
    }
    admin = await signUp('brand-admin@example.com');
    adminId = (await usersQueries.findByEmail(sesame.db, 'brand-admin@example.com'))!.id;
    await usersQueries.update(sesame.db, adminId, { isAdmin: true });
    await confirmWithPasskey();
    someone = await signUp('brand-someone@example.com');
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  /** The form page and a multipart body with its CSRF token and these fields. */
  async function brandingForm(fields: Record<string, string | Blob>, person = admin) {
    const page = await person.browser.request('/admin/branding');
    const body = new FormData();
    if (page.status === 200) body.set('_csrf', page.csrf());
    for (const [name, value] of Object.entries(fields)) {
      if (typeof value === 'string') body.set(name, value);
      else body.set(name, value, `${name}.bin`);
    }
    return body;
  }

  const post = (person: Person, multipart: FormData, headers: Record<string, string> = {}) =>
    person.browser.request('/admin/branding', { multipart, headers });

  it('sets the name, accent, logo and favicon; every page shows them, and the audit log says who', async () => {
    const form = await brandingForm({
      name: 'Acme',
      accent: '#0B5394',
      logo: fileBlob(PNG, 'image/png'),
      favicon: fileBlob(ICO, 'image/vnd.microsoft.icon'),
    });
    const saved = await post(admin, form);
    expect(saved.status).toBe(302);
    expect(saved.location()).toBe(`${sesame.baseUrl}/admin/branding?done=branding-saved`);

    const page = await new Person(sesame.baseUrl).browser.request('/no/such/page');
    expect(titleOf(page)).toMatch(/ · Acme$/);
    expect(page.text).toMatch(/<img src="\/brand\/logo\?v=[\w-]+" alt="Acme">/);
    const css = await (await fetch(new URL(stylesheetOf(page)!, sesame.baseUrl))).text();
    expect(css).toContain('--accent: #0b5394;');
    const logo = await fetch(`${sesame.baseUrl}/brand/logo`);
    if (logo.status !== 200) throw new Error(await logo.text());
    expect(logo.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await logo.arrayBuffer())).toEqual(PNG);
    const favicon = await fetch(`${sesame.baseUrl}/brand/favicon`);
    expect(favicon.headers.get('content-type')).toBe('image/x-icon');

    const invite = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'new@example.com',
      actor: 'test',
    });
    const linkPage = await new Person(sesame.baseUrl).browser.request(new URL(invite.url).pathname);
    expect(linkPage.text).toContain('You were invited to Acme as');

    const events = await auditQueries.recent(sesame.db, 5);
    expect(events.find((e) => e.action === 'branding.update')).toMatchObject({
      actor: expect.stringMatching(/^user:/),
      details: expect.objectContaining({ changed: ['name', 'accent', 'logo', 'favicon'] }),
    });
  });

  it('saves nothing without a passkey step-up from the last five minutes: the name and logo are what people sign in to', async () => {
    const before = await brandingRow(sesame);
    const page = await admin.browser.request('/admin/branding');
    expect(page.text).toMatch(/<form method="post" action="\/admin\/branding"[^>]*data-step-up>/);
    expect(page.text).toContain('id="status"');
    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    const form = () => brandingForm({ name: 'Evil Corp', logo: fileBlob(PNG, 'image/png') });
    const refused = await post(admin, await form());
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('Confirm with one of your passkeys');
    expect(await brandingRow(sesame)).toEqual(before);
    await confirmWithPasskey();
    expect((await post(admin, await form())).status).toBe(302);
    expect(await brandingRow(sesame)).toMatchObject({ name: 'Evil Corp', logo: PNG.length });
  });

  it('reaches another server on the same database through the change notice', async () => {
    // Written as another instance would: straight to the table, this server told nothing.
    await sesame.db.updateTable('branding').set({ name: 'Acme Europe' }).execute();
    for (const app of [sesame, other].filter((a) => a !== undefined)) {
      expect(
        await eventually(async () => {
          const page = await new Person(app.baseUrl).browser.request('/no/such/page');
          return titleOf(page)?.endsWith(' · Acme Europe') ?? false;
        }, 5_000),
      ).toBe(true);
    }
  });

  it('keeps an image when none is sent, and returns to the config when fields are emptied and images removed', async () => {
    // As a browser sends a file input left empty: a part with no file name and no bytes.
    const keep = await brandingForm({
      name: 'Acme',
      accent: '',
      logo: fileBlob(Buffer.alloc(0), 'application/octet-stream'),
    });
    expect((await post(admin, keep)).status).toBe(302);
    expect((await fetch(`${sesame.baseUrl}/brand/logo`)).status).toBe(200);
    expect(await brandingRow(sesame)).toMatchObject({ name: 'Acme', accent: null, logo: PNG.length });
    const reset = await brandingForm({ name: '', accent: '', remove_logo: 'on', remove_favicon: 'on' });
    expect((await post(admin, reset)).status).toBe(302);
    expect((await fetch(`${sesame.baseUrl}/brand/logo`)).status).toBe(404);
    const page = await new Person(sesame.baseUrl).browser.request('/no/such/page');
    expect(titleOf(page)).toMatch(/ · Sesame$/);
  });

  describe('refuses bad input with a 4xx and changes nothing', () => {
    let before: Awaited<ReturnType<typeof brandingRow>>;
    beforeAll(async () => {
      expect((await post(admin, await brandingForm({ name: 'Kept', accent: '#333333' }))).status).toBe(302);
      before = await brandingRow(sesame);
    });
    afterEach(async () => {
      expect(await brandingRow(sesame)).toEqual(before);
    });

    it.each([
      ['an accent that is not a colour', { accent: 'red' }, 'must be a hex colour'],
      ['an accent too light to read on white', { accent: '#7a7a7a' }, 'WCAG AA needs at least 4.5:1'],
      ['a name longer than 64 characters', { name: 'x'.repeat(65) }, 'at most 64 characters'],
      ['a name with a line break', { name: 'Acme\r\nCorp' }, 'must not contain control characters'],
      ['a name with a bidi override', { name: 'Acme\u202eCorp' }, 'must not contain control characters'],
      ['a name of invisible characters only', { name: '\u200b\u2060\u00ad' }, 'must show something'],
      ['an SVG logo', { logo: fileBlob(SVG, 'image/png') }, 'must be a PNG, JPEG, WebP or ICO image'],
      [
        'a text file as favicon',
        { favicon: fileBlob(Buffer.from('hello'), 'image/x-icon') },
        'must be a PNG',
      ],
      ['a favicon over 64 KB', { favicon: fileBlob(pngOfSize(64 * 1024 + 1), 'image/png') }, 'at most 64 KB'],
      [
        'a small logo that declares 30000×30000 pixels',
        { logo: fileBlob(pngDeclaring(30000, 30000, 200 * 1024), 'image/png') },
        'The logo must be at most 4096×4096 pixels (this one is 30000×30000)',
      ],
      [
        'a favicon whose ICO holds a PNG of 20000×20000 pixels',
        { favicon: fileBlob(icoOf(PNG, pngDeclaring(20000, 20000)), 'image/x-icon') },
        'The favicon must be at most 1024×1024 pixels (this one is 20000×20000)',
      ],
    ])('%s: 400 with the form and its error', async (_, fields, message) => {
      const refused = await post(admin, await brandingForm({ name: 'Other', ...fields }));
      expect(refused.status).toBe(400);
      expect(refused.text).toContain(message);
      expect(refused.text).toContain('aria-invalid="true"');
      // The keyboard is on the refused field, described by its hint and its error.
      const [name] = Object.keys(fields);
      expect(autofocusedField(refused.text)).toEqual({
        id: `branding-${name}`,
        invalid: true,
        describedBy: `branding-${name}-hint branding-${name}-error`,
      });
    });

    it('a logo over 256 KB: 413', async () => {
      const refused = await post(
        admin,
        await brandingForm({ logo: fileBlob(pngOfSize(256 * 1024 + 1), 'image/png') }),
      );
      expect(refused.status).toBe(413);
      expect(refused.text).toContain('at most 256 KB');
    });

    it('a file in a field that takes none, and a broken multipart body: 400', async () => {
      const unexpected = await post(
        admin,
        await brandingForm({ name: 'x', avatar: fileBlob(JPEG, 'image/jpeg') }),
      );
      expect(unexpected.status).toBe(400);
      const csrf = (await admin.browser.request('/admin/branding')).csrf();
      const broken = await admin.browser.request('/admin/branding', {
        body: `--b\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nTruncated`,
        headers: { 'content-type': 'multipart/form-data; boundary=b' },
      });
      expect(broken.status).toBe(400);
    });

    it('no CSRF token, or a foreign origin: 403', async () => {
      const form = await brandingForm({ name: 'Forged' });
      form.delete('_csrf');
      expect((await post(admin, form)).status).toBe(403);
      const foreign = await brandingForm({ name: 'Forged' });
      expect((await post(admin, foreign, { origin: 'https://evil.example' })).status).toBe(403);
    });

    it('a signed-in person who is not an admin, and a visitor: 403 and 401', async () => {
      expect((await someone.browser.request('/admin/branding')).status).toBe(403);
      const form = await brandingForm({ name: 'Mine' }, someone);
      form.set('_csrf', (await someone.browser.request('/account')).csrf());
      expect((await post(someone, form)).status).toBe(403);
      const visitor = new Person(sesame.baseUrl);
      expect((await post(visitor, await brandingForm({ name: 'Mine' }, visitor))).status).toBe(401);
    });
  });
});
