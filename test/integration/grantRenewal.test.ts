import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { createGroup } from '../../src/admin/groups.js';
import { modelRow, oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { createClient, setClientAllowedGroups } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { TTL } from '../../src/oidc/ttl.js';
import { asPage } from '../support/browser.js';
import { noticesHeard } from '../support/noticesHeard.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { ageModel, DAY } from '../support/signInAge.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8917/callback';

/**
 * A consent (the app's grant) lasts a year, and every token issued under it ends with it. A
 * consent that is used is kept: a sign-in that ends in a code for the app gives the grant a
 * year from then, so a refresh token issued in the consent's last month lives its 30 days and
 * a person who signs in to the app regularly is not asked to consent again. A request that is
 * refused, or a refresh, renews nothing (src/oidc/grantRenewal.ts).
 */
describe('grant renewal', () => {
  let sesame: TestApp;
  let app: TestRp;
  let appId: string;
  let firstParty: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    appId = created.client.client_id;
    app = await discoverRp(
      sesame.baseUrl,
      { client_id: appId, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    const own = await createClient(
      sesame.db,
      { name: 'Intranet', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    firstParty = await discoverRp(
      sesame.baseUrl,
      { client_id: own.client.client_id, client_secret: own.client_secret! },
      REDIRECT_URI,
    );
  });

  afterAll(() => sesame.stop());

  /** A new person signs up through `rp` with offline_access, consenting; returns them and the tokens. */
  async function signUp(rp = app) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid offline_access', { prompt: 'consent' });
    const next = await person.signUp(
      await person.open(pending.url),
      `renew${randomBytes(4).toString('hex')}@example.com`,
    );
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    return { person, tokens };
  }

  /**
   * The person signs in to `rp` again in their browser, whose session lets them through; with
   * offline_access the app must ask with prompt=consent (OIDC Core §11), and the person allows
   * it again on the consent page. Returns the tokens.
   */
  async function signInAgain(person: Person, rp = app, scope = 'openid offline_access', extra = {}) {
    const consent: Record<string, string> = scope.includes('offline_access') ? { prompt: 'consent' } : {};
    const pending = await beginLogin(rp, scope, { ...consent, ...extra });
    return finishLogin(rp, pending, await person.continueToApp(pending.url, REDIRECT_URI));
  }

  /** The stored id of the grant a refresh token was issued under. */
  async function grantOf(refreshToken: string): Promise<string> {
    const row = await sesame.db
      .selectFrom('oidc_models')
      .select('grant_id')
      .where('model', '=', 'RefreshToken')
      .where('id', '=', storedId('RefreshToken', refreshToken))
      .executeTakeFirstOrThrow();
    return row.grant_id!;
  }

  /** When a grant ends as stored, in seconds since the epoch: its row's expiry and its payload's `exp`. */
  async function grantEnd(grantId: string): Promise<{ row: number; exp: number }> {
    const row = await sesame.db
      .selectFrom('oidc_models')
      .select(['expires_at', sql<number>`(payload->>'exp')::bigint`.as('exp')])
      .where('model', '=', 'Grant')
      .where('id', '=', grantId)
      .executeTakeFirstOrThrow();
    // A save's row ends within the second after its payload's `exp` (the adapter's end is
    // now plus the seconds the provider counts from the whole second): whole seconds compare.
    return { row: Math.floor(row.expires_at!.getTime() / 1000), exp: Number(row.exp) };
  }

  /** Makes a grant end `days` from now, as one given a year less `days` ago does; the server forgets what it held. */
  async function endGrantIn(grantId: string, days: number): Promise<number> {
    const exp = Math.floor(Date.now() / 1000) + days * DAY;
    await sesame.db
      .updateTable('oidc_models')
      .set({
        expires_at: new Date(exp * 1000),
        payload: sql`payload || jsonb_build_object('iat', ${exp - TTL.Grant}::bigint, 'exp', ${exp}::bigint)`,
      })
      .where('model', '=', 'Grant')
      .where('id', '=', grantId)
      .execute();
    expect(await noticesHeard(sesame)).toBe(true);
    return exp;
  }

  /** Expects the grant to end a full TTL.Grant from about now, as stored in its row and its payload. */
  async function expectRenewed(grantId: string) {
    const end = await grantEnd(grantId);
    const yearFromNow = Math.floor(Date.now() / 1000) + TTL.Grant;
    expect(end.exp).toBe(end.row);
    expect(Math.abs(end.exp - yearFromNow)).toBeLessThan(60);
  }

  /** 20 days pass for the grant and the refresh token: past the 10 days the grant had left. */
  async function twentyDaysLater(grantId: string, refreshToken: string) {
    await ageModel(sesame, 'Grant', grantId, 20);
    await ageModel(sesame, 'RefreshToken', storedId('RefreshToken', refreshToken), 20);
    expect(await noticesHeard(sesame)).toBe(true);
  }

  it('renews a consent in its last days when the person signs in to the app again, so the new refresh token lives its 30 days', async () => {
    const { person, tokens } = await signUp();
    const grantId = await grantOf(tokens.refresh_token!);
    // The consent was given 355 days ago: 10 days left. The person signs in to the app again.
    await endGrantIn(grantId, 10);
    const again = await signInAgain(person);
    expect(await grantOf(again.refresh_token!)).toBe(grantId);
    await expectRenewed(grantId);

    // 20 days later, past the consent's old end, the refresh token of that sign-in still refreshes.
    await twentyDaysLater(grantId, again.refresh_token!);
    const refreshed = await oidc.refreshTokenGrant(app.config, again.refresh_token!);
    const sub = again.claims()!.sub;
    expect((await oidc.fetchUserInfo(app.config, refreshed.access_token, sub)).sub).toBe(sub);
  }, 60_000);

  it('renews it at a sign-in with no page at all (the session lets the person through), keeping earlier refresh tokens alive', async () => {
    const { person, tokens } = await signUp();
    const grantId = await grantOf(tokens.refresh_token!);
    await endGrantIn(grantId, 10);
    const pending = await beginLogin(app, 'openid');
    const landed = await person.browser.follow(pending.url, (url) => url.startsWith(REDIRECT_URI));
    expect('stoppedAt' in landed).toBe(true);
    await finishLogin(app, pending, (landed as { stoppedAt: string }).stoppedAt);
    await expectRenewed(grantId);

    // The sign-up's refresh token, 20 days old, outlives the consent's old end.
    await twentyDaysLater(grantId, tokens.refresh_token!);
    expect((await oidc.refreshTokenGrant(app.config, tokens.refresh_token!)).access_token).toBeDefined();
  }, 60_000);

  it('renews it when the sign-in goes through the passkey prompt', async () => {
    const { person, tokens } = await signUp();
    const grantId = await grantOf(tokens.refresh_token!);
    await endGrantIn(grantId, 10);
    const pending = await beginLogin(app, 'openid', { prompt: 'login' });
    const next = await person.signIn(await person.open(pending.url));
    await finishLogin(app, pending, await person.continueToApp(next, REDIRECT_URI));
    await expectRenewed(grantId);
  }, 60_000);

  it("renews a first-party app's grant the same way", async () => {
    const { person, tokens } = await signUp(firstParty);
    const grantId = await grantOf(tokens.refresh_token!);
    await endGrantIn(grantId, 10);
    await signInAgain(person, firstParty, 'openid');
    await expectRenewed(grantId);
    await endGrantIn(grantId, 10);
    const again = await signInAgain(person, firstParty);
    expect(await grantOf(again.refresh_token!)).toBe(grantId);
    await expectRenewed(grantId);
  }, 60_000);

  it('leaves a grant renewed within the day as it is, and renews one renewed longer ago', async () => {
    const { person, tokens } = await signUp();
    const grantId = await grantOf(tokens.refresh_token!);
    // Renewed (or given) 12 hours ago: a sign-in, through the consent page or none, leaves it.
    const end = await endGrantIn(grantId, TTL.Grant / DAY - 0.5);
    await signInAgain(person);
    await signInAgain(person, app, 'openid');
    expect(await grantEnd(grantId)).toEqual({ row: end, exp: end });
    // Two days ago: the sign-in renews it.
    await endGrantIn(grantId, TTL.Grant / DAY - 2);
    await signInAgain(person, app, 'openid');
    await expectRenewed(grantId);
  }, 60_000);

  it('renews nothing for an authorization that is refused or stops short of a code, nor for a refresh', async () => {
    const { person, tokens } = await signUp();
    const grantId = await grantOf(tokens.refresh_token!);
    const end = await endGrantIn(grantId, 10);
    const unchanged = async () => expect(await grantEnd(grantId)).toEqual({ row: end, exp: end });

    /** Sends the person's browser to the app with `extra`; returns the error the app receives. */
    const refusal = async (extra: Record<string, string>, decision?: 'deny') => {
      const pending = await beginLogin(app, 'openid offline_access', extra);
      const landed =
        decision === 'deny'
          ? await person.continueToApp(pending.url, REDIRECT_URI, 'deny')
          : (
              (await person.browser.follow(pending.url, (url) => url.startsWith(REDIRECT_URI))) as {
                stoppedAt: string;
              }
            ).stoppedAt;
      const callback = new URL(landed);
      expect(callback.searchParams.get('code')).toBeNull();
      return callback.searchParams.get('error');
    };

    // A silent sign-in that needs the passkey again.
    expect(await refusal({ prompt: 'none', max_age: '0' })).toBe('login_required');
    await unchanged();
    // The person declines on the consent page.
    expect(await refusal({ prompt: 'consent' }, 'deny')).toBe('access_denied');
    await unchanged();
    // A sign-in that stops at the login page.
    const prompted = asPage(
      await person.browser.follow((await beginLogin(app, 'openid', { prompt: 'login' })).url),
    );
    expect(prompted.status).toBe(200);
    await unchanged();
    // The app is now for a group the person is not in: refused, silently or with a page.
    const group = await createGroup(sesame.db, `Team ${randomBytes(3).toString('hex')}`, 'test');
    await setClientAllowedGroups(sesame.db, appId, [group.id], 'test');
    // Only once the server has heard of it: before, a sign-in would still pass (and renew).
    expect(await noticesHeard(sesame)).toBe(true);
    expect(await refusal({ prompt: 'none' })).toBe('access_denied');
    const page = asPage(await person.browser.follow((await beginLogin(app, 'openid')).url));
    expect(page.status).toBe(403);
    await unchanged();
    // The app refreshing its token is not the person signing in.
    await setClientAllowedGroups(sesame.db, appId, [], 'test');
    expect(await noticesHeard(sesame)).toBe(true);
    expect((await oidc.refreshTokenGrant(app.config, tokens.refresh_token!)).access_token).toBeDefined();
    await unchanged();

    // The sign-in that ends in a code renews it.
    await signInAgain(person, app, 'openid');
    await expectRenewed(grantId);
  }, 60_000);

  it("stores a renewal with its code's statement only while the grant is live and ends sooner: a revoked or expired grant is not stored again", async () => {
    const db = sesame.db;
    const tag = randomBytes(4).toString('hex');
    const now = Math.floor(Date.now() / 1000);
    const grant = (name: string, exp: number) =>
      modelRow('Grant', `${name}-${tag}`, { kind: 'Grant', jti: `${name}-${tag}`, iat: now, exp }, exp - now);
    const code = (name: string) =>
      modelRow('AuthorizationCode', `${name}-${tag}`, { kind: 'AuthorizationCode', exp: now + 60 }, 60);
    const end = async (name: string) => {
      const found = await oidcModelsQueries.find(db, 'Grant', `${name}-${tag}`);
      return found ? (found as { exp: number }).exp : undefined;
    };
    const renewal = (name: string, exp = now + TTL.Grant) => ({ id: `${name}-${tag}`, exp });
    await oidcModelsQueries.upsertRows(db, [
      grant('soon', now + 10 * DAY),
      grant('later', now + 400 * DAY),
      grant('revoked', now + 10 * DAY),
      grant('expired', now + 1),
      grant('refused', now + 10 * DAY),
      grant('deleting', now + 10 * DAY),
    ]);
    await oidcModelsQueries.destroy(db, 'Grant', `revoked-${tag}`);
    await sql`update oidc_models set expires_at = now() - interval '1 second' where id = ${`expired-${tag}`}`.execute(
      db,
    );

    // With the code (twice for one grant: the later end), and with rows the statement writes itself.
    await oidcModelsQueries.upsertRows(
      db,
      [code('a'), grant('own', now + 10 * DAY)],
      [],
      [
        renewal('soon', now + DAY),
        renewal('soon'),
        renewal('later'),
        renewal('revoked'),
        renewal('expired'),
        renewal('own'),
      ],
    );
    expect(await end('soon')).toBe(now + TTL.Grant);
    expect(await end('later')).toBe(now + 400 * DAY);
    expect(await end('revoked')).toBeUndefined();
    expect(await end('expired')).toBeUndefined();
    expect(await end('own')).toBe(now + 10 * DAY);

    // A return's statement whose condition is not met stores no renewal; one that is met does.
    const required = oidcModelsQueries.rowRequired('Interaction', `none-${tag}`, undefined, true);
    expect(
      await oidcModelsQueries.destroyAndUpsertIf(db, required, [], [code('b')], [renewal('refused')]),
    ).toBeUndefined();
    expect(await end('refused')).toBe(now + 10 * DAY);
    await oidcModelsQueries.upsertRows(db, [
      modelRow('Interaction', `met-${tag}`, { kind: 'Interaction' }, 60),
    ]);
    const met = oidcModelsQueries.rowRequired('Interaction', `met-${tag}`, undefined, true);
    expect(
      await oidcModelsQueries.destroyAndUpsertIf(db, met, [], [code('c')], [renewal('refused')]),
    ).toHaveLength(1);
    expect(await end('refused')).toBe(now + TTL.Grant);
    // With deletions and no condition.
    await oidcModelsQueries.destroyAndUpsert(
      db,
      [{ model: 'Interaction', id: `x-${tag}` }],
      [code('d')],
      [renewal('deleting')],
    );
    expect(await end('deleting')).toBe(now + TTL.Grant);
  });

  it("keeps a renewal stored since the consent page read the grant: the page's save does not shorten it", async () => {
    const db = sesame.db;
    const tag = randomBytes(4).toString('hex');
    const id = `read-${tag}`;
    const now = Math.floor(Date.now() / 1000);
    const soon = now + 10 * DAY;
    const renewed = now + TTL.Grant;
    /** The grant's row as stored by a save of `payload`, ending at its `exp`. */
    const grantRow = (payload: { exp: number }) => ({
      ...modelRow('Grant', id, payload, 1),
      expires_at: new Date(payload.exp * 1000),
    });
    const read = { kind: 'Grant', jti: id, iat: now, exp: soon, openid: { scope: 'openid' } };
    await oidcModelsQueries.upsertRows(db, [grantRow(read)]);
    // Another tab's sign-in renews the grant; then the consent page saves the copy it read, a scope added.
    const code = modelRow(
      'AuthorizationCode',
      `code-${tag}`,
      { kind: 'AuthorizationCode', exp: now + 60 },
      60,
    );
    await oidcModelsQueries.upsertRows(db, [code], [], [{ id, exp: renewed }]);
    const saved = { ...read, openid: { scope: 'openid email' } };
    expect(await oidcModelsQueries.updateLiveGrant(db, grantRow(saved))).toBe(true);
    expect(await oidcModelsQueries.find(db, 'Grant', id)).toEqual({ ...saved, exp: renewed });
    expect(await grantEnd(id)).toEqual({ row: renewed, exp: renewed });
    // A save that ends later than what is stored is stored as it is.
    const later = { ...saved, exp: renewed + DAY };
    expect(await oidcModelsQueries.updateLiveGrant(db, grantRow(later))).toBe(true);
    expect(await grantEnd(id)).toEqual({ row: renewed + DAY, exp: renewed + DAY });
  });

  // A Revoke of the app locks its grants, then changes the sessions that name it: a return
  // storing such a session and waiting for the grant's lock would wait for the Revoke as it
  // waits for the return (a deadlock, one of them refused).
  (onPostgres ? it : it.skip)(
    'does not wait for a grant another transaction holds: it leaves it as it is',
    async () => {
      const db = sesame.db;
      const tag = randomBytes(4).toString('hex');
      const id = `locked-${tag}`;
      const now = Math.floor(Date.now() / 1000);
      const soon = now + 10 * DAY;
      await oidcModelsQueries.upsertRows(db, [
        modelRow('Grant', id, { kind: 'Grant', jti: id, iat: now, exp: soon }, soon - now),
      ]);
      const session = modelRow('Session', `session-${tag}`, { kind: 'Session', uid: `uid-${tag}` }, 60);
      await oidcModelsQueries.upsertRows(db, [session]);
      const release = await holdRow(
        db,
        sql`select 1 from oidc_models where model = 'Grant' and id = ${id} for update`,
      );
      try {
        // Within a second, where waiting for the lock would take until the release.
        const renewedWhileHeld = oidcModelsQueries.upsertRows(
          db,
          [session],
          [],
          [{ id, exp: now + TTL.Grant }],
        );
        const timedOut = new Promise((resolve) => setTimeout(resolve, 1_000, 'waited'));
        expect(await Promise.race([renewedWhileHeld.then(() => 'stored'), timedOut])).toBe('stored');
      } finally {
        await release();
      }
      expect(((await oidcModelsQueries.find(db, 'Grant', id)) as { exp: number }).exp).toBe(soon);
      await oidcModelsQueries.upsertRows(db, [session], [], [{ id, exp: now + TTL.Grant }]);
      expect(((await oidcModelsQueries.find(db, 'Grant', id)) as { exp: number }).exp).toBe(now + TTL.Grant);
    },
  );

  // An admin's disable, a recovery link and an email takeover delete an account's sessions and
  // grants together (destroyByAccountId): a return's statement that locked the grant before the
  // session it stores would wait for that deletion as it waits for the return (a deadlock, the
  // sign-in refused with a 500).
  (onPostgres ? it : it.skip)(
    "renews the grant only after storing the sign-in's rows: a deletion of the session and then the grant goes through",
    async () => {
      const db = sesame.db;
      const tag = randomBytes(4).toString('hex');
      const now = Math.floor(Date.now() / 1000);
      const soon = now + 10 * DAY;
      const grantId = `held-${tag}`;
      const sessionId = `session-${tag}`;
      const session = (account: string) =>
        modelRow('Session', sessionId, { kind: 'Session', uid: `uid-${tag}`, accountId: account }, 60);
      const code = modelRow(
        'AuthorizationCode',
        `code-${tag}`,
        { kind: 'AuthorizationCode', exp: now + 60 },
        60,
      );
      await oidcModelsQueries.upsertRows(db, [
        modelRow('Grant', grantId, { kind: 'Grant', jti: grantId, iat: now, exp: soon }, soon - now),
        session('before'),
        modelRow('Interaction', `interaction-${tag}`, { kind: 'Interaction' }, 60),
        modelRow('Interaction', `plain-${tag}`, { kind: 'Interaction' }, 60),
      ]);
      const deleteRow = (trx: typeof db, model: string, id: string) =>
        trx.deleteFrom('oidc_models').where('model', '=', model).where('id', '=', id).execute();

      /** `store` runs while another transaction has deleted the session; once it waits, that one deletes the grant too. */
      const whileSessionAndGrantAreDeleted = async (store: () => Promise<unknown>) => {
        let stored!: Promise<unknown>;
        await db.transaction().execute(async (trx) => {
          await deleteRow(trx, 'Session', sessionId);
          stored = store();
          stored.catch(() => {});
          await untilWaitingForLocks(db, 1);
          await deleteRow(trx, 'Grant', grantId);
        });
        return stored;
      };

      // The return to the authorization, its interaction the condition.
      const required = oidcModelsQueries.rowRequired('Interaction', `interaction-${tag}`, undefined, true);
      await whileSessionAndGrantAreDeleted(() =>
        oidcModelsQueries.destroyAndUpsertIf(
          db,
          required,
          [],
          [session('after'), code],
          [{ id: grantId, exp: now + TTL.Grant }],
        ),
      );
      expect(await oidcModelsQueries.find(db, 'Grant', grantId)).toBeUndefined();

      // A statement with no condition, deleting as it stores.
      await oidcModelsQueries.upsertRows(db, [
        modelRow('Grant', grantId, { kind: 'Grant', jti: grantId, iat: now, exp: soon }, soon - now),
        session('before'),
      ]);
      await whileSessionAndGrantAreDeleted(() =>
        oidcModelsQueries.destroyAndUpsert(
          db,
          [{ model: 'Interaction', id: `plain-${tag}` }],
          [session('after'), code],
          [{ id: grantId, exp: now + TTL.Grant }],
        ),
      );
      expect(await oidcModelsQueries.find(db, 'Grant', grantId)).toBeUndefined();
    },
    30_000,
  );
});
