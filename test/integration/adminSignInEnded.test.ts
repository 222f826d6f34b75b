import { setTimeout } from 'node:timers/promises';
import { sql } from 'kysely';
import { signOutEverywhere } from '../../src/accounts/connectedApps.js';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { groupsQueries } from '../../src/db/queries/groups.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { signOutPrepared } from '../support/browserSignOut.js';
import { holdBody } from '../support/heldBody.js';
import { beginLogin, discoverRp, Person, stepUp } from '../support/oidcFlow.js';
import { onboard, useLink } from '../support/oneTimeLinkFlow.js';
import { holdRow, meanwhileAtLock, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/**
 * An admin page admits a request on its head (the session) and does its work once the body is
 * in, up to the request timeout later. A stolen admin session's request held that way must not
 * land after the admin ended that session. A step-up is checked once the body is in, and the
 * change is made after: one ended in between must not land either.
 */
describe('admin changes sent with a sign-in that ended before their body arrived', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  const host = () => new URL(sesame.baseUrl).host;

  /** Sends the head of an admin page's form post now, with `person`'s cookies, and the body on `finish`. */
  async function holdForm(person: Person, path: string, form: Record<string, string>) {
    return holdBody(sesame.listenUrl, {
      method: 'POST',
      path,
      host: host(),
      headers: {
        cookie: await person.browser.jar.getCookieString(`${sesame.baseUrl}${path}`),
        origin: sesame.baseUrl,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams(form).toString(),
    });
  }

  const groupNamed = (name: string) =>
    sesame.db.selectFrom('groups').select('id').where('name', '=', name).executeTakeFirst();

  /** What the audit log says `userId` did, oldest first. */
  const actionsOf = async (userId: string) =>
    (
      await sesame.db
        .selectFrom('audit_events')
        .select('action')
        .where('actor', '=', `user:${userId}`)
        .orderBy('id')
        .execute()
    ).map(({ action }) => action);

  it('refuses a new group from a stolen session once the admin signed out everywhere, and lands one from a sign-in that holds', async () => {
    const { person: thief, userId: victimId } = await onboard(sesame, 'victim@example.com', { admin: true });
    const { person: other } = await onboard(sesame, 'other-admin@example.com', { admin: true });
    const csrf = (await thief.browser.request('/admin/groups')).csrf();
    const otherCsrf = (await other.browser.request('/admin/groups')).csrf();

    // Admitted on their heads; their bodies are still to come.
    const group = await holdForm(thief, '/admin/groups', { _csrf: csrf, name: 'heist' });
    const control = await holdForm(other, '/admin/groups', { _csrf: otherCsrf, name: 'kept' });
    await setTimeout(500);

    await signOutEverywhere(sesame.db, victimId);

    const [grouped, kept] = await Promise.all([group.finish(), control.finish()]);
    expect(grouped.status).toBe(403);
    expect(grouped.body).toContain('Your sign-in to Sesame has ended meanwhile. Sign in again.');
    // No administrator any longer: not the admin pages' layout (their menu).
    expect(grouped.body).not.toContain('aria-label="Administration"');
    expect(await groupNamed('heist')).toBeUndefined();
    expect(await actionsOf(victimId)).not.toContain('group.create');
    // Another admin's request, held the same way, lands: only the ended sign-in is refused.
    expect(kept.status).toBe(302);
    const keptGroup = await groupNamed('kept');
    // The change runs with the sign-in it was admitted with, and still knows where it came from.
    const created = await sesame.db
      .selectFrom('audit_events')
      .select('details')
      .where('target', '=', keptGroup!.id)
      .executeTakeFirstOrThrow();
    expect(created.details).toMatchObject({ name: 'kept', ip: expect.stringMatching(/127\.0\.0\.1/) });
  });

  /** The same passkey signed in again in another browser: a second session of the account. */
  async function inAnotherBrowser(person: Person): Promise<Person> {
    const laptop = person.inNewBrowser();
    const login = asPage(await laptop.browser.follow('/account/login?return_to=%2Fadmin%2Fgroups'));
    await laptop.browser.follow(await laptop.signIn(login));
    return laptop;
  }

  const signedIn = async (person: Person) => (await person.browser.request('/admin/groups')).status === 200;

  it("refuses a new group from a session the admin signed out of, and lands one from the admin's other browser", async () => {
    const { person: thief } = await onboard(sesame, 'signed-out@example.com', { admin: true });
    const laptop = await inAnotherBrowser(thief);
    const csrf = (await thief.browser.request('/admin/groups')).csrf();
    const laptopCsrf = (await laptop.browser.request('/admin/groups')).csrf();

    const group = await holdForm(thief, '/admin/groups', { _csrf: csrf, name: 'after-sign-out' });
    const control = await holdForm(laptop, '/admin/groups', { _csrf: laptopCsrf, name: 'other-browser' });
    await setTimeout(500);

    // The admin signs that browser out (the thief holds a copy of its cookie); the laptop stays signed in.
    expect(await (await signOutPrepared(thief))()).toBe(303);
    expect(await signedIn(thief)).toBe(false);
    expect(await signedIn(laptop)).toBe(true);

    const [grouped, kept] = await Promise.all([group.finish(), control.finish()]);
    expect(grouped.status).toBe(403);
    expect(grouped.body).toContain('Your sign-in to Sesame has ended meanwhile. Sign in again.');
    expect(await groupNamed('after-sign-out')).toBeUndefined();
    // A sign-out of another browser of the same admin leaves this one's request alone.
    expect(kept.status).toBe(302);
    expect(await groupNamed('other-browser')).toBeDefined();
  });

  // Postgres only: the embedded database serves one connection, so the lock held here would stop everything.
  (onPostgres ? it : it.skip)(
    'lands a change whose check passed before the sign-out: the sign-out waits until it is in',
    async () => {
      const { person: admin } = await onboard(sesame, 'signing-out@example.com', { admin: true });
      const csrf = (await admin.browser.request('/admin/groups')).csrf();
      const signOut = await signOutPrepared(admin);

      // A transaction of the test's inserts the group's name and stays open: the change checks
      // the sign-in, then waits for it at its own insert.
      let rollBack!: () => void;
      let rivalIn!: () => void;
      const rivalInserted = new Promise<void>((resolve) => (rivalIn = resolve));
      const rival = sesame.db
        .transaction()
        .execute(async (trx) => {
          await groupsQueries.insert(trx, 'landed-before-sign-out');
          rivalIn();
          await new Promise<void>((resolve) => (rollBack = resolve));
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      await rivalInserted;
      let signedOut = false;
      try {
        const created = admin.browser.request('/admin/groups', {
          form: { _csrf: csrf, name: 'landed-before-sign-out' },
        });
        await untilWaitingForLocks(sesame.db, 1);
        const ended = signOut().finally(() => {
          signedOut = true;
        });
        // The sign-out waits for the change that already checked the session.
        await untilWaitingForLocks(sesame.db, 2);
        expect(signedOut).toBe(false);
        rollBack();
        await rival;
        expect((await created).status).toBe(302);
        expect(await ended).toBe(303);
      } finally {
        rollBack();
        await rival;
      }
      expect(await groupNamed('landed-before-sign-out')).toBeDefined();
      expect(await signedIn(admin)).toBe(false);
    },
  );

  it('refuses a new group from a stolen session once the owner recovered the account with a link', async () => {
    const { person: thief } = await onboard(sesame, 'recovered@example.com', { admin: true });
    const csrf = (await thief.browser.request('/admin/groups')).csrf();
    const group = await holdForm(thief, '/admin/groups', { _csrf: csrf, name: 'after-recovery' });
    await setTimeout(500);

    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'recovered@example.com',
      actor: 'test',
    });
    expect((await useLink(new Person(sesame.baseUrl), url)).status).toBe(200);

    const grouped = await group.finish();
    expect(grouped.status).toBe(403);
    expect(grouped.body).toContain('Your sign-in to Sesame has ended meanwhile. Sign in again.');
    expect(await groupNamed('after-recovery')).toBeUndefined();
  });

  // Postgres only: the embedded database serves one connection, so the lock held here would stop everything.
  (onPostgres ? it : it.skip)(
    'refuses a promotion whose step-up passed just before the admin signed out everywhere',
    async () => {
      const { person: thief, userId: victimId } = await onboard(sesame, 'stepped-up@example.com', {
        admin: true,
      });
      const accomplice = await usersQueries.insert(sesame.db, {
        email: 'stepped-up-accomplice@example.com',
        name: null,
        emailVerified: true,
      });
      const csrf = (await thief.browser.request('/admin/users')).csrf();
      expect((await stepUp(thief, csrf)).status).toBe(200);

      // A step-up route checks the step-up once the body is in; the change then waits for the
      // administrators lock, held here, while the admin signs out everywhere (which ends the
      // step-up with the sign-in, and does not wait for that lock).
      const refused = await meanwhileAtLock(
        sesame.db,
        (trx) => usersQueries.lockAdministrators(trx),
        () => thief.browser.postJson(`/admin/users/${accomplice.id}/promote`, csrf, {}),
        () => signOutEverywhere(sesame.db, victimId),
      );
      expect(refused.status).toBe(403);
      expect(refused.json()).toMatchObject({
        error: 'forbidden',
        error_description: 'Your sign-in to Sesame has ended meanwhile. Sign in again.',
      });
      expect((await usersQueries.findById(sesame.db, accomplice.id))!.is_admin).toBe(false);
      expect(await actionsOf(victimId)).not.toContain('user.promote');
    },
  );

  it('lands a change from a browser that proved a passkey again meanwhile (an app with prompt=login in another tab)', async () => {
    const { person: admin } = await onboard(sesame, 'proved-again@example.com', { admin: true });
    const redirectUri = 'http://localhost:8089/proved-again';
    const { client: app } = await createClient(
      sesame.db,
      { name: 'proved again', redirect_uris: [redirectUri], public: true, first_party: true },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: app.client_id }, redirectUri);
    const csrf = (await admin.browser.request('/admin/groups')).csrf();
    const held = await holdForm(admin, '/admin/groups', { _csrf: csrf, name: 'after-proving-again' });
    await setTimeout(1_100); // a new proof in a later second than the admitted one
    const login = await admin.open((await beginLogin(rp, 'openid', { prompt: 'login' })).url);
    await admin.continueToApp(await admin.signIn(login), redirectUri);
    const grouped = await held.finish();
    expect(grouped.status).toBe(302);
    expect(await groupNamed('after-proving-again')).toBeDefined();
  });

  // Postgres only: the lock held here would stop the embedded database's one connection.
  (onPostgres ? it : it.skip)(
    'lands a change whose session the provider stores under a new id meanwhile (a sign-in resumed)',
    async () => {
      const { person: admin, userId } = await onboard(sesame, 'rotated@example.com', { admin: true });
      const csrf = (await admin.browser.request('/admin/groups')).csrf();
      const { id } = await sesame.db
        .selectFrom('oidc_models')
        .select('id')
        .where('model', '=', 'Session')
        .where(sql<string>`payload->>'accountId'`, '=', userId)
        .executeTakeFirstOrThrow();
      // What a resume's held writes do in one statement: the session deleted under its old id
      // and stored under a new one, its uid and sign-in the same.
      const grouped = await meanwhileAtLock(
        sesame.db,
        (trx) =>
          sql`with gone as (delete from oidc_models where model = 'Session' and id = ${id} returning *)
            insert into oidc_models (model, id, payload, grant_id, uid, user_code, expires_at)
            select model, 'rotated-' || id, payload, grant_id, uid, user_code, expires_at from gone`.execute(
            trx,
          ),
        () => admin.browser.request('/admin/groups', { form: { _csrf: csrf, name: 'during-rotation' } }),
        async () => {},
      );
      expect(grouped.status).toBe(302);
      expect(await groupNamed('during-rotation')).toBeDefined();
    },
  );

  // Postgres only, as above.
  (onPostgres ? it : it.skip)(
    "keeps other requests' provider writes going while an admin change waits with its session held",
    async () => {
      const { person: admin } = await onboard(sesame, 'stall@example.com', { admin: true });
      const { client: backend, client_secret } = await createClient(
        sesame.db,
        { name: 'stall backend', grant_types: ['client_credentials'] },
        'test',
      );
      const redirectUri = 'http://localhost:8089/stall';
      const { client: app } = await createClient(
        sesame.db,
        { name: 'stall app', redirect_uris: [redirectUri], public: true, first_party: true },
        'test',
      );
      const rp = await discoverRp(sesame.baseUrl, { client_id: app.client_id }, redirectUri);
      const csrf = (await admin.browser.request('/admin/groups')).csrf();
      const token = () =>
        fetch(`${sesame.listenUrl}/token`, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${backend.client_id}:${client_secret}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
            host: host(),
          },
          body: 'grant_type=client_credentials',
        }).then((answer) => answer.status);
      // A rival's group of the same name, not yet committed: the admin change, its session held,
      // waits for it at its insert.
      const release = await holdRow(sesame.db, (trx) => groupsQueries.insert(trx, 'contended'));
      try {
        const created = admin.browser.request('/admin/groups', { form: { _csrf: csrf, name: 'contended' } });
        await untilWaitingForLocks(sesame.db, 1);
        // The admin's app checks the sign-in silently: the provider saves the session at its end,
        // in the grouped statement every request's writes go in.
        const silent = admin.browser.request((await beginLogin(rp, 'openid', { prompt: 'none' })).url);
        await setTimeout(300);
        const unrelated = await Promise.race([token(), setTimeout(5_000, 'still waiting after 5 s')]);
        expect(unrelated).toBe(200);
        expect((await silent).status).toBe(303);
        await release();
        await created;
      } finally {
        await release().catch(() => undefined);
      }
    },
    30_000,
  );
});
