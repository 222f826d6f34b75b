import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { addGroupMember, createGroup } from '../../src/admin/groups.js';
import { createClient, rotateClientSecret, updateClient } from '../../src/oidc/clients.js';
import { createResource } from '../../src/oidc/resources.js';
import { noticesHeard } from '../support/noticesHeard.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import {
  LateNotices,
  type SecondInstance,
  startSecondInstance,
  startTestApp,
  type TestApp,
} from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8934/callback';
const API = 'https://late.example/api';

type Tokens = Awaited<ReturnType<typeof finishLogin>>;

/**
 * Behind a load balancer the browser's return to the authorization may reach one instance
 * and the app's token request another a moment later, before the notice of what the first
 * changed (the session, the grant) has arrived there. The code is newer than what the second
 * holds in memory: it must redeem the code against the session and grant the code was issued
 * with, not refuse it, nor issue tokens for less than was granted.
 */
(onPostgres ? describe : describe.skip)(
  'a code redeemed on another instance before its notices arrive',
  () => {
    const notices = new LateNotices();
    const otherNotices = new LateNotices();
    let sesame: TestApp;
    let other: SecondInstance;

    beforeAll(async () => {
      sesame = await startTestApp({}, { notices });
      other = await startSecondInstance(sesame, { notices: otherNotices });
      await createResource(sesame.db, { identifier: API, name: 'API', scopes: ['read'] }, 'test');
    });

    // A test that holds notices back for more than one sign-in lets them go when it ends.
    afterEach(() => {
      notices.release();
      otherNotices.release();
    });

    afterAll(async () => {
      notices.release();
      otherNotices.release();
      await other?.stop();
      await sesame?.stop();
    });

    /** The app's requests to Sesame (userinfo, introspection) go to the other instance from now on. */
    function toOtherInstance(rp: TestRp) {
      rp.config[oidc.customFetch] = (url, options) =>
        fetch(url.replace(sesame.baseUrl, other.url), options as RequestInit);
    }

    /**
     * Signs in at `rp` on `sesame` for the API, and has the other instance, whose notices are
     * late, describe the JWT access token it got.
     */
    async function apiTokenIntrospectedOnOther(person: Person, balancer: { connectTo: string }, rp: TestRp) {
      let described: oidc.IntrospectionResponse | undefined;
      await signInWhileNoticesLate(
        person,
        balancer,
        rp,
        'openid read',
        { browserAt: sesame.listenUrl, late: otherNotices, params: { resource: API } },
        async (tokens) => {
          expect(tokens.access_token.split('.')).toHaveLength(3);
          toOtherInstance(rp);
          described = await oidc.tokenIntrospection(rp.config, tokens.access_token);
        },
      );
      return described;
    }

    /** A first-party app that admits only the members of a new group. */
    async function appOfOneGroup() {
      const staff = await firstPartyApp('Staff');
      const group = await createGroup(sesame.db, `staff-${randomBytes(3).toString('hex')}`, 'test');
      await updateClient(
        sesame.db,
        staff.config.clientMetadata().client_id,
        { allowed_groups: [group.id] },
        'test',
      );
      return { staff, group };
    }

    /** A first-party app: no consent page, so a signed-in browser gets its code at once. */
    async function firstPartyApp(name: string, firstParty = true): Promise<TestRp> {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name, redirect_uris: [REDIRECT_URI], first_party: firstParty },
        'test',
      );
      // Its token requests go to `sesame`, the ISSUER's instance.
      return discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    }

    /** Someone signed up at `rp` with every request of their browser on `at`, which then holds their session and grant. */
    async function signedUpAt(rp: TestRp, scope: string, at = sesame.listenUrl) {
      const balancer = { connectTo: at };
      const person = new Person(sesame.baseUrl, undefined, balancer);
      const email = `n${randomBytes(4).toString('hex')}@example.com`;
      const pending = await beginLogin(rp, scope);
      const callback = await person.continueToApp(
        await person.signUp(await person.open(pending.url), email),
        REDIRECT_URI,
      );
      const tokens = await finishLogin(rp, pending, callback);
      return { person, email, balancer, sub: tokens.claims()!.sub, tokens };
    }

    /**
     * The browser signs in at `rp` on `browserAt` (the other instance unless told) and the code
     * goes to `sesame`, while `late`'s notices are on the way (`sesame`'s unless told); `then`
     * runs meanwhile with the tokens.
     */
    async function signInWhileNoticesLate(
      person: Person,
      balancer: { connectTo: string },
      rp: TestRp,
      scope: string,
      {
        browserAt = other.url,
        late = notices,
        params = {},
      }: { browserAt?: string; late?: LateNotices; params?: Record<string, string> } = {},
      then: (tokens: Tokens) => Promise<unknown> = async () => {},
    ): Promise<Tokens> {
      balancer.connectTo = browserAt;
      late.hold();
      try {
        const pending = await beginLogin(rp, scope, params);
        const followed = await person.browser.follow(pending.url, (url) => url.startsWith(REDIRECT_URI));
        if (!('stoppedAt' in followed))
          throw new Error(`no code: ${followed.status} ${followed.text.slice(0, 200)}`);
        const tokens = await finishLogin(rp, pending, followed.stoppedAt);
        await then(tokens);
        return tokens;
      } finally {
        late.release();
      }
    }

    it('redeems a code issued where the session gained the app since this instance read it', async () => {
      const notes = await firstPartyApp('Notes');
      const photos = await firstPartyApp('Photos');
      const { person, email, balancer } = await signedUpAt(notes, 'openid email');
      // `sesame` holds the session as it named Notes alone; the other instance adds Photos to it.
      const tokens = await signInWhileNoticesLate(person, balancer, photos, 'openid email');
      expect(tokens.claims()!.email).toBe(email);
    });

    it('issues what the grant holds now when it was extended where the code was issued', async () => {
      const notes = await firstPartyApp('Notes');
      const { person, email, balancer } = await signedUpAt(notes, 'openid');
      // `sesame` holds the grant as it was, with `openid` only; the other instance extends it.
      const tokens = await signInWhileNoticesLate(person, balancer, notes, 'openid email');
      expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'openid']);
      expect(tokens.claims()!.email).toBe(email);
    });

    it('answers userinfo where the token is first seen, though that instance holds the session as it was before', async () => {
      const notes = await firstPartyApp('Notes');
      const photos = await firstPartyApp('Photos');
      // The other instance stored the session as it named Notes alone.
      const { person, email, balancer } = await signedUpAt(notes, 'openid email', other.url);
      // Photos on `sesame`, with the other instance's notices on the way: its userinfo goes there.
      let userinfo: oidc.UserInfoResponse | undefined;
      await signInWhileNoticesLate(
        person,
        balancer,
        photos,
        'openid email',
        { browserAt: sesame.listenUrl, late: otherNotices },
        async (tokens) => {
          toOtherInstance(photos);
          userinfo = await oidc.fetchUserInfo(photos.config, tokens.access_token, tokens.claims()!.sub);
        },
      );
      expect(userinfo?.email).toBe(email);
    });

    it("describes an API's JWT access token as active where it is first seen, though that instance holds the session as it was before", async () => {
      const notes = await firstPartyApp('Notes');
      const photos = await firstPartyApp('Photos');
      const { person, balancer } = await signedUpAt(notes, 'openid', other.url);
      const described = await apiTokenIntrospectedOnOther(person, balancer, photos);
      expect(described).toMatchObject({ active: true, aud: API, scope: 'read' });
    });

    it('gives the claims as they are where the code was issued, not as this instance holds them', async () => {
      const notes = await firstPartyApp('Notes');
      const photos = await firstPartyApp('Photos');
      const { person, balancer, sub } = await signedUpAt(notes, 'openid email profile');
      // Renamed (on the account page, say) with its notice on the way to `sesame`.
      notices.hold();
      await sesame.db.updateTable('users').set({ name: 'Ada Renamed' }).where('id', '=', sub).execute();
      const tokens = await signInWhileNoticesLate(person, balancer, photos, 'openid email profile');
      expect(tokens.claims()).toMatchObject({ sub, name: 'Ada Renamed' });
    });

    it('redeems a code for an app of a group the person joined since this instance read their groups', async () => {
      const notes = await firstPartyApp('Notes');
      const { staff, group } = await appOfOneGroup();
      // `sesame` reads their groups (none) for Notes' tokens.
      const { person, balancer, sub } = await signedUpAt(notes, 'openid groups');
      // Added to the group (on the admin page, say) with its notice on the way to `sesame`.
      notices.hold();
      await addGroupMember(sesame.db, group.id, sub, 'test', { unverified: true });
      const tokens = await signInWhileNoticesLate(person, balancer, staff, 'openid groups');
      expect(tokens.claims()).toMatchObject({ sub, groups: [group.name] });
    });

    it("describes an API's JWT access token for an app of a group the person joined, where the joining is not yet known", async () => {
      const notes = await firstPartyApp('Notes');
      const { staff, group } = await appOfOneGroup();
      // The other instance reads their groups (none) for Notes' userinfo.
      const { person, balancer, sub, tokens } = await signedUpAt(notes, 'openid groups');
      toOtherInstance(notes);
      expect(await oidc.fetchUserInfo(notes.config, tokens.access_token, sub)).toMatchObject({ groups: [] });
      otherNotices.hold();
      await addGroupMember(sesame.db, group.id, sub, 'test', { unverified: true });
      // `sesame`, where they sign in, has heard of it (behind PgBouncer a notice once came after the sign-in).
      expect(await noticesHeard(sesame)).toBe(true);
      const described = await apiTokenIntrospectedOnOther(person, balancer, staff);
      expect(described).toMatchObject({ active: true, sub });
    });

    it('returns to the app where the consent given on the other instance is not yet known', async () => {
      const app = await firstPartyApp('Third Party', false);
      // `sesame` holds the grant as it was, with `openid` only.
      const { person, email, balancer } = await signedUpAt(app, 'openid');
      balancer.connectTo = other.url;
      notices.hold();
      const pending = await beginLogin(app, 'openid email');
      const consent = await person.browser.follow(pending.url, (url) => url.startsWith(REDIRECT_URI));
      if ('stoppedAt' in consent) throw new Error('no consent page for a new scope');
      const uid = /\/interaction\/([^/?#]+)/.exec(consent.url)![1];
      const allowed = await person.browser.request(`/interaction/${uid}/consent`, {
        form: { _csrf: consent.csrf(), decision: 'allow' },
      });
      // The return to the authorization reaches `sesame`, where it asked for the same consent again.
      balancer.connectTo = sesame.listenUrl;
      const back = await person.browser.follow(allowed.location()!, (url) => url.startsWith(REDIRECT_URI));
      if (!('stoppedAt' in back)) throw new Error(`no code: ${back.status} ${back.url}`);
      const tokens = await finishLogin(app, pending, back.stoppedAt);
      expect(tokens.claims()!.email).toBe(email);
    });

    it('refreshes with what the grant holds now when it was extended where the refresh token was issued', async () => {
      const notes = await firstPartyApp('Notes');
      // `sesame` holds the grant as it was, with `openid` only.
      const { person, email, balancer } = await signedUpAt(notes, 'openid');
      // The other instance extends it and the app redeems its code there.
      balancer.connectTo = other.url;
      notices.hold();
      notes.config[oidc.customFetch] = (url, options) =>
        fetch(url.replace(sesame.baseUrl, other.url), options as RequestInit);
      const pending = await beginLogin(notes, 'openid email offline_access', { prompt: 'consent' });
      const tokens = await finishLogin(notes, pending, await person.continueToApp(pending.url, REDIRECT_URI));
      // Its first refresh reaches `sesame` (a configuration's fetch is set, not deleted).
      notes.config[oidc.customFetch] = (url, options) => fetch(url, options as RequestInit);
      const refreshed = await oidc.refreshTokenGrant(notes.config, tokens.refresh_token!);
      expect(refreshed.scope?.split(' ').sort()).toEqual(['email', 'offline_access', 'openid']);
      expect(refreshed.claims()!.email).toBe(email);
    });
  },
);

