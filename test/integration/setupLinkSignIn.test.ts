import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { issueSetupLink } from '../../src/accounts/setupLink.js';
import { sha256Hex } from '../../src/crypto.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { startAppWithMail } from '../support/mailServer.js';
import { Person, uidOf } from '../support/oidcFlow.js';
import { useLink } from '../support/oneTimeLinkFlow.js';
import { firstRunApp, setupPath } from '../support/setupLinks.js';
import type { AssertionTamper } from '../support/softAuthenticator.js';
import type { TestApp } from '../support/testApp.js';

describe('the setup link, for the owner of an existing account ("Sign in with a passkey")', () => {
  const firstRun = firstRunApp();
  const { newLink } = firstRun;
  let sesame: TestApp;
  beforeEach(() => {
    sesame = firstRun.sesame();
  });

  /** An account made by signing up through the login page (SIGNUP=open), in a fresh browser afterwards. */
  async function signedUp(email: string): Promise<Person> {
    const person = new Person(sesame.baseUrl);
    await person.signUp(asPage(await person.browser.follow('/admin')), email);
    return person.inNewBrowser();
  }

  /** The setup page's CSRF token and its "Sign in with a passkey" request options. */
  async function startSignIn(person: Person, url: string) {
    const page = await person.browser.request(setupPath(url));
    expect(page.status).toBe(200);
    const csrf = page.csrf();
    const options = await person.browser.postJson(`${setupPath(url)}/sign-in/options`, csrf, {});
    expect(options.status).toBe(200);
    return { csrf, options: options.json<PublicKeyCredentialRequestOptionsJSON>() };
  }

  const finishSignIn = async (
    person: Person,
    url: string,
    csrf: string,
    options: PublicKeyCredentialRequestOptionsJSON,
    tamper?: AssertionTamper,
  ) =>
    person.browser.postJson(
      `${setupPath(url)}/sign-in/verify`,
      csrf,
      await person.authenticator.getAssertion(options, person.browser.origin, tamper),
    );

  /** Uses the setup page as its script does when "Sign in with a passkey" is pressed. */
  async function signInAtSetup(person: Person, url: string, tamper?: AssertionTamper) {
    const { csrf, options } = await startSignIn(person, url);
    return finishSignIn(person, url, csrf, options, tamper);
  }

  const setupAudits = (userId: string) =>
    sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'setup.link.use')
      .where('target', '=', userId)
      .execute();

  /** A refusal changed nothing: nobody is an administrator, and the link still works. */
  async function expectNothingChanged(url: string, email: string) {
    expect(await usersQueries.countActiveAdmins(sesame.db)).toBe(0);
    const user = (await usersQueries.findByEmail(sesame.db, email))!;
    expect(user.is_admin).toBe(false);
    expect(await countRows(sesame.db, 'setup_links')).toBeGreaterThan(0);
    expect(await setupAudits(user.id)).toEqual([]);
    expect((await new Person(sesame.baseUrl).browser.request(setupPath(url))).status).toBe(200);
  }

  it('offers "Sign in with a passkey" on the setup page, beside the form', async () => {
    const page = await new Person(sesame.baseUrl).browser.request(setupPath(await newLink()));
    expect(page.text).toContain(
      'Already have an account? Sign in with its passkey to make it the administrator.',
    );
    expect(page.text).toMatch(/<button id="setup-sign-in" type="button">Sign in with a passkey<\/button>/);
  });

  it('makes a signed-up account the administrator with its passkey, signs it in, uses up the link and audits it', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    const before = (await sesame.db.selectFrom('credentials').selectAll().executeTakeFirstOrThrow())!;

    const verify = await signInAtSetup(owner, url);
    expect(verify.status).toBe(200);
    expect(verify.json()).toEqual({ redirect: '/admin' });

    const user = (await usersQueries.findByEmail(sesame.db, 'owner@example.com'))!;
    expect(user.is_admin).toBe(true);
    expect(await countRows(sesame.db, 'users')).toBe(1);
    expect(await countRows(sesame.db, 'setup_links')).toBe(0);
    const [audit, ...more] = await setupAudits(user.id);
    expect(more).toEqual([]);
    expect(audit).toMatchObject({ actor: `user:${user.id}` });
    expect(audit!.details).toMatchObject({
      email: 'owner@example.com',
      credential: before.id,
      promoted: true,
    });
    // The passkey's use is recorded as a sign-in's.
    const after = await sesame.db.selectFrom('credentials').selectAll().executeTakeFirstOrThrow();
    expect(Number(after.counter)).toBeGreaterThan(Number(before.counter));
    expect(after.last_used_at).not.toBeNull();

    const admin = await owner.browser.request('/admin/users');
    expect(admin.status).toBe(200);
    expect(admin.text).toContain('owner@example.com');

    // Used up: a second use is refused, by the same account or another.
    const again = await owner.inNewBrowser().browser.request(setupPath(url));
    expect(again.status).toBe(410);
    const other = await signedUp('other@example.com');
    const page = await other.browser.request(setupPath(url));
    expect(page.status).toBe(410);
    expect((await usersQueries.findByEmail(sesame.db, 'other@example.com'))!.is_admin).toBe(false);
  });

  it("refuses an assertion that names another account's user handle, or none, and changes nothing", async () => {
    await signedUp('first@example.com');
    const second = await signedUp('second@example.com');
    const first = (await usersQueries.findByEmail(sesame.db, 'first@example.com'))!;
    const url = await newLink();
    /** The second account's assertion, on a challenge of its own, with `userHandle` in its place. */
    async function postAs(userHandle: string | undefined) {
      const { csrf, options } = await startSignIn(second, url);
      const assertion = await second.authenticator.getAssertion(options, second.browser.origin);
      return second.browser.postJson(`${setupPath(url)}/sign-in/verify`, csrf, {
        ...assertion,
        response: { ...assertion.response, userHandle },
      });
    }
    const handle = Buffer.from(first.id.replaceAll('-', ''), 'hex').toString('base64url');
    for (const refused of [await postAs(handle), await postAs(undefined)]) {
      expect(refused.status).toBe(400);
      expect(refused.json()).toMatchObject({ error: 'verification_failed' });
    }
    await expectNothingChanged(url, 'first@example.com');
    await expectNothingChanged(url, 'second@example.com');
  });

  it('makes an invited account the administrator the same way', async () => {
    const { url: invite } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'invited@example.com',
      actor: 'test',
    });
    const invited = new Person(sesame.baseUrl);
    expect((await useLink(invited, invite)).status).toBe(200);
    const url = await newLink();
    const verify = await signInAtSetup(invited.inNewBrowser(), url);
    expect(verify.status).toBe(200);
    expect((await usersQueries.findByEmail(sesame.db, 'invited@example.com'))!.is_admin).toBe(true);
    expect(await countRows(sesame.db, 'setup_links')).toBe(0);
  });

  it('refuses an unknown passkey and a bad signature, and changes nothing', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    const unknown = await signInAtSetup(owner, url, {
      credentialId: Buffer.from('no such passkey').toString('base64url'),
    });
    expect(unknown.status).toBe(401);
    expect(unknown.json()).toMatchObject({ error: expect.any(String) });
    const forged = await signInAtSetup(owner, url, { badSignature: true });
    expect(forged.status).toBe(400);
    expect(forged.json()).toMatchObject({ error: 'verification_failed' });
    await expectNothingChanged(url, 'owner@example.com');
  });

  it('refuses an assertion without user verification, and changes nothing', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    const verify = await signInAtSetup(owner, url, { userVerified: false });
    expect(verify.status).toBe(400);
    expect(verify.json()).toMatchObject({ error: 'verification_failed' });
    await expectNothingChanged(url, 'owner@example.com');
  });

  it('uses a challenge once: a replay is refused, and changes nothing', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    const { csrf, options } = await startSignIn(owner, url);
    expect((await finishSignIn(owner, url, csrf, options, { badSignature: true })).status).toBe(400);
    const replay = await finishSignIn(owner, url, csrf, options);
    expect(replay.status).toBe(400);
    expect(replay.json()).toMatchObject({ error: 'challenge_invalid' });
    await expectNothingChanged(url, 'owner@example.com');
  });

  it("refuses a challenge from another setup link, from the setup form's registration, or from the login page", async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    // A second live link, as two instances starting at once could leave behind.
    const other = await newLink();
    await sesame.db
      .insertInto('setup_links')
      .values({ token_hash: sha256Hex(url.split('/').at(-1)!), expires_at: new Date(Date.now() + 3600_000) })
      .execute();

    const { options: elsewhere } = await startSignIn(owner, other);
    const { csrf } = await startSignIn(owner, url);
    const fromOtherLink = await finishSignIn(owner, url, csrf, elsewhere);
    expect(fromOtherLink.status).toBe(400);
    expect(fromOtherLink.json()).toMatchObject({ error: 'challenge_invalid' });

    const registration = await owner.browser.postJson(`${setupPath(url)}/options`, csrf, {
      email: 'new@example.com',
    });
    expect(registration.status).toBe(200);
    const fromRegistration = await finishSignIn(owner, url, csrf, {
      challenge: registration.json<{ challenge: string }>().challenge,
      userVerification: 'required',
    });
    expect(fromRegistration.status).toBe(400);
    expect(fromRegistration.json()).toMatchObject({ error: 'challenge_invalid' });

    const login = asPage(await owner.browser.follow('/admin'));
    const loginOptions = await owner.browser.postJson(
      `/interaction/${uidOf(login)}/login/options`,
      login.csrf(),
      {},
    );
    expect(loginOptions.status).toBe(200);
    const fromLogin = await finishSignIn(owner, url, csrf, loginOptions.json());
    expect(fromLogin.status).toBe(400);
    expect(fromLogin.json()).toMatchObject({ error: 'challenge_invalid' });

    await expectNothingChanged(url, 'owner@example.com');
  });

  it('refuses a disabled account and a blocked passkey, and changes nothing', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    await sesame.db.updateTable('users').set({ disabled_at: new Date() }).execute();
    const disabled = await signInAtSetup(owner, url);
    expect(disabled.status).toBe(403);
    expect(disabled.json()).toMatchObject({ error: 'account_disabled' });

    await sesame.db.updateTable('users').set({ disabled_at: null }).execute();
    await sesame.db.updateTable('credentials').set({ suspected_clone_at: new Date() }).execute();
    const blocked = await signInAtSetup(owner, url);
    expect(blocked.status).toBe(403);
    expect(blocked.json()).toMatchObject({ error: 'passkey_blocked' });
    await expectNothingChanged(url, 'owner@example.com');
  });

  it('blocks a passkey whose counter went backwards, as a sign-in does, and makes nobody administrator', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    // The passkey's stored counter is ahead of what its authenticator will present: a copy.
    await sesame.db.updateTable('credentials').set({ counter: 1_000_000 }).execute();
    const copy = await signInAtSetup(owner, url);
    expect(copy.status).toBe(403);
    expect(copy.json()).toMatchObject({ error: 'passkey_blocked' });
    const credential = await sesame.db.selectFrom('credentials').selectAll().executeTakeFirstOrThrow();
    expect(credential.suspected_clone_at).not.toBeNull();
    await expectNothingChanged(url, 'owner@example.com');
  });

  it('dies when an administrator appears another way, even with the passkey prompt already open', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    const { csrf, options } = await startSignIn(owner, url);
    await usersQueries.insert(sesame.db, { email: 'boss@example.com', name: null, isAdmin: true });
    const verify = await finishSignIn(owner, url, csrf, options);
    expect(verify.status).toBe(410);
    expect(verify.json()).toMatchObject({ error: 'admin_exists' });
    expect((await usersQueries.findByEmail(sesame.db, 'owner@example.com'))!.is_admin).toBe(false);
    expect(await countRows(sesame.db, 'setup_links')).toBe(1);
  });

  it('refuses a POST without the page CSRF token', async () => {
    const owner = await signedUp('owner@example.com');
    const url = await newLink();
    await owner.browser.request(setupPath(url));
    expect((await owner.browser.postJson(`${setupPath(url)}/sign-in/options`, 'forged', {})).status).toBe(
      403,
    );
    await expectNothingChanged(url, 'owner@example.com');
  });
});

