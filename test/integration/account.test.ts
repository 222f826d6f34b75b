import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { signOutEverywhere } from '../../src/accounts/connectedApps.js';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { disableUser, enableUser } from '../../src/admin/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { untilAudited } from '../support/auditLog.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { signOutPrepared } from '../support/browserSignOut.js';
import { holdBody } from '../support/heldBody.js';
import { beginLogin, discoverRp, finishLogin, Person, stepUp, type TestRp } from '../support/oidcFlow.js';
import { onboard, untilLinkMailed, useLink } from '../support/oneTimeLinkFlow.js';
import { holdRow, meanwhileAtLock, untilWaitingForLocks } from '../support/rowLocks.js';
import { ageSignIn } from '../support/signInAge.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8902/callback';
const GOOGLE_PASSWORD_MANAGER = 'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4';

/** The account page and its CSRF token, as the person's browser sees them. */
async function accountPage(person: Person): Promise<PageResponse> {
  const page = await person.browser.request('/account');
  if (page.status !== 200) throw new Error(`account page: ${page.status} ${page.text.slice(0, 200)}`);
  return page;
}

/**
 * An owner signed in and confirmed with a passkey, and someone at their unlocked laptop who
 * added a passkey of their own, signed in with it in another browser and confirmed with it there.
 */
async function withIntruder(sesame: TestApp, email: string) {
  const { person: owner, userId } = await onboard(sesame, email);
  const csrf = (await accountPage(owner)).csrf();
  expect((await stepUp(owner, csrf)).status).toBe(200);
  const rogueKey = new SoftAuthenticator();
  const options = await owner.browser.postJson('/account/passkeys/options', csrf, {});
  const rogueCredential = await rogueKey.createCredential(options.json(), owner.browser.origin);
  expect((await owner.browser.postJson('/account/passkeys/verify', csrf, rogueCredential)).status).toBe(200);
  const rogue = new Person(sesame.baseUrl, rogueKey);
  await rogue.browser.follow(await rogue.signIn(asPage(await rogue.browser.follow('/account'))));
  const rogueCsrf = (await accountPage(rogue)).csrf();
  expect((await stepUp(rogue, rogueCsrf)).status).toBe(200);
  return { owner, userId, csrf, rogue, rogueCsrf, rogueCredentialId: rogueCredential.id };
}

/** A recovery link opened in a new browser, whose passkey is made: `finish` sends it, ending the ceremony. */
async function recoveryAboutToFinish(sesame: TestApp, email: string) {
  const { url } = await createOneTimeLink(sesame.db, sesame.config, {
    email,
    purpose: 'recovery',
    actor: 'test',
  });
  await untilLinkMailed(sesame.db, url);
  const recovering = new Person(sesame.baseUrl);
  const path = new URL(url).pathname;
  const page = await recovering.browser.request(path);
  expect(page.status).toBe(200);
  const linkCsrf = page.csrf();
  const linkOptions = await recovering.browser.postJson(`${path}/options`, linkCsrf, {});
  expect(linkOptions.status).toBe(200);
  const credential = await recovering.authenticator.createCredential(
    linkOptions.json(),
    recovering.browser.origin,
  );
  return { recovering, finish: () => recovering.browser.postJson(`${path}/verify`, linkCsrf, credential) };
}

/** Waits until a second has just begun, so that what is started now commits within it. */
async function untilSecondBegins(): Promise<void> {
  while (Date.now() % 1000 > 30) await new Promise((r) => setTimeout(r, 5));
}

async function credentialIds(sesame: TestApp, userId: string): Promise<string[]> {
  const rows = await sesame.db
    .selectFrom('credentials')
    .select('id')
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
  return rows.map((r) => r.id);
}

/** Adds a copy of the user's passkey row under another id: a second passkey without a ceremony. */
async function copyPasskeyRow(sesame: TestApp, userId: string, id: string) {
  await sesame.db
    .insertInto('credentials')
    .expression((eb) =>
      eb
        .selectFrom('credentials')
        .select([
          eb.val(id).as('id'),
          'user_id',
          'public_key',
          'counter',
          'transports',
          'aaguid',
          'backup_eligible',
          'backup_state',
          'name',
          'created_at',
          'last_used_at',
        ])
        .where('user_id', '=', userId)
        .limit(1),
    )
    .execute();
}