/**
 * An app's registration changed on one instance (an admin API call, say) and used at once on
 * the other, before the notice of the change arrives there.
 */
(onPostgres ? describe : describe.skip)(
  'an app changed on another instance before its notices arrive',
  () => {
    const otherNotices = new LateNotices();
    let sesame: TestApp;
    let other: SecondInstance;

    beforeAll(async () => {
      sesame = await startTestApp();
      other = await startSecondInstance(sesame, { notices: otherNotices });
    });

    afterAll(async () => {
      otherNotices.release();
      await other?.stop();
      await sesame?.stop();
    });

    afterEach(() => otherNotices.release());

    /** A client_credentials token from the other instance. */
    async function tokenFromOther(clientId: string, secret: string) {
      const config = await oidc.discovery(new URL(sesame.baseUrl), clientId, secret, undefined, {
        execute: [oidc.allowInsecureRequests],
      });
      config[oidc.customFetch] = (url, options) =>
        fetch(url.replace(sesame.baseUrl, other.url), options as RequestInit);
      return oidc.clientCredentialsGrant(config);
    }

    it('takes the new secret at once where the rotation is not yet known', async () => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Worker', grant_types: ['client_credentials'] },
        'test',
      );
      // The other instance holds the client as it was.
      await tokenFromOther(client.client_id, client_secret!);
      otherNotices.hold();
      const rotated = await rotateClientSecret(sesame.db, client.client_id, 'test');
      const token = await tokenFromOther(client.client_id, rotated!.client_secret);
      expect(token.access_token).toEqual(expect.any(String));
    });

    it('signs in through a redirect URI added where the addition is not yet known', async () => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Preview', redirect_uris: [REDIRECT_URI], first_party: true },
        'test',
      );
      const credentials = { client_id: client.client_id, client_secret };
      const app = await discoverRp(sesame.baseUrl, credentials, REDIRECT_URI);
      const person = new Person(sesame.baseUrl, undefined, { connectTo: other.url });
      // Signed up on the other instance, which holds the client as it was.
      const first = await beginLogin(app, 'openid');
      const email = `n${randomBytes(4).toString('hex')}@example.com`;
      await person.continueToApp(await person.signUp(await person.open(first.url), email), REDIRECT_URI);
      otherNotices.hold();
      const added = 'http://127.0.0.1:8934/preview/callback';
      await updateClient(sesame.db, client.client_id, { redirect_uris: [REDIRECT_URI, added] }, 'test');
      const preview = await discoverRp(sesame.baseUrl, credentials, added);
      const pending = await beginLogin(preview, 'openid email');
      const followed = await person.browser.follow(pending.url, (url) => url.startsWith(added));
      if (!('stoppedAt' in followed)) throw new Error(`refused: ${followed.status}`);
      expect((await finishLogin(preview, pending, followed.stoppedAt)).claims()!.email).toBe(email);
    });
  },
);