describe('the setup link for an existing account, with mail', () => {
  it('refuses an account whose address is not proven, then mails its owner that it is now an administrator, as `users promote` does', async () => {
    const { mail, sesame, stop } = await startAppWithMail();
    try {
      const owner = new Person(sesame.baseUrl);
      await owner.signUp(asPage(await owner.browser.follow('/admin')), 'boss@example.com');
      const url = (await issueSetupLink(sesame.db, sesame.config))!.url;
      const signInAtSetup = async () => {
        const page = await owner.browser.request(setupPath(url));
        const csrf = page.csrf();
        const options = await owner.browser.postJson(`${setupPath(url)}/sign-in/options`, csrf, {});
        return owner.browser.postJson(
          `${setupPath(url)}/sign-in/verify`,
          csrf,
          await owner.authenticator.getAssertion(options.json(), owner.browser.origin),
        );
      };
      // Its address not proven yet: whoever gets mail there could take the account over, and
      // the role with it. Refused, and nothing changed.
      const unproven = await signInAtSetup();
      expect(unproven.status).toBe(409);
      expect(unproven.json()).toMatchObject({ error: 'address_unproven' });
      const boss = (await usersQueries.findByEmail(sesame.db, 'boss@example.com'))!;
      expect(boss.is_admin).toBe(false);
      expect((await new Person(sesame.baseUrl).browser.request(setupPath(url))).status).toBe(200);

      // Proven (the welcome mail's link), it goes through.
      await sesame.db.updateTable('users').set({ email_verified: true }).where('id', '=', boss.id).execute();
      const verify = await signInAtSetup();
      expect(verify.status).toBe(200);
      const subjects = async () => mail.to('boss@example.com').map((received) => received.subject);
      for (
        const until = Date.now() + 20_000;
        !(await subjects()).some((s) => s.includes('administrator'));
      ) {
        if (Date.now() > until) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await subjects()).toContain('Your Acme account is now an administrator');
    } finally {
      await stop();
    }
  });
});
