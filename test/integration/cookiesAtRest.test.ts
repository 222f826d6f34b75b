import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { beginLogin, confirmDeviceCode, discoverRp, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/**
 * A copy of the database (a backup) holds none of the values a signed-in browser's cookies
 * carry, while that person is in the middle of something: without KEY_ENCRYPTION_SECRET the
 * cookie key is in the same copy, and the value of `_session` with it signs anyone in as them.
 * oidc-provider records the session's cookie value in every interaction a signed-in person
 * starts (a consent page, prompt=login, a device's approval), and the interaction's own
 * cookie value in its `returnTo`; its login page's passkey challenge was bound to that value.
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
  async function signedInPerson(): Promise<Person> {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(notes, 'openid email');
    const next = await person.signUp(
      await person.open(pending.url),
      `c${randomBytes(4).toString('hex')}@example.com`,
    );
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
});
