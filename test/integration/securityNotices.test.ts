import { setTimeout as sleep } from 'node:timers/promises';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
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

  /** An app to sign in to through Sesame's sign-in page. */
  async function appToSignInTo() {
    const redirectUri = 'http://127.0.0.1:8904/callback';
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
});
