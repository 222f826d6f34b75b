import { setTimeout as sleep } from 'node:timers/promises';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { MAX_PASSKEYS_PER_ACCOUNT } from '../../src/accounts/passkeys.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { queueSecurityNotice } from '../../src/mail/notices.js';
import { createClient } from '../../src/oidc/clients.js';
import { type MailServer, startAppWithMail } from '../support/mailServer.js';
import { beginLogin, discoverRp, Person, stepUp } from '../support/oidcFlow.js';
import { onboard, untilLinkMailed, useLink } from '../support/oneTimeLinkFlow.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import type { TestApp } from '../support/testApp.js';

describe('security notices by mail', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ mail, sesame, stop } = await startAppWithMail());
  });

  afterAll(() => stop?.());

  const CALLBACK = 'http://127.0.0.1:8904/callback';

  /** An app to sign in to through Sesame's sign-in page. */
  async function appToSignInTo() {
    const redirectUri = CALLBACK;
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Wiki', redirect_uris: [redirectUri] },
      'test',
    );
    return discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, redirectUri);
  }

  /** The subjects of the mails to `email`, after the invite that onboard() mailed. */
  const noticesTo = (email: string) =>
    mail
      .to(email)
      .slice(1)
      .map((m) => m.subject);

  it('tells the owner when a passkey is added and when one is removed', async () => {
    const { person } = await onboard(sesame, 'keys@example.com');
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    const options = await person.browser.postJson('/account/passkeys/options', csrf, {});
    const credential = await new SoftAuthenticator().createCredential(options.json(), person.browser.origin);
    expect((await person.browser.postJson('/account/passkeys/verify', csrf, credential)).status).toBe(200);
    const [added] = (await mail.waitFor('keys@example.com', 2)).slice(1);
    expect(added!.subject).toBe('A passkey was added to your Acme account');
    expect(added!.text).toContain('can now sign in to your account, keys@example.com');
    expect(added!.html).toContain(`href="${sesame.baseUrl}/account"`);

    expect(
      (await person.browser.postJson(`/account/passkeys/${credential.id}/delete`, csrf, {})).status,
    ).toBe(200);
    const removed = (await mail.waitFor('keys@example.com', 3))[2]!;
    // It says which passkey went, by the name the added notice gave it.
    const name = /A new passkey \((.+?)\)/.exec(added!.text)![1];
    expect(removed.text).toContain(`The passkey ${name} can no longer sign in`);
    expect(noticesTo('keys@example.com')).toEqual([
      'A passkey was added to your Acme account',
      'A passkey was removed from your Acme account',
    ]);
  });

  it('tells the owner when a recovery link was used', async () => {
    await onboard(sesame, 'lost@example.com');
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'lost@example.com',
      purpose: 'recovery',
      actor: 'test',
    });
    await untilLinkMailed(sesame.db, url);
    expect((await useLink(new Person(sesame.baseUrl), url)).status).toBe(200);
    // The invite, the recovery link, then the notice.
    const mails = await mail.waitFor('lost@example.com', 3);
    expect(mails[2]!.subject).toBe('A recovery link was used on your Acme account');
  });

  /** The subject of the outbox's newest mail to `email`: the notice as Sesame wrote it. */
  const lastQueuedSubject = async (email: string) =>
    (
      await sesame.db
        .selectFrom('mail_outbox')
        .select('subject')
        .where('to_address', '=', email)
        .orderBy('created_at', 'desc')
        .executeTakeFirstOrThrow()
    ).subject;

  it('writes a notice in the language of the request that caused it, when the owner chose none', async () => {
    await onboard(sesame, 'perdu@example.com');
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'perdu@example.com',
      purpose: 'recovery',
      actor: 'test',
    });
    await untilLinkMailed(sesame.db, url);
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'fr-FR,fr;q=0.9';
    expect((await useLink(person, url)).status).toBe(200);
    expect(await lastQueuedSubject('perdu@example.com')).toBe(
      'Un lien de récupération a été utilisé sur votre compte Acme',
    );
    const mails = await mail.waitFor('perdu@example.com', 3);
    expect(mails[2]!.subject).toBe('Un lien de récupération a été utilisé sur votre compte Acme');
  });

  it('writes a notice an administrator caused in the language the account was made in', async () => {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'chefin@example.com',
      actor: 'test',
    });
    await untilLinkMailed(sesame.db, url);
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'de';
    expect((await useLink(person, url)).status).toBe(200);
    await cliJsonOn(sesame, ['users', 'promote', 'chefin@example.com']);
    const mails = await mail.waitFor('chefin@example.com', 2);
    expect(mails[1]!.subject).toBe('Ihr Konto bei Acme hat jetzt Administratorrechte');
  });

  it("writes a notice an administrator caused in the language of the person's last sign-in", async () => {
    // An account from before Sesame kept any language (migration 0029), signed in to by a German browser.
    const { person, userId } = await onboard(sesame, 'vorher@example.com');
    await sesame.db.updateTable('users').set({ signup_locale: null }).where('id', '=', userId).execute();
    const rp = await appToSignInTo();
    const signedIn = person.inNewBrowser();
    signedIn.browser.headers['accept-language'] = 'de';
    await signedIn.signIn(await signedIn.open((await beginLogin(rp, 'openid')).url));
    const spoken = () =>
      sesame.db
        .selectFrom('users')
        .select('signup_locale')
        .where('id', '=', userId)
        .executeTakeFirstOrThrow();
    expect(await spoken()).toEqual({ signup_locale: 'de' });

    await cliJsonOn(sesame, ['users', 'promote', 'vorher@example.com']);
    const mails = await mail.waitFor('vorher@example.com', 2);
    expect(mails[1]!.subject).toBe('Ihr Konto bei Acme hat jetzt Administratorrechte');

    // The next sign-in, from a French page, is the language from then on.
    const again = person.inNewBrowser();
    again.browser.headers['accept-language'] = 'fr';
    await again.signIn(await again.open((await beginLogin(rp, 'openid')).url));
    expect(await spoken()).toEqual({ signup_locale: 'fr' });
  });

  it('tells the owner once when the account becomes an administrator', async () => {
    await onboard(sesame, 'boss@example.com');
    await cliJsonOn(sesame, ['users', 'promote', 'boss@example.com']);
    await cliJsonOn(sesame, ['users', 'promote', 'boss@example.com']);
    const mails = await mail.waitFor('boss@example.com', 2);
    expect(mails[1]!.subject).toBe('Your Acme account is now an administrator');
    await sleep(1_500);
    expect(noticesTo('boss@example.com')).toEqual(['Your Acme account is now an administrator']);
  });
  /** How many passkeys the account `userId` has. */
  const passkeysOf = async (userId: string) =>
    (await sesame.db.selectFrom('credentials').select('id').where('user_id', '=', userId).execute()).length;

  /** Adds a passkey from the account page of `person`'s browser (a step-up done); returns its response and credential id. */
  async function addPasskey(person: Person, csrf: string) {
    const options = await person.browser.postJson('/account/passkeys/options', csrf, {});
    if (options.status !== 200) return { response: options, id: undefined };
    const credential = await new SoftAuthenticator().createCredential(options.json(), person.browser.origin);
    const response = await person.browser.postJson('/account/passkeys/verify', csrf, credential);
    return { response, id: credential.id };
  }

  const removedSubject = 'A passkey was removed from your Acme account';
  const lure = 'WIN 1000 USD now at http://evil.example/claim';

  /** Adds a passkey, renames it to the lure and deletes it; returns the removal notice's text. */
  async function renameAndDelete(person: Person, email: string) {
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    const { response, id } = await addPasskey(person, csrf);
    expect(response.status).toBe(200);
    expect(
      (await person.browser.postJson(`/account/passkeys/${id}/rename`, csrf, { name: lure })).status,
    ).toBe(200);
    expect((await person.browser.postJson(`/account/passkeys/${id}/delete`, csrf, {})).status).toBe(200);
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(50)) {
      const removed = mail.to(email).find((m) => m.subject === removedSubject);
      if (removed) return removed;
    }
    throw new Error(`no removal notice to ${email}`);
  }

  it("never puts a passkey's chosen name in a notice to an address nobody proved", async () => {
    // Anyone may sign up with someone else's address, and name a passkey as they like.
    const person = new Person(sesame.baseUrl);
    const login = await beginLogin(await appToSignInTo(), 'openid');
    await person.continueToApp(
      await person.signUp(await person.open(login.url), 'victim@example.com'),
      CALLBACK,
    );
    const removed = await renameAndDelete(person, 'victim@example.com');
    expect(removed.text).toContain('The passkey can no longer sign in to your account');
    expect(removed.text).not.toContain('evil.example');
    expect(removed.html).not.toContain('evil.example');
  });

  it('names the passkey in a notice to a proven address', async () => {
    const { person } = await onboard(sesame, 'proven@example.com');
    const removed = await renameAndDelete(person, 'proven@example.com');
    expect(removed.text).toContain(`The passkey ${lure} can no longer sign in`);
  });

  it('mails at most five security notices an hour to an address nobody proved, and records the ones held back', async () => {
    // Anyone may sign up with someone else's address and add passkeys over and over.
    const person = new Person(sesame.baseUrl);
    const login = await beginLogin(await appToSignInTo(), 'openid');
    await person.continueToApp(
      await person.signUp(await person.open(login.url), 'many@example.com'),
      CALLBACK,
    );
    const { id: userId } = await sesame.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'many@example.com')
      .executeTakeFirstOrThrow();
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    for (let i = 0; i < 8; i++) expect((await addPasskey(person, csrf)).response.status).toBe(200);
    await mail.waitFor('many@example.com', 6);
    await sleep(1_500);
    expect(noticesTo('many@example.com')).toEqual(Array(5).fill('A passkey was added to your Acme account'));
    const heldBack = await sesame.db
      .selectFrom('audit_events')
      .select('details')
      .where('action', '=', 'mail.notice_held_back')
      .where('target', '=', userId)
      .execute();
    expect(heldBack.map((row) => row.details)).toEqual(
      Array(3).fill(expect.objectContaining({ notice: 'passkey_added' })),
    );
    expect(await passkeysOf(userId)).toBe(9);
  });

  it("mails every security notice to a proven address: whoever makes the changes holds its owner's sign-in", async () => {
    const { person } = await onboard(sesame, 'proven-many@example.com');
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    for (let i = 0; i < 7; i++) expect((await addPasskey(person, csrf)).response.status).toBe(200);
    await mail.waitFor('proven-many@example.com', 7);
    await sleep(1_500);
    expect(noticesTo('proven-many@example.com')).toEqual(
      Array(7).fill('A passkey was added to your Acme account'),
    );
  });

  it('holds back a passkey blocked as a copy past five an hour to an address nobody proved, never a recovery', async () => {
    // An authenticator says its own counter: whoever signed up with the address can set the
    // block off as often as they add a passkey.
    const user = await usersQueries.insert(sesame.db, {
      email: 'blocked-many@example.com',
      name: null,
      emailVerified: false,
    });
    const queued = [];
    for (let i = 0; i < 6; i++)
      queued.push(await queueSecurityNotice(sesame.db, sesame.config, user, 'passkey_blocked'));
    expect(queued).toEqual([true, true, true, true, true, false]);
    expect(await queueSecurityNotice(sesame.db, sesame.config, user, 'recovery_used')).toBe(true);
  });

  it(`refuses an account's passkey past ${MAX_PASSKEYS_PER_ACCOUNT} with 409, and stores nothing`, async () => {
    const { person, userId } = await onboard(sesame, 'full@example.com');
    const passkeys = () => passkeysOf(userId);
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    for (let i = 1; i < MAX_PASSKEYS_PER_ACCOUNT - 1; i++) {
      expect((await addPasskey(person, csrf)).response.status).toBe(200);
    }
    expect(await passkeys()).toBe(MAX_PASSKEYS_PER_ACCOUNT - 1);

    // A ceremony begun with room for one more, while another browser of the account adds it.
    const begun = await person.browser.postJson('/account/passkeys/options', csrf, {});
    expect(begun.status).toBe(200);
    const other = person.inNewBrowser();
    const login = await beginLogin(await appToSignInTo(), 'openid');
    await other.continueToApp(await other.signIn(await other.open(login.url)), CALLBACK);
    const otherCsrf = (await other.browser.request('/account')).csrf();
    expect((await stepUp(other, otherCsrf)).status).toBe(200);
    expect((await addPasskey(other, otherCsrf)).response.status).toBe(200);
    expect(await passkeys()).toBe(MAX_PASSKEYS_PER_ACCOUNT);

    const late = await new SoftAuthenticator().createCredential(begun.json(), person.browser.origin);
    const refused = await person.browser.postJson('/account/passkeys/verify', csrf, late);
    expect(refused.status).toBe(409);
    expect(refused.json()).toMatchObject({
      error: 'conflict',
      error_description: 'You have the most passkeys an account may have (20). Remove one first.',
    });
    // A new ceremony is refused before it starts.
    const next = await addPasskey(person, csrf);
    expect(next.response.status).toBe(409);
    expect(await passkeys()).toBe(MAX_PASSKEYS_PER_ACCOUNT);
    expect(
      await sesame.db.selectFrom('credentials').select('id').where('id', '=', late.id).execute(),
    ).toEqual([]);
  });

  it(`refuses a recovery link that would keep ${MAX_PASSKEYS_PER_ACCOUNT} passkeys and add one, leaving the link usable`, async () => {
    const { person, userId } = await onboard(sesame, 'fullrecovery@example.com');
    const csrf = (await person.browser.request('/account')).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    for (let i = 1; i < MAX_PASSKEYS_PER_ACCOUNT; i++) {
      expect((await addPasskey(person, csrf)).response.status).toBe(200);
    }
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'fullrecovery@example.com',
      purpose: 'recovery',
      actor: 'test',
    });
    await untilLinkMailed(sesame.db, url);
    const kept = await useLink(new Person(sesame.baseUrl), url, undefined, { removeOtherPasskeys: false });
    expect(kept.status).toBe(409);
    expect(kept.json()).toMatchObject({ error: 'too_many_passkeys' });
    expect(await passkeysOf(userId)).toBe(MAX_PASSKEYS_PER_ACCOUNT);
    // Removing the others, the same link works.
    expect(
      (await useLink(new Person(sesame.baseUrl), url, undefined, { removeOtherPasskeys: true })).status,
    ).toBe(200);
    expect(await passkeysOf(userId)).toBe(1);
  });
});
