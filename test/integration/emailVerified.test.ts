import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { addGroupMember, createGroup, groupMembers } from '../../src/admin/groups.js';
import { changeUserClaim } from '../../src/admin/users.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { linkPath, onboard, useLink } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8904/callback';

/**
 * email_verified says whether someone proved they receive mail at the account's address:
 * self sign-up only claims it; a one-time link sent there proves it, and takes the account
 * over from whoever claimed the address first.
 */
describe('email_verified and one-time links on unproven accounts', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let clientId: string;

  beforeAll(async () => {
    sesame = await startTestApp({ SIGNUP: 'open' });
    const { client, client_secret } = await createClient(
      sesame.db,
      // Nothing listens there: the test reads the back-channel outbox, not the app.
      {
        name: 'Wiki',
        redirect_uris: [REDIRECT_URI],
        backchannel_logout_uri: 'http://127.0.0.1:8904/backchannel',
      },
      'test',
    );
    clientId = client.client_id;
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  const newEmail = () => `v${randomBytes(4).toString('hex')}@example.com`;

  /** Signs a new person up at the app; returns them (signed in) and their tokens. */
  async function selfSignUp(email: string, name?: string) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email profile');
    const next = await person.signUp(await person.open(pending.url), email, name);
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    return { person, tokens };
  }

  /** Signs an existing person in at the app from a fresh browser; returns the ID token's claims. */
  async function signInAtApp(person: Person) {
    const browser = person.inNewBrowser();
    const pending = await beginLogin(rp, 'openid email profile');
    const next = await browser.signIn(await browser.open(pending.url));
    return (await finishLogin(rp, pending, await browser.continueToApp(next, REDIRECT_URI))).claims()!;
  }

  const credentialIds = async (userId: string) =>
    (await sesame.db.selectFrom('credentials').select('id').where('user_id', '=', userId).execute()).map(
      (row) => row.id,
    );

  it('is false for an account made by self sign-up, in the ID token and at userinfo', async () => {
    const email = newEmail();
    const { tokens } = await selfSignUp(email);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ email, email_verified: false });
    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ email, email_verified: false });
  });

  it('is true for an account made with an invite link', async () => {
    const email = newEmail();
    const { person, userId } = await onboard(sesame, email);
    expect((await usersQueries.findById(sesame.db, userId))!.email_verified).toBe(true);
    expect(await signInAtApp(person)).toMatchObject({ sub: userId, email, email_verified: true });
  });

  it("gives the invitee a new account (a new sub) for a squatted address, and ends the squatter's for good", async () => {
    const email = newEmail();
    // The admin invites the address; before the invitee opens the link, someone signs up with it.
    const { url } = await createOneTimeLink(sesame.db, sesame.config, { email, admin: true, actor: 'test' });
    const squatter = await selfSignUp(email);
    const squatterSub = squatter.tokens.claims()!.sub;
    const squatterPasskeys = await credentialIds(squatterSub);
    expect(squatterPasskeys).toHaveLength(1);

    const owner = new Person(sesame.baseUrl);
    const page = await owner.browser.request(linkPath(url));
    expect(page.status).toBe(200);
    expect(page.text).toContain('passkeys it has now will be removed');
    expect((await useLink(owner, url, 'Real Owner')).status).toBe(200);

    // The app that keyed its account on the squatter's sub sees the owner as someone else: a
    // new sub, proven, with the owner's name and the invite's role. The squatter's account is gone.
    const ownerClaims = await signInAtApp(owner);
    expect(ownerClaims).toMatchObject({ email, email_verified: true, name: 'Real Owner' });
    expect(ownerClaims.sub).not.toBe(squatterSub);
    expect(await usersQueries.findById(sesame.db, squatterSub)).toBeUndefined();
    expect(await usersQueries.findById(sesame.db, ownerClaims.sub)).toMatchObject({ email, is_admin: true });
    expect(await credentialIds(ownerClaims.sub)).toEqual([owner.authenticator.credentials()[0]!.id]);
    expect(await credentialIds(squatterSub)).toEqual([]);
    // Everything the squatter held stopped working, and the app is told the old sub signed out.
    await expect(oidc.fetchUserInfo(rp.config, squatter.tokens.access_token, squatterSub)).rejects.toThrow();
    expect((await squatter.person.browser.request('/account')).status).toBe(302);
    await expect(signInAtApp(squatter.person)).rejects.toThrow(/401/);
    const logouts = await sesame.db
      .selectFrom('backchannel_deliveries')
      .select('sub')
      .where('client_id', '=', clientId)
      .where('sub', 'in', [squatterSub, ownerClaims.sub])
      .execute();
    expect(logouts.map((row) => row.sub)).toContain(squatterSub);
    expect(logouts.map((row) => row.sub)).not.toContain(ownerClaims.sub);
    // The audit names both accounts.
    expect(await auditQueries.recent(sesame.db, 10)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'user.taken_over',
          target: ownerClaims.sub,
          details: expect.objectContaining({
            previous_user: squatterSub,
            removed_passkeys: squatterPasskeys,
          }),
        }),
      ]),
    );
  });

  it("carries what an administrator gave the address over to its owner's new account, not the squatter's name", async () => {
    const squatter = await selfSignUp(newEmail(), 'Squatter');
    const squatterSub = squatter.tokens.claims()!.sub;
    const email = squatter.tokens.claims()!.email as string;
    const group = await createGroup(sesame.db, `g${randomBytes(4).toString('hex')}`, 'test');
    await addGroupMember(sesame.db, group.id, email, 'test', { unverified: true });
    await changeUserClaim(sesame.db, email, 'department', 'finance', 'test', { unverified: true });
    const recovery = await createOneTimeLink(sesame.db, sesame.config, {
      email,
      purpose: 'recovery',
      actor: 'test',
    });
    const owner = new Person(sesame.baseUrl);
    expect((await useLink(owner, recovery.url)).status).toBe(200);

    const ownerAccount = (await usersQueries.findByEmail(sesame.db, email))!;
    expect(ownerAccount.id).not.toBe(squatterSub);
    expect(ownerAccount).toMatchObject({
      email_verified: true,
      name: null,
      claims: { department: 'finance' },
    });
    expect((await groupMembers(sesame.db, group.id)).members.map((member) => member.id)).toEqual([
      ownerAccount.id,
    ]);
    // The used recovery link still reads as used, for the new account.
    expect((await owner.browser.request(linkPath(recovery.url))).status).toBe(410);
  });

  it('removes the passkeys of an unproven account on recovery too, and keeps those of a proven one', async () => {
    const unproven = await selfSignUp(newEmail());
    const unprovenSub = unproven.tokens.claims()!.sub;
    const recovery = await createOneTimeLink(sesame.db, sesame.config, {
      email: unproven.tokens.claims()!.email as string,
      purpose: 'recovery',
      actor: 'test',
    });
    const holder = new Person(sesame.baseUrl);
    expect((await useLink(holder, recovery.url)).status).toBe(200);
    const taken = (await usersQueries.findByEmail(sesame.db, unproven.tokens.claims()!.email as string))!;
    expect(taken).toMatchObject({ email_verified: true });
    expect(taken.id).not.toBe(unprovenSub);
    expect(await credentialIds(taken.id)).toEqual([holder.authenticator.credentials()[0]!.id]);
    expect(await credentialIds(unprovenSub)).toEqual([]);

    const proven = await onboard(sesame, newEmail());
    const before = await credentialIds(proven.userId);
    const user = (await usersQueries.findById(sesame.db, proven.userId))!;
    const again = await createOneTimeLink(sesame.db, sesame.config, { email: user.email, actor: 'test' });
    const newDevice = new Person(sesame.baseUrl);
    const page = await newDevice.browser.request(linkPath(again.url));
    expect(page.text).not.toContain('will be removed');
    expect((await useLink(newDevice, again.url)).status).toBe(200);
    expect((await credentialIds(proven.userId)).sort()).toEqual(
      [...before, newDevice.authenticator.credentials()[0]!.id].sort(),
    );
    // The old passkey still signs in.
    expect((await signInAtApp(proven.person)).sub).toBe(proven.userId);
  });
});
