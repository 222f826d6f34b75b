import * as oidc from 'openid-client';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { type MailServer, startAppWithMail } from '../support/mailServer.js';
import {
  beginLogin,
  discoverRp,
  finishLogin,
  type PendingLogin,
  Person,
  stepUp,
  type TestRp,
} from '../support/oidcFlow.js';
import { onboard } from '../support/oneTimeLinkFlow.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import type { TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8907/callback';
const NOTES_URI = 'http://127.0.0.1:8907/notes/callback';
const BLOCKED = 'This passkey has been blocked. Sign in with another passkey or recover your account.';

/**
 * A correctly signed assertion whose counter went backwards proves a second copy of the
 * passkey's private key. The copy controls its counter, so refusing only that assertion would
 * let it in on its next try: the passkey is blocked for both copies, recorded, and its owner told.
 */
describe('a passkey whose copy gave itself away', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let stop: () => Promise<void>;
  let rp: TestRp;
  /** A third-party app that stays signed in (offline_access) and has a back-channel logout endpoint. */
  let notes: TestRp;
  let notesId: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    ({ mail, sesame, stop } = await startAppWithMail(
      {},
      { log: createLogger('warn', (line) => logLines.push(line)) },
    ));
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Wiki', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    const registered = await createClient(
      sesame.db,
      // Nothing listens there: the test reads the back-channel outbox, not the app.
      {
        name: 'Notes',
        redirect_uris: [NOTES_URI],
        backchannel_logout_uri: 'http://127.0.0.1:8907/backchannel',
      },
      'test',
    );
    notesId = registered.client.client_id;
    notes = await discoverRp(
      sesame.baseUrl,
      { client_id: notesId, client_secret: registered.client_secret },
      NOTES_URI,
    );
  });

  afterAll(() => stop?.());

  /**
   * Signs in at a fresh login page (`login`'s, else the Wiki's) with `authenticator` (its own
   * counter unless `signCount`); returns Sesame's answer.
   */
  async function signIn(
    person: Person,
    authenticator: SoftAuthenticator,
    signCount?: number,
    login?: PendingLogin,
  ) {
    const page = await person.open((login ?? (await beginLogin(rp))).url);
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const csrf = page.csrf();
    const options = await person.browser.postJson(`/interaction/${uid}/login/options`, csrf, {});
    const assertion = await authenticator.getAssertion(options.json(), person.browser.origin, { signCount });
    const answer = await person.browser.postJson(`/interaction/${uid}/login/verify`, csrf, assertion);
    return {
      status: answer.status,
      body: answer.json<{ error?: string; error_description?: string; redirect?: string }>(),
    };
  }

  const credentialRow = (id: string) =>
    sesame.db
      .selectFrom('credentials')
      .select(['counter', 'suspected_clone_at'])
      .where('id', '=', id)
      .executeTakeFirst();

  const cloneEvents = (userId: string) =>
    sesame.db
      .selectFrom('audit_events')
      .select(['actor', 'target', 'details'])
      .where('action', '=', 'passkey.clone_suspected')
      .where('target', '=', userId)
      .execute();

  const blocked = { status: 403, body: { error: 'passkey_blocked', error_description: BLOCKED } };

  it('blocks it for both copies at its first backwards counter, records it, mails the owner and shows it on the account page', async () => {
    const email = 'twin@example.com';
    const { person: owner, userId } = await onboard(sesame, email);
    const credentialId = owner.authenticator.credentials()[0]!.id;
    const copy = owner.authenticator.clone();
    // A second passkey of the owner's, to delete the blocked one with.
    const second = new SoftAuthenticator();
    let csrf = (await owner.browser.request('/account')).csrf();
    expect((await stepUp(owner, csrf)).status).toBe(200);
    const options = await owner.browser.postJson('/account/passkeys/options', csrf, {});
    const added = await second.createCredential(options.json(), owner.browser.origin);
    expect((await owner.browser.postJson('/account/passkeys/verify', csrf, added)).status).toBe(200);

    const elsewhere = new Person(sesame.baseUrl, copy);
    const ownerAway = owner.inNewBrowser();
    expect((await signIn(ownerAway, owner.authenticator)).status).toBe(200);
    expect((await signIn(ownerAway.inNewBrowser(), owner.authenticator)).status).toBe(200);
    // Onboarding's step-up was the first use: the owner's counter is at 3, the copy's at 0.
    expect(Number((await credentialRow(credentialId))!.counter)).toBe(3);

    // The copy answers with counter 1: blocked, and the answer does not say why.
    expect(await signIn(elsewhere, copy)).toEqual(blocked);
    // Neither the copy with a higher counter, nor the owner, signs in any more.
    expect(await signIn(elsewhere.inNewBrowser(), copy, 1000)).toEqual(blocked);
    expect(await signIn(ownerAway.inNewBrowser(), owner.authenticator)).toEqual(blocked);
    // Every sign-in of the account ended with the block; the owner signs in again with the other passkey.
    expect((await owner.browser.request('/account')).status).toBe(302);
    const again = new Person(sesame.baseUrl, second);
    const signedIn = await signIn(again, second);
    expect(signedIn.status).toBe(200);
    await again.continueToApp(signedIn.body.redirect!, REDIRECT_URI);
    csrf = (await again.browser.request('/account')).csrf();
    // The blocked passkey confirms no change (step-up) either.
    const refusedStepUp = await stepUp(again, csrf, owner.authenticator);
    expect({ status: refusedStepUp.status, body: refusedStepUp.json() }).toMatchObject(blocked);

    const row = await credentialRow(credentialId);
    expect(Number(row!.counter)).toBe(3);
    expect(row!.suspected_clone_at).toBeInstanceOf(Date);
    const events = await cloneEvents(userId);
    expect(events).toEqual([
      {
        actor: 'system',
        target: userId,
        details: expect.objectContaining({ credential: credentialId, storedCounter: 3, presentedCounter: 1 }),
      },
    ]);
    const warnings = logLines.filter((line) => line.includes('passkey blocked'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({
      level: 'warn',
      user: userId,
      credential: credentialId.slice(0, 12),
    });

    // The invite, the added passkey's notice, then this one.
    const notice = (await mail.waitFor(email, 3))[2]!;
    expect(notice.subject).toBe('A passkey of your Acme account was blocked');
    expect(notice.text).toContain('a copy of it exists elsewhere');
    expect(notice.text).toContain('every sign-in of your account has ended, in every app too');
    expect(notice.text).toContain(`${sesame.baseUrl}/account`);

    // The account page lists it as blocked; the owner confirms with the other passkey and deletes it.
    const page = await again.browser.request('/account');
    const item = new RegExp(`data-credential-id="${credentialId}"[\\s\\S]*?</li>`).exec(page.text)![0];
    expect(item).toContain('<span class="badge blocked">Blocked</span>');
    expect(page.text.match(/badge blocked/g)).toHaveLength(1);
    csrf = page.csrf();
    expect((await stepUp(again, csrf, second)).status).toBe(200);
    expect((await again.browser.postJson(`/account/passkeys/${credentialId}/delete`, csrf, {})).status).toBe(
      200,
    );
    expect(await credentialRow(credentialId)).toBeUndefined();
  });

  it('blocks it when the copy gives itself away at a step-up, in the language of the account', async () => {
    const email = 'zwilling@example.com';
    const { person: owner, userId } = await onboard(sesame, email);
    await sesame.db.updateTable('users').set({ locale: 'de' }).where('id', '=', userId).execute();
    const credentialId = owner.authenticator.credentials()[0]!.id;
    const copy = owner.authenticator.clone();
    const csrf = (await owner.browser.request('/account')).csrf();
    expect((await stepUp(owner, csrf)).status).toBe(200);

    const refused = await stepUp(owner, csrf, copy);
    expect({ status: refused.status, error: refused.json().error }).toEqual({
      status: 403,
      error: 'passkey_blocked',
    });
    expect((await credentialRow(credentialId))!.suspected_clone_at).toBeInstanceOf(Date);
    expect(await cloneEvents(userId)).toHaveLength(1);
    // The block signed the owner's browser out too.
    expect((await owner.browser.request('/account')).status).toBe(302);
    const notice = (await mail.waitFor(email, 2))[1]!;
    expect(notice.subject).toBe('Ein Passkey Ihres Kontos bei Acme wurde gesperrt');
    expect(notice.text).toContain('alle Anmeldungen Ihres Kontos wurden beendet, auch in allen Apps');
  });

  it("ends every sign-in of the account when it blocks it: the copy's session and step-up are gone with it", async () => {
    const { person: owner } = await onboard(sesame, 'shadow@example.com');
    const copy = owner.authenticator.clone();
    const elsewhere = new Person(sesame.baseUrl, copy);
    // The copy gets in first, with a counter ahead of the owner's, and confirms a change.
    const first = await signIn(elsewhere, copy, 1000);
    expect(first.status).toBe(200);
    await elsewhere.continueToApp(first.body.redirect!, REDIRECT_URI);
    const csrf = (await elsewhere.browser.request('/account')).csrf();
    const options = await elsewhere.browser.postJson('/account/step-up/options', csrf, {});
    const assertion = await copy.getAssertion(options.json(), elsewhere.browser.origin, { signCount: 1001 });
    expect((await elsewhere.browser.postJson('/account/step-up/verify', csrf, assertion)).status).toBe(200);

    // The owner's next sign-in gives the copy away.
    expect(await signIn(owner.inNewBrowser(), owner.authenticator)).toEqual(blocked);

    // The copy's browser is signed out, and its step-up cannot add a passkey of its own.
    const account = await elsewhere.browser.request('/account');
    expect(account.status).toBe(302);
    expect(account.location()).toContain('/account/login');
    expect((await elsewhere.browser.postJson('/account/passkeys/options', csrf, {})).status).toBe(401);
    // So is the owner's own browser (sessions do not record which copy signed them in).
    expect((await owner.browser.request('/account')).status).toBe(302);
  });

  it("revokes every grant and token of the account when it blocks it: an app's refresh token may be the copy's", async () => {
    const { person: owner, userId } = await onboard(sesame, 'offline@example.com');
    const copy = owner.authenticator.clone();
    const elsewhere = new Person(sesame.baseUrl, copy);
    // The copy signs in to an app that stays signed in (offline_access) and gets its tokens.
    const login = await beginLogin(notes, 'openid email offline_access', { prompt: 'consent' });
    const first = await signIn(elsewhere, copy, 1000, login);
    expect(first.status).toBe(200);
    const tokens = await finishLogin(
      notes,
      login,
      await elsewhere.continueToApp(first.body.redirect!, NOTES_URI),
    );
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect((await oidc.tokenIntrospection(notes.config, tokens.access_token)).active).toBe(true);
    const userinfo = () =>
      fetch(notes.config.serverMetadata().userinfo_endpoint!, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
    expect((await userinfo()).status).toBe(200);

    // The owner's next sign-in gives the copy away.
    expect(await signIn(owner.inNewBrowser(), owner.authenticator)).toEqual(blocked);

    // Neither the access token nor the refresh token works any more, and the app is told.
    expect(await oidc.tokenIntrospection(notes.config, tokens.access_token)).toEqual({ active: false });
    expect((await userinfo()).status).toBe(401);
    await expect(oidc.refreshTokenGrant(notes.config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const logouts = await sesame.db
      .selectFrom('backchannel_deliveries')
      .select('sub')
      .where('client_id', '=', notesId)
      .execute();
    expect(logouts.map((row) => row.sub)).toContain(userId);
    // The audit entry counts what went: the sessions, the app's grant and its tokens.
    const [event] = await cloneEvents(userId);
    expect((event!.details as { revoked: number }).revoked).toBeGreaterThanOrEqual(4);
  });
});
