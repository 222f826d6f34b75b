import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { asPage } from '../support/browser.js';
import {
  beginLogin,
  confirmDeviceCode,
  discoverRp,
  finishLogin,
  Person,
  type TestRp,
} from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/**
 * A copy of the database (a backup) holds none of the values a signed-in browser's cookies
 * carry, while that person is in the middle of something: without KEY_ENCRYPTION_SECRET the
 * cookie key is in the same copy, and the value of `_session` with it signs anyone in as them.
 * oidc-provider records the session's cookie value in every interaction a signed-in person
 * starts (a consent page, prompt=login, a device's approval), and the interaction's own
 * cookie value in its `returnTo`; its login page's passkey challenge was bound to that value.
 * When another person signs in at that browser, it records the return's URL (so the value of
 * its `_interaction_resume` cookie) in the session until the browser signs the first out.
 */
describe('cookie values of a signed-in browser are nowhere in the database', () => {
  let sesame: TestApp;
  let notes: TestRp;
  let photos: TestRp;
  let tv: oidc.Configuration;

  const registerRp = async (name: string) => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name, redirect_uris: [REDIRECT_URI] },
      'test',
    );
    return discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  };

  beforeAll(async () => {
    sesame = await startTestApp();
    notes = await registerRp('Notes');
    photos = await registerRp('Photos');
    const { client } = await createClient(
      sesame.db,
      { name: 'Living Room TV', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    tv = await oidc.discovery(new URL(sesame.baseUrl), client.client_id, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
  });

  afterAll(() => sesame.stop());

  /** A person signed up at Notes (Allow pressed): their browser holds a session. */
  async function signedInPerson(email = `c${randomBytes(4).toString('hex')}@example.com`): Promise<Person> {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(notes, 'openid email');
    const next = await person.signUp(await person.open(pending.url), email);
    await person.continueToApp(next, REDIRECT_URI);
    return person;
  }

  /** Every row of every table, each as JSON text: what a dump of the database holds. */
  async function everyRow(): Promise<string[]> {
    const { rows: tables } = await sql<{ name: string }>`
      select table_name as name from information_schema.tables
      where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(sesame.db);
    expect(tables.map((t) => t.name)).toContain('oidc_models');
    const rows: string[] = [];
    for (const { name } of tables) {
      const found = await sql<{
        row: string;
      }>`select row_to_json(t)::text as row from ${sql.table(name)} t`.execute(sesame.db);
      rows.push(...found.rows.map((r) => r.row));
    }
    return rows;
  }

  /** Every cookie the browser holds, by name: its session's (and that signature) among them. */
  async function cookiesOf(person: Person): Promise<Map<string, string>> {
    const { cookies } = await person.browser.jar.serialize();
    const session = cookieNames(sesame.config).session;
    expect(cookies.map((c) => c.key)).toEqual(expect.arrayContaining([session, `${session}.sig`]));
    return new Map(cookies.map((c) => [`${c.key} (${c.path})`, String(c.value)]));
  }

  /** Expects no row of the database to hold the value of any of `cookies`. */
  async function expectNoneStored(cookies: Map<string, string>) {
    const rows = await everyRow();
    const found = [...cookies].flatMap(([name, value]) =>
      rows.filter((row) => row.includes(value)).map((row) => `${name}: ${row}`),
    );
    expect(found).toEqual([]);
  }

  it('while the person looks at a consent page', async () => {
    const person = await signedInPerson();
    const page = await person.open((await beginLogin(photos, 'openid email')).url);
    expect(page.text).toContain('>Allow<');

    await expectNoneStored(await cookiesOf(person));
    // And the consent still goes through to the app.
    expect(await person.continueToApp(page.url, REDIRECT_URI)).toContain('code=');
  });

  it('while the person signs in again (prompt=login)', async () => {
    const person = await signedInPerson();
    const page = await person.open((await beginLogin(notes, 'openid email', { prompt: 'login' })).url);
    expect(page.text).toContain('Sign in with a passkey');

    await expectNoneStored(await cookiesOf(person));
    expect(await person.continueToApp(await person.signIn(page), REDIRECT_URI)).toContain('code=');
  });

  it("while the person looks at a device's approval", async () => {
    const person = await signedInPerson();
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const page = await confirmDeviceCode(person, started.user_code);
    expect(page.text).toContain('>Allow<');

    await expectNoneStored(await cookiesOf(person));
  });

  it('while another person signs in at the browser and it has not signed the first out yet', async () => {
    const person = await signedInPerson();
    const otherEmail = `c${randomBytes(4).toString('hex')}@example.com`;
    const other = person.withPasskeyOf(await signedInPerson(otherEmail));
    const pending = await beginLogin(notes, 'openid email', { prompt: 'login' });
    const back = await other.signIn(await person.open(pending.url));
    // The return answers with the page that signs the browser's person out (it submits itself).
    const signOut = await person.browser.request(back);
    const form = /<form method="post" action="([^"]+)" data-submits-itself>([\s\S]*?)<\/form>/.exec(
      signOut.text,
    );
    expect(form?.[1]).toBe(`${sesame.baseUrl}/session/end/confirm`);

    const cookies = await cookiesOf(person);
    expect([...cookies.keys()]).toContainEqual(expect.stringMatching(/^_interaction_resume \(\/auth\//));
    await expectNoneStored(cookies);

    // The sign-out page's form goes on to the other person's sign-in at the app.
    const fields = Object.fromEntries(
      [...form![2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map(([, n, v]) => [
        n!,
        v!,
      ]),
    );
    const ended = await person.browser.request(form![1]!, { form: fields });
    const callback = await person.continueToApp(ended.location()!, REDIRECT_URI);
    expect((await finishLogin(notes, pending, callback)).claims()!.email).toBe(otherEmail);
  });

  it('while the person signs in with a pushed authorization request (PAR)', async () => {
    const person = await signedInPerson();
    const pending = await beginLogin(photos, 'openid email', {}, { pushed: true });
    const requestUri = new URL(pending.url).searchParams.get('request_uri')!;
    const pushedId = requestUri.slice(requestUri.lastIndexOf(':') + 1);
    expect(pushedId.length).toBeGreaterThan(20);
    const page = await person.open(pending.url);
    expect(page.text).toContain('>Allow<');

    const cookies = await cookiesOf(person);
    await expectNoneStored(cookies.set('request_uri', pushedId));
    const callback = await person.continueToApp(page.url, REDIRECT_URI);
    expect(await finishLogin(photos, pending, callback)).toHaveProperty('id_token');
    // The sign-in used up the pushed request, which it found by the id it holds.
    const { rows } = await sql<{ consumed: boolean }>`
      select consumed_at is not null as consumed from oidc_models
      where model = 'PushedAuthorizationRequest' and id = ${storedId('PushedAuthorizationRequest', pushedId)}`.execute(
      sesame.db,
    );
    expect(rows).toEqual([{ consumed: true }]);
    expect(asPage(await person.browser.follow(pending.url)).status).toBe(400);
  });
});
