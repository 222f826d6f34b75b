import { createApiKey } from '../../src/admin/apiKeys.js';
import { mailOutboxQueries } from '../../src/db/queries/mailOutbox.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { eventually } from '../support/eventually.js';
import { type MailServer, startMailServer, TEST_MAIL_TIMING } from '../support/mailServer.js';
import { Person } from '../support/oidcFlow.js';
import { runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Names and email addresses as people and admins type them. An address must be one plain
 * address, because the mail goes to what the mail library reads in it; a name must hold no
 * control character, because the CLI prints names on an admin's terminal. Found by probing a
 * running server (2026-12-06): `ceo<attacker@evil.example>` signed up, its welcome mail went
 * to attacker@evil.example, and the link in it made the address "verified"; a name with ESC
 * retitled and cleared the terminal of an admin who ran `sesame users list`.
 */
describe('names and email addresses people and admins type', () => {
  let sesame: TestApp;
  let mail: MailServer;
  let apiKey: string;
  let tenant: { id: string };
  let tenantKey: string;

  beforeAll(async () => {
    mail = await startMailServer();
    sesame = await startTestApp(
      { SMTP_URL: mail.url, MAIL_FROM: 'signin@acme.test' },
      { mailTiming: TEST_MAIL_TIMING },
    );
    ({ key: apiKey } = await createApiKey(sesame.db, 'typed text', 'test'));
    ({ tenant, apiKey: tenantKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Notes', origins: ['https://app.example'] },
      'test',
    ));
  }, 120_000);

  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  /** The sign-up's options call from a new browser, and whether it stored a challenge. */
  async function signupOptions(email: string, name?: string, language = 'en') {
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = language;
    const prompt = asPage(await person.browser.follow('/account/login'));
    const uid = /\/interaction\/([^/?#]+)/.exec(prompt.url)![1]!;
    const before = await countRows(sesame.db, 'webauthn_challenges');
    const response = await person.browser.postJson(`/interaction/${uid}/signup/options`, prompt.csrf(), {
      email,
      name,
    });
    return Object.assign(response, {
      storedChallenge: (await countRows(sesame.db, 'webauthn_challenges')) !== before,
    });
  }

  it('refuses at sign-up an address that is not one plain address, and stores nothing', async () => {
    for (const email of [
      'ceo<attacker@evil.example>',
      '"ceo" <attacker@evil.example>',
      'attacker@evil.example,victim@corp.example',
      'attacker@evil.example;victim@corp.example',
      '"attacker"victim@corp.example',
      '<attacker>victim@corp.example',
      'victim(comment)@corp.example',
      'victim@corp.example.',
      'victim@corp..example',
      '.victim@corp.example',
      'vic..tim@corp.example',
      'victim@-corp.example',
      'vic\u001btim@corp.example',
      'victim@corp\u0000.example',
      '@corp.example',
      'victim@example',
    ]) {
      const response = await signupOptions(email);
      expect({ email, status: response.status }).toEqual({ email, status: 400 });
      expect(response.json()).toMatchObject({ fields: { email: 'Enter a valid email address' } });
      expect(response.storedChallenge).toBe(false);
    }
  });

  it('takes unusual but plain addresses, and one typed with full-width letters as the same address', async () => {
    for (const email of ["o'brien+notes@example.com", 'josé@bücher.example', 'a/b=c?d{e}@x-y.example']) {
      expect({ email, status: (await signupOptions(email)).status }).toEqual({ email, status: 200 });
    }
    const person = new Person(sesame.baseUrl);
    await person.signUp(asPage(await person.browser.follow('/account/login')), 'ｗｉｄｅ@example.com');
    expect(await usersQueries.findByEmail(sesame.db, 'wide@example.com')).toMatchObject({
      email: 'wide@example.com',
    });
  });

  it('refuses a name with a control character at sign-up, in the language of the page', async () => {
    const english = await signupOptions('name@example.com', 'Eve\u001b]0;owned\u0007');
    expect(english.status).toBe(400);
    expect(english.json()).toMatchObject({
      fields: { name: 'Remove the control characters (such as tabs or line breaks)' },
    });
    const german = await signupOptions('name@example.com', 'Eve\u202eexe.txt', 'de');
    expect(german.status).toBe(400);
    expect(german.json()).toMatchObject({
      fields: { name: 'Entfernen Sie die Steuerzeichen (etwa Tabulatoren oder Zeilenumbrüche)' },
    });
  });

  it('refuses names with control characters in the admin API, for API keys and in the passkey API, and changes nothing', async () => {
    const tables = ['clients', 'api_keys', 'resources', 'passkey_tenants', 'passkey_tenant_users'] as const;
    const rows = async () => Promise.all(tables.map((t) => countRows(sesame.db, t)));
    const before = await rows();
    const evil = 'Evil\u001b[2J\u001b]0;pwned\u0007\r\nFAKE LINE';
    for (const [path, body] of [
      ['clients', { name: evil, redirect_uris: ['https://notes.example/cb'] }],
      ['resources', { identifier: 'https://api.example', name: evil }],
      ['passkey-tenants', { name: evil, origins: ['https://notes.example'] }],
    ] as const) {
      const response = await fetch(`${sesame.baseUrl}/api/admin/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect({ path, status: response.status }).toEqual({ path, status: 400 });
      expect(JSON.stringify(await response.json())).toContain('must not contain control characters');
    }
    for (const body of [
      { user_id: 'u-1', username: 'ada\u001b[31m' },
      { user_id: 'u-1', username: 'ada', display_name: 'Ada\nLovelace' },
    ]) {
      const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}/registration/initialize`, {
        method: 'POST',
        headers: { apikey: tenantKey, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(400);
    }
    await expect(createApiKey(sesame.db, evil, 'test')).rejects.toThrow(
      'name must not contain control characters',
    );
    expect(await rows()).toEqual(before);
  });

  it('refuses client, group and passkey API app names that show nothing, only spaces or invisible characters, and changes nothing', async () => {
    const admin = (method: string, path: string, body: unknown) =>
      fetch(`${sesame.baseUrl}/api/admin/${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const created = await admin('POST', 'clients', {
      name: 'Visible',
      redirect_uris: ['https://v.example/cb'],
    });
    const { client_id } = (await created.json()) as { client_id: string };
    const group = await admin('POST', 'groups', { name: 'visible' });
    const { id: groupId } = (await group.json()) as { id: string };
    const rows = async () =>
      Promise.all(
        (['clients', 'groups', 'passkey_tenants', 'resources', 'api_keys'] as const).map((table) =>
          countRows(sesame.db, table),
        ),
      );
    const refused = 'must show something, not only spaces or invisible characters';
    const before = await rows();
    for (const blank of ['\u200b', '\u200b \u00ad', '\u2800', '\u3164']) {
      for (const [method, path, body, message = refused] of [
        ['POST', 'clients', { name: blank, redirect_uris: ['https://v.example/cb'] }],
        ['PATCH', `clients/${client_id}`, { name: blank }],
        ['POST', 'groups', { name: blank }],
        ['PATCH', `groups/${groupId}`, { name: blank }],
        ['POST', 'passkey-tenants', { name: blank, origins: ['https://v.example'] }, `name ${refused}`],
        ['PATCH', `passkey-tenants/${tenant.id}`, { name: blank }, `name ${refused}`],
        ['POST', 'resources', { identifier: 'https://api.v.example', name: blank }],
      ] as const) {
        const response = await admin(method, path, body);
        expect({ method, path, blank, status: response.status }).toEqual({
          method,
          path,
          blank,
          status: 400,
        });
        expect(((await response.json()) as { fields: Record<string, string> }).fields).toEqual({
          name: message,
        });
      }
    }
    for (const blank of ['\u200b', '\u3164'])
      await expect(createApiKey(sesame.db, blank, 'test')).rejects.toThrow(`name ${refused}`);
    expect(await rows()).toEqual(before);
    expect(await (await admin('GET', `clients/${client_id}`, undefined)).json()).toMatchObject({
      name: 'Visible',
    });
    expect(await (await admin('GET', `groups/${groupId}`, undefined)).json()).toMatchObject({
      name: 'visible',
    });
    expect(await (await admin('GET', `passkey-tenants/${tenant.id}`, undefined)).json()).toMatchObject({
      name: 'Notes',
    });
  });

  it('prints stored control characters escaped on the CLI, so they cannot drive the terminal or fake a row', async () => {
    // A name stored before the rule above refused it.
    await usersQueries.insert(sesame.db, {
      email: 'mallory@example.com',
      name: 'Mallory\u001b[2J\u001b]0;pwn\u0007\r\nFAKE admin@example.com',
    });
    const list = await runCliOn(sesame, ['users', 'list', '--search', 'mallory']);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toMatch(/(?!\n)\p{Cc}/u);
    expect(list.stdout).toContain(
      'Mallory\\u001b[2J\\u001b]0;pwn\\u0007\\u000d\\u000aFAKE admin@example.com',
    );
    expect(list.stdout.trimEnd().split('\n')).toHaveLength(2);
    // Its JSON escapes them as JSON does, and keeps the value.
    const json = await runCliOn(sesame, ['users', 'list', '--search', 'mallory', '--json']);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({ name: expect.stringContaining('\u001b') }),
    ]);
  });

  it('finds an account by the exact address it was stored with, whatever the database makes of its case', async () => {
    // JavaScript lowercases İ to i + a combining dot, Postgres to i: compared on one side
    // each, the account could not be found by its own address.
    const user = await usersQueries.insert(sesame.db, { email: 'İnesΣ@example.com', name: null });
    expect((await usersQueries.findByEmail(sesame.db, 'İnesΣ@example.com'))?.id).toBe(user.id);
    expect((await usersQueries.findByEmail(sesame.db, 'İNESσ@EXAMPLE.COM'))?.id).toBe(user.id);
    const disabled = await runCliOn(sesame, ['users', 'disable', 'İnesΣ@example.com']);
    expect(disabled.stderr).toBe('');
    expect(disabled.code).toBe(0);
  });

  it('gives up a queued mail whose stored address is not one plain address, sending it to no one', async () => {
    const sentBefore = mail.received.length;
    await mailOutboxQueries.enqueue(sesame.db, {
      template: 'invite',
      to: 'ceo<attacker@evil.example>',
      subject: 'Your link',
      text: 'x',
      html: '<p>x</p>',
    });
    await mailOutboxQueries.enqueue(sesame.db, {
      template: 'invite',
      to: 'plain@example.com',
      subject: 'Your link',
      text: 'x',
      html: '<p>x</p>',
    });
    const gaveUp = () =>
      sesame.db.selectFrom('audit_events').select('target').where('action', '=', 'mail.give_up').execute();
    expect(
      await eventually(
        async () => mail.received.length > sentBefore && (await gaveUp()).length === 1,
        20_000,
      ),
    ).toBe(true);
    expect(await gaveUp()).toEqual([{ target: 'ceo<attacker@evil.example>' }]);
    expect(mail.received.slice(sentBefore).map((m) => m.to)).toEqual(['plain@example.com']);
  });
});