/**
 * SIGNUP=open-verified: the welcome link verifies the address on one instance, and the
 * person's next sign-in reaches the other before the notice of it.
 */
(onPostgres ? describe : describe.skip)(
  'an address verified on another instance before its notice arrives',
  () => {
    const notices = new LateNotices();
    let sesame: TestApp;

    beforeAll(async () => {
      // No mail goes out in this test: the link's work is done in the database.
      const mail = { SMTP_URL: 'smtp://127.0.0.1:9', MAIL_FROM: 'sesame@example.com' };
      sesame = await startTestApp({ SIGNUP: 'open-verified', ...mail }, { notices });
    });

    afterAll(async () => {
      notices.release();
      await sesame?.stop();
    });

    it('says email_verified in the tokens of the sign-in it let through as verified', async () => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Wiki', redirect_uris: [REDIRECT_URI], first_party: true },
        'test',
      );
      const app = await discoverRp(
        sesame.baseUrl,
        { client_id: client.client_id, client_secret },
        REDIRECT_URI,
      );
      const person = new Person(sesame.baseUrl);
      const email = `n${randomBytes(4).toString('hex')}@example.com`;
      const first = await beginLogin(app, 'openid email');
      const signedUp = await person.browser.follow(
        await person.signUp(await person.open(first.url), email),
        (url) => url.startsWith(REDIRECT_URI),
      );
      // Held at "verify your address", with the account as it is (unverified) in `sesame`'s memory.
      expect('stoppedAt' in signedUp).toBe(false);
      notices.hold();
      await sesame.db.updateTable('users').set({ email_verified: true }).where('email', '=', email).execute();
      const pending = await beginLogin(app, 'openid email');
      const tokens = await finishLogin(app, pending, await person.continueToApp(pending.url, REDIRECT_URI));
      expect(tokens.claims()).toMatchObject({ email, email_verified: true });
    });
  },
);
