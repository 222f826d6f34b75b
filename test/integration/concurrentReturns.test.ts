import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { createClient } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { type SecondInstance, startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8933/callback';

/**
 * A sign-in's return to the authorization (`GET /auth/:uid`) stores its session, grant and
 * code only if its statement deletes the interaction (src/oidc/heldWrites.ts): loaded several
 * times at once, on one instance or on several, it gives one code.
 */
describe('a return to the authorization loaded, or a consent sent, more than once at once', () => {
  let sesame: TestApp;
  let firstParty: TestRp;
  let thirdParty: TestRp;
  let thirdPartyId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const rpFor = async (first_party: boolean) => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: first_party ? 'Notes' : 'Photos', redirect_uris: [REDIRECT_URI], first_party },
        'test',
      );
      const rp = await discoverRp(
        sesame.baseUrl,
        { client_id: client.client_id, client_secret },
        REDIRECT_URI,
      );
      return { rp, clientId: client.client_id };
    };
    firstParty = (await rpFor(true)).rp;
    ({ rp: thirdParty, clientId: thirdPartyId } = await rpFor(false));
  });

  afterAll(() => sesame.stop());

  const count = async (model: string, clientId?: string) =>
    Number(
      (
        await sesame.db
          .selectFrom('oidc_models')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('model', '=', model)
          .$if(clientId !== undefined, (q) => q.where(sql<boolean>`payload->>'clientId' = ${clientId}`))
          .executeTakeFirstOrThrow()
      ).n,
    );

  /** Signs a new person up at the first-party app through `person`'s browser; they then sign in in new browsers. */
  async function signedUp(person: Person) {
    const pending = await beginLogin(firstParty);
    const email = `r${randomBytes(4).toString('hex')}@example.com`;
    const callback = await person.continueToApp(
      await person.signUp(await person.open(pending.url), email),
      REDIRECT_URI,
    );
    await finishLogin(firstParty, pending, callback);
  }

  /** Signs `person` in in a new browser, loads the return `times` times at once: the responses, and the codes issued meanwhile. */
  async function returnLoadedAtOnce(person: Person, times: number) {
    const visit = person.inNewBrowser();
    const pending = await beginLogin(firstParty);
    const resumeUrl = await visit.signIn(await visit.open(pending.url));
    const codesBefore = await count('AuthorizationCode');
    const responses = await Promise.all(
      Array.from({ length: times }, () => visit.browser.request(resumeUrl)),
    );
    const withCode = responses.filter((r) => r.location()?.startsWith(REDIRECT_URI));
    return { pending, responses, withCode, codesIssued: (await count('AuthorizationCode')) - codesBefore };
  }

  it('gives one code when the same instance gets the return several times at once; the others get a 400', async () => {
    const person = new Person(sesame.baseUrl);
    await signedUp(person);
    for (let round = 0; round < 5; round++) {
      const { pending, responses, withCode, codesIssued } = await returnLoadedAtOnce(person, 4);
      expect(withCode).toHaveLength(1);
      expect(codesIssued).toBe(1);
      expect(responses.filter((r) => r !== withCode[0]).map((r) => r.status)).toEqual([400, 400, 400]);
      await finishLogin(firstParty, pending, withCode[0]!.location()!);
    }
  });

  describe('on two instances of one database', () => {
    let other: SecondInstance;
    /** As behind a round-robin balancer: each request, concurrent ones too, goes to the next instance. */
    let roundRobin: { readonly connectTo: string };

    beforeAll(async () => {
      if (!onPostgres) return;
      other = await startSecondInstance(sesame);
      const instances = [sesame.listenUrl, other.url];
      let turn = 0;
      roundRobin = {
        get connectTo() {
          return instances[turn++ % 2]!;
        },
      };
    });

    afterAll(() => other?.stop());

    (onPostgres ? it : it.skip)('gives one code when each instance gets the return at once', async () => {
      const person = new Person(sesame.baseUrl, undefined, roundRobin);
      await signedUp(person);
      for (let round = 0; round < 6; round++) {
        const { pending, responses, withCode, codesIssued } = await returnLoadedAtOnce(person, 2);
        expect(withCode).toHaveLength(1);
        expect(codesIssued).toBe(1);
        expect(responses.find((r) => r !== withCode[0])!.status).toBe(400);
        await finishLogin(firstParty, pending, withCode[0]!.location()!);
      }
    });

    (onPostgres ? it : it.skip)(
      'signs in after an "Allow" sent twice at once, once to each instance, and stores one grant',
      async () => {
        const grantsBefore = await count('Grant', thirdPartyId);
        const rounds = 6;
        for (let round = 0; round < rounds; round++) {
          const person = new Person(sesame.baseUrl, undefined, roundRobin);
          const pending = await beginLogin(thirdParty);
          const email = `c${randomBytes(4).toString('hex')}@example.com`;
          const next = await person.signUp(await person.open(pending.url), email);
          const consentPage = asPage(await person.browser.follow(next));
          const uid = /\/interaction\/([^/?#]+)/.exec(consentPage.url)![1]!;
          const form = { _csrf: consentPage.csrf(), decision: 'allow' };
          const posted = await Promise.all(
            [0, 1].map(() => person.browser.request(`/interaction/${uid}/consent`, { form })),
          );
          expect(posted.map((r) => r.status)).toEqual([303, 303]);
          const followed = await person.browser.follow(posted[0]!.location()!, (url) =>
            url.startsWith(REDIRECT_URI),
          );
          if (!('stoppedAt' in followed))
            throw new Error(`no code: ${followed.status} ${followed.text.slice(0, 200)}`);
          expect((await finishLogin(thirdParty, pending, followed.stoppedAt)).claims()!.email).toBe(email);
        }
        expect((await count('Grant', thirdPartyId)) - grantsBefore).toBe(rounds);
      },
    );
  });
});