describe('the account page', () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp({ SIGNUP: 'invite' });
    const { client, client_secret } = await createClient(
      sesame.db,
      {
        name: 'Photo Album',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
      },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  it('lists passkeys with their provider name, synced or device-bound, created and last used', async () => {
    const authenticator = new SoftAuthenticator({ aaguid: GOOGLE_PASSWORD_MANAGER, backupEligible: true });
    const { person, userId } = await onboard(sesame, 'list@example.com', { authenticator, name: 'Lin' });
    const page = await accountPage(person);
    expect(page.text).toContain('list@example.com');
    expect(page.text).toContain('value="Lin"');
    expect(page.text).toContain('Google Password Manager');
    expect(page.text).toContain('Synced');
    expect(page.text).toContain('Never used to sign in');
    expect(page.text).toMatch(/<button[^>]*>Add a passkey<\/button>/);
    expect(page.text).toMatch(/<button[^>]*>Rename<\/button>/);
    expect(page.text).toMatch(/<button[^>]*>Delete<\/button>/);
    // The Signal API needs the WebAuthn user handle: base64url of the 16 bytes of the user id.
    const handle = Buffer.from(userId.replace(/-/g, ''), 'hex').toString('base64url');
    expect(page.text).toContain(`data-user-handle="${handle}"`);

    const deviceBound = await onboard(sesame, 'device@example.com');
    const page2 = await accountPage(deviceBound.person);
    expect(page2.text).toContain('This device only');
  });

  it('names a passkey its authenticator does not name in the language of the page it was made on', async () => {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'cle@example.com',
      actor: 'test',
    });
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'fr';
    expect((await useLink(person, url)).status).toBe(200);

    person.browser.headers['accept-language'] = 'es';
    const csrf = (await accountPage(person)).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    const options = await person.browser.postJson('/account/passkeys/options', csrf, {});
    const second = await new SoftAuthenticator().createCredential(options.json(), person.browser.origin);
    const added = await person.browser.postJson('/account/passkeys/verify', csrf, second);
    expect(added.json<{ passkey: { name: string } }>().passkey.name).toBe('Llave de acceso');

    const names = await sesame.db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .select('credentials.name')
      .where('users.email', '=', 'cle@example.com')
      .orderBy('credentials.created_at')
      .execute();
    expect(names.map((row) => row.name)).toEqual(['Clé d’accès', 'Llave de acceso']);
    expect((await accountPage(person)).text).toContain('Llave de acceso');
  });

  it('sends a person who is not signed in to sign in, and refuses scripts with 401', async () => {
    const stranger = new Person(sesame.baseUrl);
    const page = await stranger.browser.request('/account');
    expect(page.status).toBe(302);
    expect(page.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Faccount`);
    const post = await stranger.browser.request('/account/profile', {
      json: { name: 'x' },
      headers: { accept: 'application/json' },
    });
    expect(post.status).toBe(401);
  });

  it('counts a sign-in over 30 days old as ended: its forms get a page that links to sign in again', async () => {
    const { person, userId } = await onboard(sesame, 'month@example.com');
    const csrf = (await accountPage(person)).csrf();
    await ageSignIn(sesame, userId, 29);
    expect((await person.browser.request('/account')).status).toBe(200);
    await ageSignIn(sesame, userId, 2);

    const page = await person.browser.request('/account');
    expect(page.status).toBe(302);
    expect(page.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Faccount`);
    // A script's call gets 401 JSON, which the page shows with a link to sign in again.
    const call = await person.browser.postJson('/account/profile', csrf, { name: 'Late' });
    expect(call.status).toBe(401);
    expect(call.json().error).toBe('unauthorized');
    // A plain form gets a page that says the session ended, linking back to the page it was on.
    person.browser.headers['accept-language'] = 'de';
    const form = await person.browser.request('/account/sign-out-everywhere', {
      form: { _csrf: csrf },
      headers: { referer: `${sesame.baseUrl}/account` },
    });
    expect(form.status).toBe(401);
    expect(form.text).toContain('<html lang="de">');
    expect(form.text).toContain('Ihre Sitzung ist beendet');
    expect(form.text).toContain('<a href="/account/login?return_to=%2Faccount">Erneut anmelden</a>');
    const user = await sesame.db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    expect([user.name, user.tokens_revoked_at]).toEqual([null, null]);
  });

  it('redirects / to /account', async () => {
    const response = await new Person(sesame.baseUrl).browser.request('/');
    expect(response.status).toBe(302);
    expect(response.location()).toBe(`${sesame.baseUrl}/account`);
  });

  it('changes the name, keeping it at most 100 characters without control characters, or removes it', async () => {
    const { person, userId } = await onboard(sesame, 'name@example.com', { name: 'Old' });
    const csrf = (await accountPage(person)).csrf();
    const nameOf = async () =>
      (await sesame.db.selectFrom('users').select('name').where('id', '=', userId).executeTakeFirstOrThrow())
        .name;

    expect((await person.browser.postJson('/account/profile', csrf, { name: 'x'.repeat(101) })).status).toBe(
      400,
    );
    // What would send an admin's terminal commands when `sesame users list` prints the name,
    // or reorder what follows it on a page.
    for (const bad of [
      'Bob\u001b]0;owned\u0007',
      'Bob\u001b[2J',
      'Bob\r\nFAKE',
      'Bob\tx',
      'Bob\u009bx',
      'Bob\u202etxt.exe',
    ]) {
      const response = await person.browser.postJson('/account/profile', csrf, { name: bad });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({
        error: 'invalid_request',
        fields: { name: 'Remove the control characters (such as tabs or line breaks)' },
      });
    }
    expect((await person.browser.postJson('/account/profile', csrf, { name: 42 })).status).toBe(400);
    expect(await nameOf()).toBe('Old');

    const saved = await person.browser.postJson('/account/profile', csrf, { name: ' New Name ' });
    expect(saved.status).toBe(200);
    expect(saved.json()).toEqual({ name: 'New Name', email: 'name@example.com' });
    expect(await nameOf()).toBe('New Name');

    // Without JavaScript the form posts and comes back to the page.
    const form = await person.browser.request('/account/profile', {
      form: { _csrf: csrf, name: 'y'.repeat(100) },
    });
    expect(form.status).toBe(303);
    expect(await nameOf()).toBe('y'.repeat(100));

    // An empty name removes it, as sign-up takes none; so does one that shows nothing (spaces,
    // zero-width and other invisible characters), which would be blank on every page and in tokens.
    for (const blank of ['', '   ', '\u200b\u200b', '\u00ad', '\u{E0041}', '\u3164', '\u200d\ufe0f']) {
      await person.browser.postJson('/account/profile', csrf, { name: 'Named' });
      const removed = await person.browser.postJson('/account/profile', csrf, { name: blank });
      expect({ blank, status: removed.status, body: removed.json() }).toEqual({
        blank,
        status: 200,
        body: { name: null, email: 'name@example.com' },
      });
      expect(await nameOf()).toBeNull();
    }
    // Invisible characters inside a visible name are its own (a joined emoji, a soft hyphen).
    const joined = 'Ana \u{1F469}\u200d\u{1F4BB} Zim\u00admer';
    expect((await person.browser.postJson('/account/profile', csrf, { name: joined })).json()).toMatchObject({
      name: joined,
    });
  });

  it('refuses changes without the CSRF token or from another origin', async () => {
    const { person, userId } = await onboard(sesame, 'csrf-account@example.com', { name: 'Same' });
    const csrf = (await accountPage(person)).csrf();
    const noToken = await person.browser.request('/account/profile', {
      json: { name: 'Changed' },
      headers: { accept: 'application/json' },
    });
    expect(noToken.status).toBe(403);
    const foreign = await person.browser.request('/account/profile', {
      json: { name: 'Changed' },
      headers: { accept: 'application/json', 'x-csrf-token': csrf, origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    const user = await sesame.db
      .selectFrom('users')
      .select('name')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    expect(user.name).toBe('Same');
  });

  it('renames a passkey, keeping the name between 1 and 64 characters', async () => {
    const { person, userId } = await onboard(sesame, 'rename@example.com');
    const csrf = (await accountPage(person)).csrf();
    const [id] = await credentialIds(sesame, userId);
    const nameOf = async () =>
      (
        await sesame.db
          .selectFrom('credentials')
          .select('name')
          .where('id', '=', id!)
          .executeTakeFirstOrThrow()
      ).name;
    const original = await nameOf();

    for (const bad of ['', ' ', 'x'.repeat(65), 'Key\u001b[31m', 'Key\nTwo', '\u200b\u2060']) {
      const response = await person.browser.postJson(`/account/passkeys/${id}/rename`, csrf, { name: bad });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({ error: 'invalid_request' });
    }
    expect(await nameOf()).toBe(original);

    const ok = await person.browser.postJson(`/account/passkeys/${id}/rename`, csrf, {
      name: 'x'.repeat(64),
    });
    expect(ok.status).toBe(200);
    expect(await nameOf()).toBe('x'.repeat(64));

    // Someone else's passkey is not theirs to rename.
    const other = await onboard(sesame, 'rename-other@example.com');
    const [otherId] = await credentialIds(sesame, other.userId);
    const foreign = await person.browser.postJson(`/account/passkeys/${otherId}/rename`, csrf, {
      name: 'Mine',
    });
    expect(foreign.status).toBe(404);
  });

  it('answers a name, language or passkey name that is already so as saved, changing nothing and auditing nothing', async () => {
    const { person, userId } = await onboard(sesame, 'same-again@example.com', { name: 'Same' });
    const csrf = (await accountPage(person)).csrf();
    const [id] = await credentialIds(sesame, userId);
    const changes = async () =>
      (
        await sesame.db
          .selectFrom('audit_events')
          .select('action')
          .where('target', '=', userId)
          .where('action', 'in', ['user.rename', 'user.locale', 'passkey.rename'])
          .execute()
      )
        .map((event) => event.action)
        .sort();
    const stamp = async () =>
      (
        await sesame.db
          .selectFrom('users')
          .select('updated_at')
          .where('id', '=', userId)
          .executeTakeFirstOrThrow()
      ).updated_at;

    expect((await person.browser.postJson('/account/language', csrf, { locale: 'de' })).status).toBe(200);
    expect(
      (await person.browser.postJson(`/account/passkeys/${id}/rename`, csrf, { name: 'Key' })).status,
    ).toBe(200);
    expect(await changes()).toEqual(['passkey.rename', 'user.locale']);
    const updatedAt = await stamp();

    for (let i = 0; i < 3; i++) {
      const profile = await person.browser.postJson('/account/profile', csrf, { name: ' Same ' });
      expect({ status: profile.status, body: profile.json() }).toEqual({
        status: 200,
        body: { name: 'Same', email: 'same-again@example.com' },
      });
      const language = await person.browser.postJson('/account/language', csrf, { locale: 'de' });
      expect({ status: language.status, body: language.json() }).toEqual({
        status: 200,
        body: { locale: 'de' },
      });
      const rename = await person.browser.postJson(`/account/passkeys/${id}/rename`, csrf, { name: 'Key' });
      expect({ status: rename.status, body: rename.json() }).toEqual({
        status: 200,
        body: { id, name: 'Key' },
      });
    }
    expect(await changes()).toEqual(['passkey.rename', 'user.locale']);
    expect(await stamp()).toEqual(updatedAt);

    // Someone else's passkey under its own name is still not theirs to rename.
    const other = await onboard(sesame, 'same-again-other@example.com');
    const [otherId] = await credentialIds(sesame, other.userId);
    const otherName = (
      await sesame.db
        .selectFrom('credentials')
        .select('name')
        .where('id', '=', otherId!)
        .executeTakeFirstOrThrow()
    ).name;
    const foreign = await person.browser.postJson(`/account/passkeys/${otherId}/rename`, csrf, {
      name: otherName,
    });
    expect(foreign.status).toBe(404);

    // A real change is still recorded.
    expect((await person.browser.postJson('/account/profile', csrf, { name: 'Other' })).status).toBe(200);
    expect(await changes()).toEqual(['passkey.rename', 'user.locale', 'user.rename']);
  });

  it('refuses to add or delete a passkey without a recent passkey confirmation', async () => {
    const { person, userId } = await onboard(sesame, 'stepup@example.com');
    const csrf = (await accountPage(person)).csrf();
    // A second passkey, added straight to the database, so deleting one is not refused as the last.
    await copyPasskeyRow(sesame, userId, 'second-passkey-id');
    const before = await credentialIds(sesame, userId);

    const addOptions = await person.browser.postJson('/account/passkeys/options', csrf, {});
    expect(addOptions.status).toBe(403);
    expect(addOptions.json()).toMatchObject({ error: 'step_up_required' });
    const del = await person.browser.postJson(`/account/passkeys/${before[0]}/delete`, csrf, {});
    expect(del.status).toBe(403);
    expect(del.json()).toMatchObject({ error: 'step_up_required' });
    expect(await credentialIds(sesame, userId)).toEqual(before);

    // A confirmation made in another signed-in browser does not count for this one.
    const elsewhere = person.inNewBrowser();
    const pending = await beginLogin(rp);
    await elsewhere.continueToApp(await elsewhere.signIn(await elsewhere.open(pending.url)), REDIRECT_URI);
    const elsewhereCsrf = (await accountPage(elsewhere)).csrf();
    expect((await stepUp(elsewhere, elsewhereCsrf)).status).toBe(200);
    expect((await elsewhere.browser.postJson('/account/passkeys/options', elsewhereCsrf, {})).status).toBe(
      200,
    );
    expect((await person.browser.postJson('/account/passkeys/options', csrf, {})).status).toBe(403);

    // A step-up older than five minutes no longer counts.
    expect((await stepUp(person, csrf)).status).toBe(200);
    await sesame.db
      .updateTable('step_ups')
      .set({ verified_at: new Date(Date.now() - 6 * 60 * 1000) })
      .where('user_id', '=', userId)
      .execute();
    expect((await person.browser.postJson('/account/passkeys/options', csrf, {})).status).toBe(403);
    const stale = await elsewhere.browser.postJson('/account/passkeys/options', elsewhereCsrf, {});
    expect(stale.status).toBe(403);
  });

  it('with a recent confirmation adds a passkey and deletes one, which then can no longer sign in', async () => {
    const laptop = new SoftAuthenticator();
    const { person, userId } = await onboard(sesame, 'keys@example.com', { authenticator: laptop });
    const [laptopId] = await credentialIds(sesame, userId);
    const csrf = (await accountPage(person)).csrf();

    expect((await stepUp(person, csrf)).status).toBe(200);
    const phone = new SoftAuthenticator();
    const options = await person.browser.postJson('/account/passkeys/options', csrf, {});
    expect(options.status).toBe(200);
    // Passkeys the person already has are excluded, so one authenticator is not registered twice.
    expect(
      options.json<{ excludeCredentials: { id: string }[] }>().excludeCredentials.map((c) => c.id),
    ).toEqual([laptopId]);
    const credential = await phone.createCredential(options.json(), person.browser.origin);
    const added = await person.browser.postJson('/account/passkeys/verify', csrf, credential);
    expect(added.status).toBe(200);
    expect(await credentialIds(sesame, userId)).toEqual([laptopId, credential.id]);

    const deleted = await person.browser.postJson(`/account/passkeys/${laptopId}/delete`, csrf, {});
    expect(deleted.status).toBe(200);
    expect(deleted.json()).toEqual({ remaining: [credential.id], count: 'You have 1 passkey.' });
    expect(await credentialIds(sesame, userId)).toEqual([credential.id]);

    // The deleted passkey no longer signs in; the new one does, as the same account.
    const pending = await beginLogin(rp);
    const withLaptop = new Person(sesame.baseUrl, laptop);
    const loginPage = await withLaptop.open(pending.url);
    const uid = /\/interaction\/([^/?#]+)/.exec(loginPage.url)![1];
    const loginCsrf = loginPage.csrf();
    const loginOptions = await withLaptop.browser.postJson(
      `/interaction/${uid}/login/options`,
      loginCsrf,
      {},
    );
    const assertion = await laptop.getAssertion(loginOptions.json(), withLaptop.browser.origin);
    const verify = await withLaptop.browser.postJson(
      `/interaction/${uid}/login/verify`,
      loginCsrf,
      assertion,
    );
    expect(verify.status).toBe(401);
    expect(verify.json()).toMatchObject({ error: 'unknown_credential' });

    const withPhone = new Person(sesame.baseUrl, phone);
    const pending2 = await beginLogin(rp);
    const callback = await withPhone.continueToApp(
      await withPhone.signIn(await withPhone.open(pending2.url)),
      REDIRECT_URI,
    );
    expect((await finishLogin(rp, pending2, callback)).claims()!.sub).toBe(userId);
  });

  it('deleting a passkey signs out every other browser, whose step-up goes too; the browser that deleted it stays signed in', async () => {
    // Someone at the unlocked laptop adds a passkey of their own, signs in with it elsewhere
    // and confirms with it there.
    const { owner, userId, csrf, rogue, rogueCsrf, rogueCredentialId } = await withIntruder(
      sesame,
      'rogue-key@example.com',
    );

    // The owner deletes that passkey.
    expect((await stepUp(owner, csrf)).status).toBe(200);
    const deleted = await owner.browser.postJson(`/account/passkeys/${rogueCredentialId}/delete`, csrf, {});
    expect(deleted.status).toBe(200);

    // The browser it signed in is signed out, and can add no passkey of its own.
    const after = await rogue.browser.request('/account');
    expect(after.status).toBe(302);
    expect(after.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Faccount`);
    expect((await rogue.browser.postJson('/account/passkeys/options', rogueCsrf, {})).status).toBe(401);
    expect(
      await sesame.db.selectFrom('step_ups').selectAll().where('user_id', '=', userId).execute(),
    ).toEqual([]);
    // The owner's browser is still signed in, and confirms again for its next change.
    expect((await owner.browser.request('/account')).status).toBe(200);
    expect((await owner.browser.postJson('/account/step-up/status', csrf, {})).status).toBe(403);
    expect((await stepUp(owner, csrf)).status).toBe(200);
    expect(await credentialIds(sesame, userId)).toHaveLength(1);
  });

  it('refuses to delete the last passkey, even with a recent confirmation', async () => {
    const { person, userId } = await onboard(sesame, 'last@example.com');
    const [id] = await credentialIds(sesame, userId);
    const csrf = (await accountPage(person)).csrf();
    const refused = await person.browser.postJson(`/account/passkeys/${id}/delete`, csrf, {});
    expect(refused.status).toBe(409);
    expect(refused.json()).toMatchObject({ reason: 'last_passkey' });
    expect(refused.json<{ error_description: string }>().error_description).toContain('only passkey');
    expect((await stepUp(person, csrf)).status).toBe(200);
    expect((await person.browser.postJson(`/account/passkeys/${id}/delete`, csrf, {})).status).toBe(409);
    expect(await credentialIds(sesame, userId)).toEqual([id]);
  });

  it('lets only one of two simultaneous deletes of the last two passkeys through', async () => {
    const { person, userId } = await onboard(sesame, 'race-delete@example.com');
    await copyPasskeyRow(sesame, userId, 'race-second-id');
    const ids = await credentialIds(sesame, userId);
    const csrf = (await accountPage(person)).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    const results = await Promise.all(
      ids.map((id) => person.browser.postJson(`/account/passkeys/${id}/delete`, csrf, {})),
    );
    // The other is refused as the last passkey, or, when it comes after the first deletion
    // ended every sign-in of the account, as signed out.
    const statuses = results.map((r) => r.status).sort();
    expect(statuses[0]).toBe(200);
    expect([401, 409]).toContain(statuses[1]);
    expect(await credentialIds(sesame, userId)).toHaveLength(1);
  });

  // Postgres only: the embedded database serves one connection, so the locks held here would stop everything.
  (onPostgres ? it : it.skip)(
    'refuses to delete a passkey from a stolen session whose step-up passed just before its owner signed out everywhere',
    async () => {
      const { person: thief, userId: victimId } = await onboard(sesame, 'stolen-delete@example.com', {
        admin: true,
      });
      await copyPasskeyRow(sesame, victimId, 'stolen-delete-second');
      const ids = await credentialIds(sesame, victimId);
      const csrf = (await accountPage(thief)).csrf();
      expect((await stepUp(thief, csrf)).status).toBe(200);

      // The delete is admitted and its step-up checked; it then waits for the rows held here
      // while the owner signs out everywhere: the account's passkeys (`for update`), and its
      // row `for key share`, which a read that locks the account waits for and the sign-out's
      // update does not.
      const refused = await meanwhileAtLock(
        sesame.db,
        async (trx) => {
          await sql`select id from users where id = ${victimId} for key share`.execute(trx);
          await sql`select id from credentials where user_id = ${victimId} for update`.execute(trx);
        },
        () => thief.browser.postJson(`/account/passkeys/${ids[0]}/delete`, csrf, {}),
        () => signOutEverywhere(sesame.db, victimId),
      );
      expect(refused.status).toBe(401);
      expect(refused.json()).toMatchObject({ error_description: 'Sign in first' });
      expect(await credentialIds(sesame, victimId)).toEqual(ids);
      expect(
        await sesame.db
          .selectFrom('audit_events')
          .select('id')
          .where('action', '=', 'passkey.delete')
          .where('target', '=', victimId)
          .execute(),
      ).toEqual([]);
      // The stolen cookie signs in nowhere: not to the admin pages, not to the account page.
      const admin = await thief.browser.request('/admin/users');
      expect(admin.status).toBe(302);
      expect(admin.location()).toContain('/account/login');
      expect((await thief.browser.request('/account')).status).toBe(302);
    },
  );

  // Postgres only, as above.
  (onPostgres ? it : it.skip)(
    'ends every sign-in once for a burst of sign-outs everywhere sent from one sign-in',
    async () => {
      const { person, userId } = await onboard(sesame, 'burst-sign-out@example.com');
      const csrf = (await accountPage(person)).csrf();
      // Both are admitted on the sign-in, then wait for the account's row held here.
      const release = await holdRow(sesame.db, sql`select id from users where id = ${userId} for share`);
      let burst: Promise<PageResponse[]>;
      try {
        burst = Promise.all(
          [1, 2].map(() => person.browser.postJson('/account/sign-out-everywhere', csrf, {})),
        );
        await untilWaitingForLocks(sesame.db, 2);
      } finally {
        await release();
      }
      expect((await burst).map((answer) => answer.status)).toEqual([200, 200]);
      const endedAll = await sesame.db
        .selectFrom('audit_events')
        .select('id')
        .where('action', '=', 'session.end_all')
        .where('target', '=', userId)
        .execute();
      expect(endedAll).toHaveLength(1);
    },
  );

  /** Sends the head of a script's post now, with `person`'s cookies as a thief copied them, and the body on `finish`. */
  async function holdJson(person: Person, path: string, csrf: string, json: unknown) {
    return holdBody(sesame.listenUrl, {
      method: 'POST',
      path,
      host: new URL(sesame.baseUrl).host,
      headers: {
        cookie: await person.browser.jar.getCookieString(`${sesame.baseUrl}${path}`),
        origin: sesame.baseUrl,
        'content-type': 'application/json',
        accept: 'application/json',
        'x-csrf-token': csrf,
      },
      body: JSON.stringify(json),
    });
  }

  /** The account's browser sessions stored now. */
  const sessionsOf = (userId: string) =>
    sesame.db
      .selectFrom('oidc_models')
      .select('id')
      .where('model', '=', 'Session')
      .where((eb) => eb(eb.ref('payload', '->>').key('accountId' as never), '=', userId))
      .execute();

  it('refuses a passkey delete from a copy of a browser whose owner signed it out before its body arrived, and signs nobody in', async () => {
    const { person: victim, userId } = await onboard(sesame, 'held-delete@example.com');
    await copyPasskeyRow(sesame, userId, 'held-delete-second');
    const ids = await credentialIds(sesame, userId);
    const csrf = (await accountPage(victim)).csrf();
    expect((await stepUp(victim, csrf)).status).toBe(200);

    // A thief with a copy of the browser's cookies is admitted on the head; the body follows.
    const held = await holdJson(victim, `/account/passkeys/${ids[0]}/delete`, csrf, {});
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The owner signs that browser out: its session goes, its step-up and the account stay.
    expect(await (await signOutPrepared(victim))()).toBe(303);
    expect(await sessionsOf(userId)).toEqual([]);

    const refused = await held.finish();
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error_description: 'Sign in first' });
    expect(refused.headers['set-cookie'] ?? '').not.toContain('session=');
    expect(await credentialIds(sesame, userId)).toEqual(ids);
    expect(await sessionsOf(userId)).toEqual([]);
  });

  it('refuses a passkey added from a copy of a browser whose owner signed it out before its body arrived', async () => {
    const { person: victim, userId } = await onboard(sesame, 'held-add@example.com');
    const before = await credentialIds(sesame, userId);
    const csrf = (await accountPage(victim)).csrf();
    expect((await stepUp(victim, csrf)).status).toBe(200);
    const options = await victim.browser.postJson('/account/passkeys/options', csrf, {});
    expect(options.status).toBe(200);
    const thiefKey = new SoftAuthenticator();
    const credential = await thiefKey.createCredential(options.json(), victim.browser.origin);

    const held = await holdJson(victim, '/account/passkeys/verify', csrf, credential);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await (await signOutPrepared(victim))()).toBe(303);

    const refused = await held.finish();
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error_description: 'Sign in first' });
    expect(await credentialIds(sesame, userId)).toEqual(before);
    expect(await sessionsOf(userId)).toEqual([]);
  });

  it("refuses a step-up answered with another account's passkey", async () => {
    const { person, userId } = await onboard(sesame, 'mine@example.com');
    const other = await onboard(sesame, 'theirs@example.com');
    const csrf = (await accountPage(person)).csrf();
    const options = await person.browser.postJson('/account/step-up/options', csrf, {});
    // The other person's authenticator answers with its own passkey, whatever the allow list says.
    const [otherId] = await credentialIds(sesame, other.userId);
    const assertion = await other.person.authenticator.getAssertion(
      { ...options.json(), allowCredentials: [] },
      person.browser.origin,
      { credentialId: otherId },
    );
    const verify = await person.browser.postJson('/account/step-up/verify', csrf, assertion);
    expect(verify.status).toBe(401);
    const steps = await sesame.db.selectFrom('step_ups').selectAll().where('user_id', '=', userId).execute();
    expect(steps).toHaveLength(0);
  });

  it('lists connected apps and revoking one makes its refresh token fail', async () => {
    const { person, userId } = await onboard(sesame, 'apps@example.com');
    const pending = await beginLogin(rp, 'openid email offline_access', { prompt: 'consent' });
    const callback = await person.continueToApp(pending.url, REDIRECT_URI);
    const tokens = await finishLogin(rp, pending, callback);
    expect(tokens.claims()!.sub).toBe(userId);
    expect(tokens.refresh_token).toEqual(expect.any(String));

    const page = await accountPage(person);
    expect(page.text).toContain('Photo Album');
    expect(page.text).not.toContain('Sesame account');
    // What the app may do, in the words its consent page used, not as scope names.
    expect(page.text).toContain('<li>See your email address</li>');
    expect(page.text).toContain('<li>Stay signed in and access your account while you are away</li>');
    expect(page.text).not.toContain('offline_access');
    person.browser.headers['accept-language'] = 'de';
    expect((await accountPage(person)).text).toContain('<li>Ihre E-Mail-Adresse sehen</li>');
    delete person.browser.headers['accept-language'];
    const clientId = rp.config.clientMetadata().client_id;
    const revoked = await person.browser.postJson(`/account/apps/${clientId}/revoke`, page.csrf(), {});
    expect(revoked.status).toBe(200);

    await expect(oidc.refreshTokenGrant(rp.config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    expect((await accountPage(person)).text).not.toContain('Photo Album');
    const again = await person.browser.postJson(`/account/apps/${clientId}/revoke`, page.csrf(), {});
    expect(again.status).toBe(404);
  });

  it('says what revoking an app does: one that asked for consent asks again, a first-party app does not', async () => {
    const trustedUri = 'http://127.0.0.1:8905/callback';
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Intranet', redirect_uris: [trustedUri], first_party: true },
      'test',
    );
    const trusted = await discoverRp(
      sesame.baseUrl,
      { client_id: client.client_id, client_secret },
      trustedUri,
    );
    const { person } = await onboard(sesame, 'both-apps@example.com');
    await person.continueToApp((await beginLogin(rp, 'openid email')).url, REDIRECT_URI);
    // A first-party app signs in without a consent page.
    await person.continueToApp((await beginLogin(trusted, 'openid email')).url, trustedUri);

    const page = await accountPage(person);
    const entryOf = (name: string) =>
      new RegExp(`<strong id="app-[^"]+">${name}</strong>[\\s\\S]*?</li>\\s*</ul>[\\s\\S]*?</form>`).exec(
        page.text,
      )?.[0] ?? '';
    expect(page.text).not.toContain('it will ask you again');
    expect(entryOf('Photo Album')).toContain(
      'If you revoke it, it will ask for your permission again next time.',
    );
    expect(entryOf('Intranet')).toContain(
      'If you revoke it, you can sign in to it again at any time: it does not ask for permission.',
    );
    expect(entryOf('Intranet')).not.toContain('ask for your permission again');
  });

  it('signs out everywhere: every browser of the account is signed out', async () => {
    const { person, userId } = await onboard(sesame, 'everywhere@example.com');
    const elsewhere = person.inNewBrowser();
    const pending = await beginLogin(rp);
    await elsewhere.continueToApp(await elsewhere.signIn(await elsewhere.open(pending.url)), REDIRECT_URI);
    expect((await elsewhere.browser.request('/account')).status).toBe(200);
    const bystander = await onboard(sesame, 'bystander@example.com');

    const csrf = (await accountPage(person)).csrf();
    const done = await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } });
    expect(done.status).toBe(303);
    expect(done.location()).toBe(`${sesame.baseUrl}/`);
    expect((await person.browser.request('/account')).status).toBe(302);
    expect((await elsewhere.browser.request('/account')).status).toBe(302);
    expect((await bystander.person.browser.request('/account')).status).toBe(200);
    const sessions = await sesame.db
      .selectFrom('oidc_models')
      .select('id')
      .where('model', '=', 'Session')
      .where((eb) => eb(eb.ref('payload', '->>').key('accountId' as never), '=', userId))
      .execute();
    expect(sessions).toHaveLength(0);
  });

  it("signs out with the account page's own button in one click: its confirmation submits itself, an app's does not", async () => {
    const autoSubmits = (page: PageResponse) => page.text.includes('/static/js/logout.js');
    const { person } = await onboard(sesame, 'one-click@example.com');
    const signOut = await person.browser.request('/account/logout', {
      form: { _csrf: (await accountPage(person)).csrf() },
    });
    expect(signOut.status).toBe(302);
    const confirmation = await person.browser.request(signOut.location()!);
    expect(confirmation.status).toBe(200);
    expect(confirmation.text).toContain('id="op.logoutForm"');
    expect(autoSubmits(confirmation)).toBe(true);
    // The mark is spent: the same page again, or reached without the button, waits for the person.
    expect(autoSubmits(await person.browser.request(signOut.location()!))).toBe(false);

    // An app's logout (RP-initiated) always asks, whatever cookie the browser holds.
    const other = await onboard(sesame, 'app-logout@example.com');
    const pending = await beginLogin(rp);
    const tokens = await finishLogin(
      rp,
      pending,
      await other.person.continueToApp(pending.url, REDIRECT_URI),
    );
    await other.person.browser.request('/account/logout', {
      form: { _csrf: (await accountPage(other.person)).csrf() },
    });
    const appLogout = oidc.buildEndSessionUrl(rp.config, { id_token_hint: tokens.id_token! });
    const asked = await other.person.browser.request(appLogout.toString());
    expect(asked.status).toBe(200);
    expect(asked.text).toContain('id="op.logoutForm"');
    expect(autoSubmits(asked)).toBe(false);
  });

  it('with SIGNUP=invite offers no sign-up: no link on the login page and 404 on its endpoints', async () => {
    const pending = await beginLogin(rp);
    const person = new Person(sesame.baseUrl);
    const loginPage = await person.open(pending.url);
    expect(loginPage.text).toContain('Sign in with a passkey');
    expect(loginPage.text).not.toContain('Create an account');
    const uid = /\/interaction\/([^/?#]+)/.exec(loginPage.url)![1];
    expect((await person.browser.request(`/interaction/${uid}/signup`)).status).toBe(404);
    const options = await person.browser.postJson(`/interaction/${uid}/signup/options`, loginPage.csrf(), {
      email: 'walk-in@example.com',
    });
    expect(options.status).toBe(404);
    expect(
      await sesame.db.selectFrom('users').select('id').where('email', '=', 'walk-in@example.com').execute(),
    ).toHaveLength(0);
  });

  it('signs a browser that deleted a passkey out when a recovery ends every sign-in while it waits to be signed in again', async () => {
    const { userId, rogue, rogueCsrf } = await withIntruder(sesame, 'delete-race@example.com');
    const ownerIds = await credentialIds(sesame, userId);

    // The owner, on a new device, has a recovery link and is about to finish its ceremony.
    const { finish } = await recoveryAboutToFinish(sesame, 'delete-race@example.com');

    // The rogue deletes the owner's passkey just after a second begins...
    await untilSecondBegins();
    const rogueDelete = rogue.browser.postJson(`/account/passkeys/${ownerIds[0]}/delete`, rogueCsrf, {});
    await untilAudited(sesame.db, 'passkey.delete', userId);
    // ...and the owner's recovery, which ends every other sign-in, completes meanwhile.
    expect((await finish()).status).toBe(200);
    expect((await rogueDelete).status).toBe(200);
    // The rogue's browser must be signed out after the owner's recovery.
    const after = await rogue.browser.request('/account');
    expect(after.status).toBe(302);
  });

  it('does not sign in the browser that used a recovery link when an admin disables the account while it waits to be signed in', async () => {
    const { userId } = await onboard(sesame, 'link-race@example.com');
    const { recovering, finish } = await recoveryAboutToFinish(sesame, 'link-race@example.com');

    // The recovery completes just after a second begins...
    await untilSecondBegins();
    const recovered = finish();
    await untilAudited(sesame.db, 'link.recovery.use', userId);
    // ...and an admin disables the account while its browser waits to be signed in; they
    // enable it again once the browser has its answer.
    await disableUser(sesame.db, userId, 'test');
    expect((await recovered).status).toBe(200);
    await enableUser(sesame.db, userId, 'test');
    // No sign-in of that browser outlives the disable: it signs in anew with its passkey.
    const after = await recovering.browser.request('/account');
    expect(after.status).toBe(302);
  });
});
