import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { APPROVED_ON_DEVICE, type ModelPayload, oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { createResource } from '../../src/oidc/resources.js';
import { asPage, type PageResponse, stoppedAt } from '../support/browser.js';
import {
  beginLogin,
  discoverRp,
  finishLogin,
  Person,
  signInDevice,
  type TestRp,
} from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8941/callback';
/** An API whose access tokens are JWTs (RFC 9068): stored nowhere, they stand while the grant they name does. */
const API = 'https://api.example';
/** The claim a person's JWT access token names its grant by (introspection.ts). */
const GRANT_ID = 'grant_id';

/**
 * A person's Revoke of an app (account page) that runs while a sign-in to it is under way,
 * after the sign-in read a grant (to extend it) or the consent it copies, and before it stored
 * what it made of it: the revoke wins. Nothing it ended is stored again, the tokens it ended
 * stay ended, and the sign-in goes on as one begun after the revoke would.
 */
describe("a sign-in under way when the app's Revoke runs", () => {
  let sesame: TestApp;
  let thirdParty: TestRp;
  let thirdPartyId: string;
  let firstParty: TestRp;
  let firstPartyId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const create = async (name: string, first_party: boolean) => {
      const grant_types = first_party ? ['authorization_code'] : ['authorization_code', DEVICE_CODE_GRANT];
      const { client, client_secret } = await createClient(
        sesame.db,
        { name, redirect_uris: [REDIRECT_URI], grant_types, first_party },
        'test',
      );
      const rp = await discoverRp(
        sesame.baseUrl,
        { client_id: client.client_id, client_secret },
        REDIRECT_URI,
      );
      return { rp, clientId: client.client_id };
    };
    ({ rp: thirdParty, clientId: thirdPartyId } = await create('Photos', false));
    ({ rp: firstParty, clientId: firstPartyId } = await create('Notes', true));
    await createResource(sesame.db, { identifier: API, scopes: ['read'] }, 'test');
  }, 120_000);

  afterAll(() => sesame?.stop());

  const atApp = (url: string) => url.startsWith(REDIRECT_URI);

  /** A new person signed up at `rp` in their browser, with the tokens of that sign-in (a JWT access token for the API). */
  async function signedUpAt(rp: TestRp) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid read', { resource: API });
    const next = await person.signUp(
      await person.open(pending.url),
      `r${randomBytes(4).toString('hex')}@example.com`,
    );
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    return { person, tokens, grantId: String(decodeJwt(tokens.access_token)[GRANT_ID]) };
  }

  const active = async (rp: TestRp, token: string) =>
    (await oidc.tokenIntrospection(rp.config, token)).active;

  const grantStored = async (grantId: string) =>
    (
      await sql<{ n: number }>`
        select count(*)::int as n from oidc_models where model = 'Grant' and id = ${grantId}`.execute(
        sesame.db,
      )
    ).rows[0]!.n === 1;

  /** The live grants the account holds for the app. */
  const grantsOf = async (sub: string, clientId: string) =>
    (
      await sql<{ n: number }>`
        select count(*)::int as n from oidc_models
        where model = 'Grant' and payload->>'accountId' = ${sub} and payload->>'clientId' = ${clientId}`.execute(
        sesame.db,
      )
    ).rows[0]!.n;

  /** What a consent page lists the app as asking for. */
  function scopesOn(page: PageResponse): string[] {
    const list = /<ul class="scopes">([\s\S]*?)<\/ul>/.exec(page.text)?.[1] ?? '';
    return [...list.matchAll(/<li>([^<]*)<\/li>/g)].map((match) => match[1]!);
  }

  /**
   * Runs `work` with the grant `grantId` deleted, as the app's Revoke deletes it, by the
   * database, at the first statement that stores it (an insert or an update of its row):
   * the revoke commits just before that statement, after the grant was read.
   */
  async function revokedJustBeforeItIsStored<T>(grantId: string, work: () => Promise<T>): Promise<T> {
    await sql`
      create function test_revoke_before_store() returns trigger language plpgsql as $$
      begin
        delete from oidc_models where model = 'Grant' and id = new.id;
        -- An update finds the row gone, as it would after the revoke's commit.
        if tg_op = 'UPDATE' then return null; end if;
        return new;
      end $$`.execute(sesame.db);
    await sql`
      create trigger test_revoke_before_store before insert or update on oidc_models
      for each row when (new.model = 'Grant' and new.id = ${sql.lit(grantId)})
      execute function test_revoke_before_store()`.execute(sesame.db);
    try {
      return await work();
    } finally {
      await sql`drop trigger test_revoke_before_store on oidc_models`.execute(sesame.db);
      await sql`drop function test_revoke_before_store()`.execute(sesame.db);
    }
  }

  it('shows the consent page again, for everything, when the grant its Allow extends was revoked meanwhile', async () => {
    const { person, tokens, grantId } = await signedUpAt(thirdParty);
    expect(await active(thirdParty, tokens.access_token)).toBe(true);
    const more = await beginLogin(thirdParty, 'openid read email', { resource: API });
    const page = asPage(await person.browser.follow(more.url));
    expect(page.text).toContain('>Allow<');
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;

    const allowed = await revokedJustBeforeItIsStored(grantId, () =>
      person.browser.request(`/interaction/${uid}/consent`, {
        form: { _csrf: page.csrf(), decision: 'allow' },
      }),
    );
    const again = asPage(await person.browser.follow(allowed.location()!, atApp));
    expect(again.text).toContain('>Allow<');
    // The API the revoked grant held is asked for again, as the first consent page asked for it.
    const askedForApi = (on: PageResponse) => scopesOn(on).some((scope) => scope.includes(API));
    expect([askedForApi(page), askedForApi(again)]).toEqual([false, true]);
    expect(await grantStored(grantId)).toBe(false);
    expect(await active(thirdParty, tokens.access_token)).toBe(false);

    // Allowed on that page, the sign-in ends under a grant of its own; the revoked one stays so.
    const signedIn = await finishLogin(thirdParty, more, await person.continueToApp(again.url, REDIRECT_URI));
    expect(decodeJwt(signedIn.access_token)[GRANT_ID]).not.toBe(grantId);
    expect(await active(thirdParty, signedIn.access_token)).toBe(true);
    expect(await active(thirdParty, tokens.access_token)).toBe(false);
  }, 60_000);

  it('shows the consent page again when the person revoked the app on the account page before pressing Allow', async () => {
    const { person, tokens, grantId } = await signedUpAt(thirdParty);
    const more = await beginLogin(thirdParty, 'openid read email', { resource: API });
    const page = asPage(await person.browser.follow(more.url));
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const account = asPage(await person.browser.request('/account'));
    const revoked = await person.browser.request(`/account/apps/${thirdPartyId}/revoke`, {
      form: { _csrf: account.csrf() },
    });
    expect(revoked.status).toBe(303);

    const allowed = await person.browser.request(`/interaction/${uid}/consent`, {
      form: { _csrf: page.csrf(), decision: 'allow' },
    });
    const again = asPage(await person.browser.follow(allowed.location()!, atApp));
    expect(again.text).toContain('>Allow<');
    expect(await grantStored(grantId)).toBe(false);
    expect(await active(thirdParty, tokens.access_token)).toBe(false);
  }, 60_000);

  it('shows the consent page again when Allow is pressed twice on one page with a Revoke of the app in between', async () => {
    const { person, tokens } = await signedUpAt(thirdParty);
    const sub = tokens.claims()!.sub;
    const revoke = async () => {
      const account = asPage(await person.browser.request('/account'));
      const revoked = await person.browser.request(`/account/apps/${thirdPartyId}/revoke`, {
        form: { _csrf: account.csrf() },
      });
      expect(revoked.status).toBe(303);
    };
    // No grant left: the next sign-in's consent page makes a new one.
    await revoke();
    const pending = await beginLogin(thirdParty, 'openid');
    const page = asPage(await person.browser.follow(pending.url));
    expect(page.text).toContain('>Allow<');
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const allow = () =>
      person.browser.request(`/interaction/${uid}/consent`, {
        form: { _csrf: page.csrf(), decision: 'allow' },
      });

    // The first Allow's answer is not followed (lost, or a second tab): the page stays open.
    expect((await allow()).status).toBe(303);
    expect(await grantsOf(sub, thirdPartyId)).toBe(1);
    await revoke();
    const again = await allow();
    expect(await grantsOf(sub, thirdPartyId)).toBe(0);
    expect(asPage(await person.browser.follow(again.location()!, atApp)).text).toContain('>Allow<');
  }, 60_000);

  /**
   * A person's first-party app asks for more than it was granted (`extra` in its request), and
   * `follow` takes their browser from its authorization URL to the app, the grant it extends
   * revoked meanwhile: the app signs them in under a new grant, and the revoked one stays so.
   */
  async function firstPartyAskingForMore(
    extra: Record<string, string>,
    follow: (person: Person, url: string) => Promise<string>,
  ) {
    const { person, tokens, grantId } = await signedUpAt(firstParty);
    const more = await beginLogin(firstParty, 'openid read email', { resource: API, ...extra });
    const callback = await revokedJustBeforeItIsStored(grantId, () => follow(person, more.url));
    const signedIn = await finishLogin(firstParty, more, callback);
    expect(decodeJwt(signedIn.access_token)[GRANT_ID]).not.toBe(grantId);
    expect(await grantStored(grantId)).toBe(false);
    expect(await active(firstParty, tokens.access_token)).toBe(false);
    expect(await active(firstParty, signedIn.access_token)).toBe(true);
  }

  it('signs a first-party app asking for more in under a new grant, not the one revoked since the sign-in read it', async () => {
    await firstPartyAskingForMore({}, async (person, url) =>
      stoppedAt(await person.browser.follow(url, atApp)),
    );
  }, 60_000);

  it('does so too when the person signs in again first (prompt=login): the return stores no revoked grant', async () => {
    await firstPartyAskingForMore({ prompt: 'login' }, async (person, url) => {
      const resume = await person.signIn(await person.open(url));
      return stoppedAt(await person.browser.follow(resume, atApp));
    });
  }, 60_000);

  /**
   * Sends `person`'s Revoke of the app `clientId` (account page) with `meanwhile` run just
   * before the Revoke's transaction begins, after whatever the request read before it. That
   * transaction is told from others by its caller's name in the stack: nothing else runs in
   * between, as a trigger could not (it would run inside the transaction).
   */
  async function revokeWith(person: Person, clientId: string, meanwhile: () => Promise<void>) {
    const account = asPage(await person.browser.request('/account'));
    const db = sesame.db;
    const begin = db.transaction;
    let ran = false;
    db.transaction = function beginRevealingRevoke(this: typeof db) {
      const builder = begin.call(this);
      if (!/\brevokeConnectedApp\b/.test(new Error().stack ?? '')) return builder;
      db.transaction = begin;
      const execute = builder.execute.bind(builder);
      builder.execute = async (work) => {
        await meanwhile();
        ran = true;
        return execute(work);
      };
      return builder;
    };
    try {
      const revoked = await person.browser.request(`/account/apps/${clientId}/revoke`, {
        form: { _csrf: account.csrf() },
      });
      expect(revoked.status).toBe(303);
    } finally {
      db.transaction = begin;
    }
    expect(ran).toBe(true);
  }

  it.each([
    ['a copy of the consent, in a new browser', () => thirdParty, () => thirdPartyId],
    ["a first-party app's grant, in a new browser", () => firstParty, () => firstPartyId],
  ])(
    'deletes, with its tokens, a grant the app got just before the Revoke ran: %s',
    async (_, rp, clientId) => {
      const { person, tokens } = await signedUpAt(rp());
      const sub = tokens.claims()!.sub;
      let meanwhile: oidc.TokenEndpointResponse | undefined;
      await revokeWith(person, clientId(), async () => {
        const elsewhere = person.inNewBrowser();
        const pending = await beginLogin(rp(), 'openid');
        const resume = await elsewhere.signIn(await elsewhere.open(pending.url));
        meanwhile = await finishLogin(
          rp(),
          pending,
          stoppedAt(await elsewhere.browser.follow(resume, atApp)),
        );
        expect(await grantsOf(sub, clientId())).toBe(2);
      });
      expect(await grantsOf(sub, clientId())).toBe(0);
      expect(await active(rp(), meanwhile!.access_token)).toBe(false);
      expect(await active(rp(), tokens.access_token)).toBe(false);
    },
    60_000,
  );

  /**
   * Runs `work`, a sign-in in a new browser, with the person's Revoke of the third-party app
   * (account page, in `revoker`'s browser) done right after the sign-in read the consent it
   * would copy, and before it stored the copy. Answers what `work` did and the consent read.
   * No statement of the sign-in falls between that read and the copy's insert, so no trigger
   * can run the revoke there: the read itself is followed by it, the real query and the real
   * Revoke, one after the other.
   */
  async function revokedAfterConsentIsRead<T>(revoker: Person, work: () => Promise<T>) {
    const account = asPage(await revoker.browser.request('/account'));
    const read = oidcModelsQueries.consentToCopy;
    const consents: ModelPayload[] = [];
    oidcModelsQueries.consentToCopy = async (...args) => {
      oidcModelsQueries.consentToCopy = read;
      const consent = await read(...args);
      if (consent) consents.push(consent);
      const revoked = await revoker.browser.request(`/account/apps/${thirdPartyId}/revoke`, {
        form: { _csrf: account.csrf() },
      });
      expect(revoked.status).toBe(303);
      return consent;
    };
    try {
      return { done: await work(), consents };
    } finally {
      oidcModelsQueries.consentToCopy = read;
    }
  }

  /** Signs `person` in to the third-party app in a new browser: the page the sign-in stops at, or the app's callback. */
  async function signInElsewhere(person: Person) {
    const elsewhere = person.inNewBrowser();
    const pending = await beginLogin(thirdParty, 'openid read', { resource: API });
    return elsewhere.browser.follow(await elsewhere.signIn(await elsewhere.open(pending.url)), atApp);
  }

  it('asks a new browser for consent when the consent it would copy was revoked after it read it', async () => {
    const { person, tokens } = await signedUpAt(thirdParty);
    const { done, consents } = await revokedAfterConsentIsRead(person, () => signInElsewhere(person));
    expect(consents).toHaveLength(1);
    expect(asPage(done).text).toContain('>Allow<');
    expect(await grantsOf(tokens.claims()!.sub, thirdPartyId)).toBe(0);
    expect(await active(thirdParty, tokens.access_token)).toBe(false);
  }, 60_000);

  it("asks a new browser for consent when the device's consent it would copy was marked revoked after it read it", async () => {
    const { person, tokens, grantId } = await signedUpAt(thirdParty);
    const device = await signInDevice(person, thirdParty.config, 'openid read', { resource: API });
    // The device's consent is the newest, the one a new browser copies.
    await sql`
      update oidc_models set payload = jsonb_set(payload, '{iat}', to_jsonb((payload->>'iat')::bigint - 60))
      where model = 'Grant' and id = ${grantId}`.execute(sesame.db);

    const { done, consents } = await revokedAfterConsentIsRead(person, () => signInElsewhere(person));
    expect(consents).toEqual([expect.objectContaining({ [APPROVED_ON_DEVICE]: expect.any(Number) })]);
    expect(asPage(done).text).toContain('>Allow<');
    // The device's grant alone: the device stays signed in, and its consent was not copied.
    expect(await grantsOf(tokens.claims()!.sub, thirdPartyId)).toBe(1);
    expect(await active(thirdParty, device.access_token)).toBe(true);
    expect(await active(thirdParty, tokens.access_token)).toBe(false);
  }, 60_000);
});
