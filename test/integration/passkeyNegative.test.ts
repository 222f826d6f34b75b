import { randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { sql } from 'kysely';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { interactionBinding, storedId } from '../../src/oidc/storedIds.js';
import { challengeNamedIn } from '../../src/webauthn/challenge.js';
import { type PageResponse, stoppedAt } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { eventually } from '../support/eventually.js';
import { beginLogin, discoverRp, Person, type TestRp } from '../support/oidcFlow.js';
import { passkeyOptionsIn } from '../support/pageOptions.js';
import { type AssertionTamper, SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8901/callback';

/**
 * Every bad request to the passkey ceremonies gets a clear 4xx and changes nothing: no
 * account, no passkey, no sign-in recorded on the interaction, no session, no counter moved.
 */
describe('the passkey login step refuses bad ceremonies and changes nothing', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let clientId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    clientId = client.client_id;
    rp = await discoverRp(sesame.baseUrl, { client_id: clientId, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  /** What a refused request must leave exactly as it was. */
  async function stateOf(uid: string) {
    const db = sesame.db;
    const users = await db.selectFrom('users').select(['id', 'email', 'disabled_at']).orderBy('id').execute();
    const credentials = await db
      .selectFrom('credentials')
      .select(['id', 'user_id', 'counter', 'public_key'])
      .orderBy('id')
      .execute();
    const sessions = await db
      .selectFrom('oidc_models')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('model', '=', 'Session')
      .executeTakeFirstOrThrow();
    const interaction = await db
      .selectFrom('oidc_models')
      .select('payload')
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .executeTakeFirst();
    return {
      users,
      credentials: credentials.map((c) => ({
        ...c,
        counter: Number(c.counter),
        public_key: Buffer.from(c.public_key).toString('base64url'),
      })),
      sessions: Number(sessions.n),
      interactionResult: (interaction?.payload as { result?: unknown } | undefined)?.result ?? null,
    };
  }

  /** The ceremony challenges stored for an interaction uid (bound to its stored id). */
  const storedChallenges = (uid: string) =>
    sesame.db
      .selectFrom('webauthn_challenges')
      .select(['challenge', 'purpose', 'user_id', 'data', 'expires_at'])
      .where('binding', '=', interactionBinding(uid))
      .execute();

  async function counterOf(credentialId: string): Promise<number> {
    const row = await sesame.db
      .selectFrom('credentials')
      .select('counter')
      .where('id', '=', credentialId)
      .executeTakeFirstOrThrow();
    return Number(row.counter);
  }

  /** A person who has signed up (and granted consent) once, now at a fresh browser. */
  async function signedUpPerson(email = `p${randomBytes(4).toString('hex')}@example.com`) {
    const person = new Person(sesame.baseUrl);
    const page = await person.open((await beginLogin(rp)).url);
    await person.continueToApp(await person.signUp(page, email), REDIRECT_URI);
    const user = await sesame.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', email)
      .executeTakeFirstOrThrow();
    const credentialId = person.authenticator.credentials()[0]!.id;
    return { person: person.inNewBrowser(), user, credentialId, email };
  }

  /**
   * Signs the person in at `login`, then opens a consent page at an app they have not
   * allowed yet: an interaction of this browser past the login prompt.
   */
  async function consentAfterSignIn(person: Person, login: { uid: string; csrf: string }) {
    const next = (await verifyLogin(person, login, await assertion(person, login))).json<{
      redirect: string;
    }>().redirect;
    await person.continueToApp(next, REDIRECT_URI);
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Other', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    const otherRp = await discoverRp(
      sesame.baseUrl,
      { client_id: client.client_id, client_secret },
      REDIRECT_URI,
    );
    const page = await person.open((await beginLogin(otherRp)).url);
    expect(page.text).toContain('>Allow<');
    return { page, uid: /\/interaction\/([^/?#]+)/.exec(page.url)![1]! };
  }

  /** The login page of a new authorization request, with what the browser code would need. */
  async function openLogin(person: Person) {
    const page = await person.open((await beginLogin(rp)).url);
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    return { page, uid, csrf: page.csrf() };
  }

  async function loginOptions(person: Person, login: { uid: string; csrf: string }) {
    const response = await person.browser.postJson(`/interaction/${login.uid}/login/options`, login.csrf, {});
    expect(response.status).toBe(200);
    return response.json<PublicKeyCredentialRequestOptionsJSON>();
  }

  /** Asks for options at the login page and answers them with the person's authenticator. */
  async function assertion(
    person: Person,
    login: { uid: string; csrf: string },
    tamper: AssertionTamper = {},
  ): Promise<AuthenticationResponseJSON> {
    const options = await loginOptions(person, login);
    return person.authenticator.getAssertion(options, person.browser.origin, tamper);
  }

  const verifyLogin = (person: Person, login: { uid: string; csrf: string }, body: unknown) =>
    person.browser.postJson(`/interaction/${login.uid}/login/verify`, login.csrf, body);

  function expectError(response: PageResponse, status: number, error: string) {
    expect({ status: response.status, error: response.json().error }).toEqual({ status, error });
    expect(typeof response.json().error_description).toBe('string');
  }

  describe('sign-in', () => {
    it('rejects an assertion posted a second time (replay)', async () => {
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      expect((await verifyLogin(person, login, response)).status).toBe(200);
      const after = await stateOf(login.uid);

      const replay = await verifyLogin(person, login, response);
      expectError(replay, 400, 'challenge_invalid');
      expect(await stateOf(login.uid)).toEqual(after);

      // Nor does the captured assertion work at another person's fresh login.
      const attacker = new Person(sesame.baseUrl);
      const other = await openLogin(attacker);
      const before = await stateOf(other.uid);
      expectError(await verifyLogin(attacker, other, response), 400, 'challenge_invalid');
      expect(await stateOf(other.uid)).toEqual(before);
      expect(await counterOf(credentialId)).toBe(1);
    });

    it('stores a sign-in challenge only for an interaction of this browser that waits at the login prompt', async () => {
      const challengesFor = async (binding: string) =>
        (await storedChallenges(binding)).map((row) => ({
          ...row,
          expiresInS: Math.round((row.expires_at.getTime() - Date.now()) / 1000),
        }));
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const served = passkeyOptionsIn(login.page.text)!;
      const options = await loginOptions(person, login);
      expect(options.allowCredentials ?? []).toEqual([]);
      const stored = await challengesFor(login.uid);
      // The page's own (its autofill's) and the button's.
      expect(stored.map((row) => row.challenge).sort()).toEqual([served.challenge, options.challenge].sort());
      for (const row of stored) {
        expect(row).toMatchObject({ purpose: 'login', user_id: null, data: {} });
        expect(row.expiresInS).toBeGreaterThan(60);
        expect(row.expiresInS).toBeLessThanOrEqual(300);
      }

      // Another browser's interaction: this one holds no cookie for it.
      const theirs = await openLogin(new Person(sesame.baseUrl));
      const theirsBefore = await storedChallenges(theirs.uid);
      const foreign = await person.browser.postJson(
        `/interaction/${theirs.uid}/login/options`,
        login.csrf,
        {},
      );
      expectError(foreign, 400, 'interaction_expired');
      expect(await storedChallenges(theirs.uid)).toEqual(theirsBefore);
      // Nor does this browser's view of their page store one.
      const foreignPage = await person.browser.request(`/interaction/${theirs.uid}`);
      expect(foreignPage.status).toBe(400);
      expect(await storedChallenges(theirs.uid)).toEqual(theirsBefore);

      // An interaction of this browser past the login prompt: consent at an app not yet allowed.
      // Its page (the consent page) carries no options and stored none.
      const { page, uid } = await consentAfterSignIn(person, login);
      expect(passkeyOptionsIn(page.text)).toBeUndefined();
      const atConsent = await person.browser.postJson(`/interaction/${uid}/login/options`, page.csrf(), {});
      expectError(atConsent, 400, 'interaction_expired');
      expect(await challengesFor(uid)).toEqual([]);
    });

    it('signs in with the options the login page came with (its autofill), once, and the page is not cached', async () => {
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      expect(login.page.headers.get('cache-control')).toBe('no-store');
      const options = passkeyOptionsIn(login.page.text)!;
      expect(options).toMatchObject({ rpId: 'localhost', userVerification: 'required' });
      expect(options.allowCredentials ?? []).toEqual([]);
      expect((await storedChallenges(login.uid)).map((row) => row.challenge)).toEqual([options.challenge]);

      // Each view of the page is a new challenge, stored as it is served.
      const again = await person.browser.request(`/interaction/${login.uid}`);
      const second = passkeyOptionsIn(again.text)!;
      expect(second.challenge).not.toBe(options.challenge);
      expect((await storedChallenges(login.uid)).map((row) => row.challenge).sort()).toEqual(
        [options.challenge, second.challenge].sort(),
      );

      const response = await person.authenticator.getAssertion(options, person.browser.origin);
      expect((await verifyLogin(person, login, response)).status).toBe(200);
      expect((await storedChallenges(login.uid)).map((row) => row.challenge)).toEqual([second.challenge]);
      expect(await counterOf(credentialId)).toBe(1);
      const after = await stateOf(login.uid);
      expectError(await verifyLogin(person, login, response), 400, 'challenge_invalid');
      expect(await stateOf(login.uid)).toEqual(after);
    });

    it('takes a sign-in challenge only with an interaction of this browser that waits at the login prompt', async () => {
      const challengesFor = async (binding: string) =>
        (await storedChallenges(binding)).map((row) => row.challenge);
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const served = passkeyOptionsIn(login.page.text)!.challenge;
      const response = await assertion(person, login);
      const challenge = challengeNamedIn(response.response.clientDataJSON)!;

      // Another browser posts it to the interaction it is bound to: it holds no cookie for it.
      const stranger = new Person(sesame.baseUrl);
      const strangerLogin = await openLogin(stranger);
      const before = await stateOf(login.uid);
      const foreign = await stranger.browser.postJson(
        `/interaction/${login.uid}/login/verify`,
        strangerLogin.csrf,
        response,
      );
      expectError(foreign, 400, 'interaction_expired');
      expect(await stateOf(login.uid)).toEqual(before);
      expect((await challengesFor(login.uid)).sort()).toEqual([served, challenge].sort());
      // Left where it was, it signs the person in where it belongs.
      expect((await verifyLogin(person, login, response)).status).toBe(200);
      expect(await challengesFor(login.uid)).toEqual([served]);

      // An interaction of this browser past the login prompt, holding a login challenge of its own.
      const { page, uid } = await consentAfterSignIn(person, await openLogin(person));
      const counter = await counterOf(credentialId);
      const elsewhere = person.inNewBrowser();
      const options = await loginOptions(elsewhere, await openLogin(elsewhere));
      await sesame.db
        .updateTable('webauthn_challenges')
        .set({ binding: interactionBinding(uid) })
        .where('challenge', '=', options.challenge)
        .execute();
      const signed = await person.authenticator.getAssertion(options, person.browser.origin);
      const atConsent = await person.browser.postJson(
        `/interaction/${uid}/login/verify`,
        page.csrf(),
        signed,
      );
      expectError(atConsent, 400, 'interaction_expired');
      expect(await challengesFor(uid)).toEqual([options.challenge]);
      expect(await counterOf(credentialId)).toBe(counter);
    });

    it('rejects a challenge issued for another interaction, and leaves it usable where it belongs', async () => {
      const { person } = await signedUpPerson();
      const loginA = await openLogin(person);
      const loginB = await openLogin(person);
      const fromA = await assertion(person, loginA);
      const before = await stateOf(loginB.uid);

      expectError(await verifyLogin(person, loginB, fromA), 400, 'challenge_invalid');
      expect(await stateOf(loginB.uid)).toEqual(before);
      // Presenting it at the wrong interaction did not burn it.
      expect((await verifyLogin(person, loginA, fromA)).status).toBe(200);
    });

    it('rejects an expired challenge', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      await sesame.db
        .updateTable('webauthn_challenges')
        .set({ expires_at: sql<Date>`now() - interval '1 second'` })
        .where('binding', '=', interactionBinding(login.uid))
        .execute();
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 400, 'challenge_invalid');
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it.each<[string, AssertionTamper]>([
      ['signed for another origin', { origin: 'https://evil.example' }],
      ['made for another RP ID', { rpIdHash: 'evil.example' }],
      ['made without user verification', { userVerified: false }],
      ['made without user presence', { userPresent: false }],
      ['of another ceremony type', { type: 'webauthn.create' }],
      ['with a bad signature', { badSignature: true }],
    ])('rejects an assertion %s', async (_what, tamper) => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login, tamper);
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 400, 'verification_failed');
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('rejects an assertion from a passkey it does not know', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login, {
        credentialId: randomBytes(32).toString('base64url'),
      });
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 401, 'unknown_credential');
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('rejects a usernameless assertion that does not say whose passkey it is (no user handle)', async () => {
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const signed = await assertion(person, login);
      const { userHandle: _omitted, ...withoutHandle } = signed.response;
      const response = { ...signed, response: withoutHandle };
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 400, 'verification_failed');
      expect(await stateOf(login.uid)).toEqual(before);
      expect(await counterOf(credentialId)).toBe(0);
    });

    it("rejects an assertion whose user handle is another account's", async () => {
      const victim = await signedUpPerson();
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const signed = await assertion(person, login);
      const victimHandle = victim.person.authenticator.credentials()[0]!.userHandle;
      const response = { ...signed, response: { ...signed.response, userHandle: victimHandle } };
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 400, 'verification_failed');
      expect(await stateOf(login.uid)).toEqual(before);
      expect(await counterOf(credentialId)).toBe(0);
    });

    it('rejects the passkey of a disabled user', async () => {
      const { person, user } = await signedUpPerson();
      await sesame.db
        .updateTable('users')
        .set({ disabled_at: new Date() })
        .where('id', '=', user.id)
        .execute();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      const before = await stateOf(login.uid);

      expectError(await verifyLogin(person, login, response), 403, 'account_disabled');
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('answers a bad signature for a disabled account as for an active one: only the key tells the account is disabled', async () => {
      const answerToForgery = async (person: Person) => {
        const login = await openLogin(person);
        const refused = await verifyLogin(
          person,
          login,
          await assertion(person, login, { badSignature: true }),
        );
        return { status: refused.status, body: refused.json() };
      };
      const active = await signedUpPerson();
      const disabled = await signedUpPerson();
      await sesame.db
        .updateTable('users')
        .set({ disabled_at: new Date() })
        .where('id', '=', disabled.user.id)
        .execute();

      const forActive = await answerToForgery(active.person);
      expect(forActive).toMatchObject({ status: 400, body: { error: 'verification_failed' } });
      expect(await answerToForgery(disabled.person)).toEqual(forActive);
    });

    it('blocks a passkey whose correctly signed assertion has a counter that went backwards, without saying why', async () => {
      const { person, credentialId } = await signedUpPerson();
      const first = await openLogin(person);
      expect((await verifyLogin(person, first, await assertion(person, first))).status).toBe(200);
      const second = await openLogin(person);
      expect((await verifyLogin(person, second, await assertion(person, second))).status).toBe(200);
      expect(await counterOf(credentialId)).toBe(2);

      const login = await openLogin(person);
      const response = await assertion(person, login, { signCount: 1 });
      const before = await stateOf(login.uid);
      const refused = await verifyLogin(person, login, response);
      expectError(refused, 403, 'passkey_blocked');
      expect(refused.json().error_description).toBe(
        'This passkey has been blocked. Sign in with another passkey or recover your account.',
      );
      // No sign-in, no counter moved; the passkey is marked and the account's own sessions
      // ended with the block (clonedPasskey.test.ts follows it further).
      expect({ ...(await stateOf(login.uid)), sessions: undefined }).toEqual({
        ...before,
        sessions: undefined,
      });
      const row = await sesame.db
        .selectFrom('credentials')
        .select('suspected_clone_at')
        .where('id', '=', credentialId)
        .executeTakeFirstOrThrow();
      expect(row.suspected_clone_at).toBeInstanceOf(Date);
    });

    it('blocks nothing for a bad signature whose counter went backwards', async () => {
      const { person, credentialId } = await signedUpPerson();
      const first = await openLogin(person);
      expect((await verifyLogin(person, first, await assertion(person, first))).status).toBe(200);
      const login = await openLogin(person);
      const forged = await assertion(person, login, { signCount: 0, badSignature: true });
      expectError(await verifyLogin(person, login, forged), 400, 'verification_failed');
      const again = await openLogin(person);
      expect((await verifyLogin(person, again, await assertion(person, again))).status).toBe(200);
      expect(await counterOf(credentialId)).toBe(3);
    });

    it.each<[string, AssertionTamper]>([
      ['said to run in a cross-origin frame', { crossOrigin: true }],
      ['whose crossOrigin is not a boolean', { crossOrigin: 'yes' }],
    ])('rejects an assertion %s, and the counter stays', async (_what, tamper) => {
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const before = await stateOf(login.uid);
      expectError(
        await verifyLogin(person, login, await assertion(person, login, tamper)),
        400,
        'verification_failed',
      );
      expect(await stateOf(login.uid)).toEqual(before);
      expect(await counterOf(credentialId)).toBe(0);
    });

    it('rejects an assertion whose backup eligibility differs from the registered passkey’s (§6.1.3: fixed at creation)', async () => {
      // Registered device-bound (BE clear); the same key now answers as a synced passkey (BE and BS set).
      const { person, credentialId } = await signedUpPerson();
      const synced = new SoftAuthenticator({ backupEligible: true, backupState: true });
      synced.importCredential(person.authenticator.exportCredential(credentialId));
      const cloned = new Person(sesame.baseUrl, synced);
      const login = await openLogin(cloned);
      expectError(
        await verifyLogin(cloned, login, await assertion(cloned, login)),
        400,
        'verification_failed',
      );
      const row = await sesame.db
        .selectFrom('credentials')
        .select(['counter', 'backup_eligible', 'backup_state'])
        .where('id', '=', credentialId)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ backup_eligible: false, backup_state: false });
      expect(Number(row.counter)).toBe(0);
      // The registered authenticator still signs in.
      const again = await openLogin(person);
      expect((await verifyLogin(person, again, await assertion(person, again))).status).toBe(200);
    });

    it('saves no sign-in for an assertion that a newer one beat to the counter (a race with a clone)', async () => {
      const { person, credentialId } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      const before = await stateOf(login.uid);
      // A newer assertion of the same passkey lands between this one's read of the counter
      // (with its challenge) and its use: here, a trigger on taking the challenge.
      await sql`create function newer_assertion() returns trigger language plpgsql as $$
        begin update credentials set counter = 100 where id = ${sql.lit(credentialId)}; return null; end $$`.execute(
        sesame.db,
      );
      await sql`create trigger newer_assertion after delete on webauthn_challenges
        for each row execute function newer_assertion()`.execute(sesame.db);
      let refused: PageResponse;
      try {
        refused = await verifyLogin(person, login, response);
      } finally {
        await sql`drop trigger newer_assertion on webauthn_challenges`.execute(sesame.db);
        await sql`drop function newer_assertion()`.execute(sesame.db);
      }
      expectError(refused, 400, 'verification_failed');
      // The interaction records no sign-in, and the newer counter stands.
      expect((await stateOf(login.uid)).interactionResult).toBeNull();
      expect((await stateOf(login.uid)).sessions).toBe(before.sessions);
      expect(await counterOf(credentialId)).toBe(100);
    });

    it('answers a challenge with a NUL in it as the odd input it is, not as an expired sign-in', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login, { challenge: 'a\u0000b' });
      const before = await stateOf(login.uid);
      const answer = await verifyLogin(person, login, response);
      expect(answer.status).toBe(400);
      expect(answer.json().error).not.toBe('interaction_expired');
      expect(await stateOf(login.uid)).toEqual(before);
      // The sign-in goes on.
      expect((await verifyLogin(person, login, await assertion(person, login))).status).toBe(200);
    });

    it('rejects malformed JSON with 400', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      await loginOptions(person, login);
      const before = await stateOf(login.uid);
      const response = await person.browser.request(`/interaction/${login.uid}/login/verify`, {
        method: 'POST',
        body: '{"id": "abc", "response": {',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'x-csrf-token': login.csrf,
        },
      });
      expectError(response, 400, 'invalid_request');
      expect(response.json().error_description).toMatch(/malformed/i);
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('rejects a body over the size limit with 413 before reading it', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      const before = await stateOf(login.uid);
      const padded = { ...response, clientExtensionResults: { padding: 'x'.repeat(100 * 1024) } };

      expectError(await verifyLogin(person, login, padded), 413, 'payload_too_large');
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('rejects wrongly typed fields with 400 naming the field', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      const before = await stateOf(login.uid);
      const wrong = {
        ...response,
        id: 12345,
        response: { ...response.response, signature: ['not', 'a', 'string'] },
      };

      const answer = await verifyLogin(person, login, wrong);
      expectError(answer, 400, 'invalid_request');
      expect(Object.keys(answer.json<{ fields: Record<string, string> }>().fields)).toEqual(
        expect.arrayContaining(['id', 'response.signature']),
      );
      expect(await stateOf(login.uid)).toEqual(before);
    });

    it('refuses a verify call without the CSRF token, or from a foreign origin, with 403', async () => {
      const { person } = await signedUpPerson();
      const login = await openLogin(person);
      const response = await assertion(person, login);
      const before = await stateOf(login.uid);

      const noToken = await person.browser.request(`/interaction/${login.uid}/login/verify`, {
        json: response,
        headers: { accept: 'application/json' },
      });
      expectError(noToken, 403, 'csrf');
      // One character off, the first: the last two already read "AA" in one token in 1,024
      // (the last character carries four bits), which once failed CI.
      const wrongFirst = login.csrf.startsWith('A') ? 'B' : 'A';
      const wrongToken = await person.browser.postJson(
        `/interaction/${login.uid}/login/verify`,
        `${wrongFirst}${login.csrf.slice(1)}`,
        response,
      );
      expectError(wrongToken, 403, 'csrf');
      const foreign = await person.browser.request(`/interaction/${login.uid}/login/verify`, {
        json: response,
        headers: { accept: 'application/json', 'x-csrf-token': login.csrf, origin: 'https://evil.example' },
      });
      expectError(foreign, 403, 'forbidden');
      const optionsNoToken = await person.browser.request(`/interaction/${login.uid}/login/options`, {
        json: {},
        headers: { accept: 'application/json' },
      });
      expectError(optionsNoToken, 403, 'csrf');
      expect(await stateOf(login.uid)).toEqual(before);

      // The refused calls did not use up the challenge: the real page still signs in.
      expect((await verifyLogin(person, login, response)).status).toBe(200);
    });

    it('cancels a sign-in only on a POST with the CSRF token, and then returns access_denied to the app', async () => {
      const person = new Person(sesame.baseUrl);
      const pending = await beginLogin(rp);
      const page = await person.open(pending.url);
      const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
      expect(page.text).toMatch(
        new RegExp(
          `<form[^>]*method="post" action="/interaction/${uid}/abort">[\\s\\S]*?Cancel and return to Notes</button>`,
        ),
      );
      const before = await stateOf(uid);

      // A link or an image elsewhere cannot cancel it (GET), nor a form without the token.
      const viaGet = await person.browser.request(`/interaction/${uid}/abort`);
      expect(viaGet.status).toBe(404);
      expect(viaGet.headers.get('location')).toBeNull();
      const noToken = await person.browser.request(`/interaction/${uid}/abort`, { form: {} });
      expect(noToken.status).toBe(403);
      expect(await stateOf(uid)).toEqual(before);

      const cancelled = await person.browser.request(`/interaction/${uid}/abort`, {
        form: { _csrf: page.csrf() },
      });
      const callback = new URL(
        stoppedAt(await person.browser.follow(cancelled.location()!, (u) => u.startsWith(REDIRECT_URI))),
      );
      expect(callback.searchParams.get('error')).toBe('access_denied');
      expect(callback.searchParams.get('state')).toBe(pending.state);
      expect(callback.searchParams.get('code')).toBeNull();
    });

    it('refuses a consent decision without the CSRF token', async () => {
      const { person } = await signedUpPerson();
      const { uid } = await consentAfterSignIn(person, await openLogin(person));
      const before = await stateOf(uid);
      const posted = await person.browser.request(`/interaction/${uid}/consent`, {
        form: { decision: 'allow' },
      });
      expect(posted.status).toBe(403);
      expect(posted.headers.get('location')).toBeNull();
      expect(posted.text).toContain('Reload the page');
      expect(await stateOf(uid)).toEqual(before);
    });
  });

  describe('sign-up', () => {
    async function signupPage(person: Person) {
      const login = await openLogin(person);
      const page = await person.browser.request(`/interaction/${login.uid}/signup`);
      return { uid: login.uid, csrf: page.csrf() };
    }

    /** Holds the stored interaction `uid` locked (FOR UPDATE) in a transaction of its own, until released. */
    async function lockInteraction(uid: string) {
      let locked!: () => void;
      let release!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      const done = sesame.db.transaction().execute(async (trx) => {
        await trx
          .selectFrom('oidc_models')
          .select('id')
          .where('model', '=', 'Interaction')
          .where('id', '=', storedId('Interaction', uid))
          .forUpdate()
          .execute();
        locked();
        await released;
      });
      await Promise.race([isLocked, done]);
      return {
        release: () => {
          release();
          return done;
        },
      };
    }

    /** How many statements wait for a row lock to record a sign-up's result on its interaction. */
    async function waitingForTheLock(): Promise<number> {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query like '%jsonb_set(payload, ''{result}''%'`.execute(
        sesame.db,
      );
      return rows[0]!.n;
    }

    async function signupOptions(person: Person, at: { uid: string; csrf: string }, email: string) {
      return person.browser.postJson(`/interaction/${at.uid}/signup/options`, at.csrf, { email });
    }

    it('refuses an email that already has an account (any case), and leaves that account untouched', async () => {
      const existing = await signedUpPerson();
      const intruder = new Person(sesame.baseUrl);
      const at = await signupPage(intruder);
      const before = await stateOf(at.uid);

      const answer = await signupOptions(intruder, at, existing.email.toUpperCase());
      expectError(answer, 409, 'conflict');
      expect(answer.json<{ fields: Record<string, string> }>().fields.email).toBeDefined();
      expect(await stateOf(at.uid)).toEqual(before);
    });

    it('refuses to finish a sign-up whose email was taken meanwhile, with no takeover', async () => {
      const email = `race${randomBytes(4).toString('hex')}@example.com`;
      const late = new Person(sesame.baseUrl);
      const at = await signupPage(late);
      const options = await signupOptions(late, at, email);
      expect(options.status).toBe(200);
      const credential = await late.authenticator.createCredential(
        options.json<PublicKeyCredentialCreationOptionsJSON>(),
        late.browser.origin,
      );

      const winner = await signedUpPerson(email);
      const before = await stateOf(at.uid);
      const answer = await late.browser.postJson(`/interaction/${at.uid}/signup/verify`, at.csrf, credential);
      expectError(answer, 409, 'conflict');
      expect(await stateOf(at.uid)).toEqual(before);
      const owned = await sesame.db
        .selectFrom('credentials')
        .select('id')
        .where('user_id', '=', winner.user.id)
        .execute();
      expect(owned.map((c) => c.id)).toEqual([winner.credentialId]);
    });

    it.each<[string, AssertionTamper]>([
      ['signed for another origin', { origin: 'https://evil.example' }],
      ['made for another RP ID', { rpIdHash: 'evil.example' }],
      ['made without user verification', { userVerified: false }],
      // Sesame's pages are never framed: a ceremony said to run in a cross-origin frame was no browser's at them.
      ['said to run in a cross-origin frame', { crossOrigin: true }],
      ['naming a top origin', { topOrigin: 'https://evil.example' }],
      // A key must be what its algorithm names (WebAuthn L3 §5.8.5, RFC 8230 §6.1).
      ['with a P-384 key labelled ES256', { key: { kind: 'ec', curve: 'P-384', alg: -7 } }],
      ['with a P-521 key labelled ES256', { key: { kind: 'ec', curve: 'P-521', alg: -7 } }],
      ['with an Ed25519 key labelled ES256', { key: { kind: 'ed25519', alg: -7 } }],
      ['with a P-256 key labelled RS256', { key: { kind: 'ec', curve: 'P-256', alg: -257 } }],
      ['with a P-256 key labelled EdDSA', { key: { kind: 'ec', curve: 'P-256', alg: -8 } }],
      ['with a 512-bit RSA key', { key: { kind: 'rsa', bits: 512, alg: -257 } }],
      ['with a 1,024-bit RSA key', { key: { kind: 'rsa', bits: 1024, alg: -257 } }],
    ])('creates no account from a registration %s', async (_what, tamper) => {
      const person = new Person(sesame.baseUrl);
      const at = await signupPage(person);
      const options = await signupOptions(person, at, `t${randomBytes(4).toString('hex')}@example.com`);
      const credential = await person.authenticator.createCredential(
        options.json<PublicKeyCredentialCreationOptionsJSON>(),
        person.browser.origin,
        tamper,
      );
      const before = await stateOf(at.uid);

      const answer = await person.browser.postJson(
        `/interaction/${at.uid}/signup/verify`,
        at.csrf,
        credential,
      );
      expectError(answer, 400, 'verification_failed');
      expect(await stateOf(at.uid)).toEqual(before);
    });

    it.each([
      ['longer than WebAuthn allows (1,024 bytes)', 1024, false],
      // The verifier takes the id from the authenticator data and never compares it with rawId.
      ['of 1,500 bytes in the authenticator data, reported as 16 bytes', 1500, true],
      ['of 4,000 bytes in the authenticator data (past the index limit), reported as 16 bytes', 4000, true],
    ])(
      'creates no account from a registration whose credential id is %s',
      async (_what, bytes, reportedShort) => {
        const person = new Person(sesame.baseUrl);
        const at = await signupPage(person);
        const options = await signupOptions(person, at, `l${randomBytes(4).toString('hex')}@example.com`);
        const credential = await person.authenticator.createCredential(
          options.json<PublicKeyCredentialCreationOptionsJSON>(),
          person.browser.origin,
          { credentialId: randomBytes(bytes).toString('base64url') },
        );
        if (reportedShort) credential.id = credential.rawId = randomBytes(16).toString('base64url');
        const before = await stateOf(at.uid);
        const answer = await person.browser.postJson(
          `/interaction/${at.uid}/signup/verify`,
          at.csrf,
          credential,
        );
        expectError(answer, 400, 'verification_failed');
        expect(await stateOf(at.uid)).toEqual(before);
      },
    );

    it.each<[string, NonNullable<AssertionTamper['key']>]>([
      ['RS256 with a 2,048-bit key (Windows Hello)', { kind: 'rsa', bits: 2048, alg: -257 }],
      ['EdDSA with an Ed25519 key', { kind: 'ed25519', alg: -8 }],
    ])('creates an account from a passkey of %s', async (_what, key) => {
      const person = new Person(sesame.baseUrl);
      const at = await signupPage(person);
      const email = `g${randomBytes(4).toString('hex')}@example.com`;
      const options = await signupOptions(person, at, email);
      const credential = await person.authenticator.createCredential(
        options.json<PublicKeyCredentialCreationOptionsJSON>(),
        person.browser.origin,
        { key },
      );
      const answer = await person.browser.postJson(
        `/interaction/${at.uid}/signup/verify`,
        at.csrf,
        credential,
      );
      expect(answer.status).toBe(200);
      expect(await usersQueries.findByEmail(sesame.db, email)).toBeDefined();
    });

    it('refuses a passkey registered already, saying so, and creates no account', async () => {
      const { credentialId } = await signedUpPerson();
      const person = new Person(sesame.baseUrl);
      const at = await signupPage(person);
      const options = await signupOptions(person, at, `d${randomBytes(4).toString('hex')}@example.com`);
      const credential = await person.authenticator.createCredential(
        options.json<PublicKeyCredentialCreationOptionsJSON>(),
        person.browser.origin,
        { credentialId },
      );
      const users = await countRows(sesame.db, 'users');
      const answer = await person.browser.postJson(
        `/interaction/${at.uid}/signup/verify`,
        at.csrf,
        credential,
      );
      expectError(answer, 409, 'conflict');
      expect(answer.json<{ error_description: string }>().error_description).toBe(
        'This passkey is already registered.',
      );
      expect(await countRows(sesame.db, 'users')).toBe(users);
    });

    it('refuses a second sign-up, or a sign-in, on an interaction whose sign-up finished', async () => {
      const person = new Person(sesame.baseUrl);
      const at = await signupPage(person);
      const signUp = async (email: string) => {
        const options = await signupOptions(person, at, email);
        if (options.status !== 200) return options;
        const credential = await person.authenticator.createCredential(
          options.json<PublicKeyCredentialCreationOptionsJSON>(),
          person.browser.origin,
        );
        return person.browser.postJson(`/interaction/${at.uid}/signup/verify`, at.csrf, credential);
      };
      expect((await signUp(`once${randomBytes(4).toString('hex')}@example.com`)).status).toBe(200);
      const users = await countRows(sesame.db, 'users');
      const after = await stateOf(at.uid);

      // The result names the first account until the browser returns to the authorization.
      expectError(
        await signUp(`twice${randomBytes(4).toString('hex')}@example.com`),
        400,
        'interaction_expired',
      );
      const login = await person.browser.postJson(`/interaction/${at.uid}/login/options`, at.csrf, {});
      expectError(login, 400, 'interaction_expired');
      expect(await countRows(sesame.db, 'users')).toBe(users);
      expect(await stateOf(at.uid)).toEqual(after);
    });

    it('lets one of several sign-ups sent at once on one interaction create an account, and refuses the others', async () => {
      const person = new Person(sesame.baseUrl);
      const at = await signupPage(person);
      const tag = randomBytes(4).toString('hex');
      const emails = [1, 2, 3].map((n) => `x${n}-${tag}@example.com`);
      const credentials = [];
      for (const email of emails) {
        const options = await signupOptions(person, at, email);
        expect(options.status).toBe(200);
        credentials.push(
          await person.authenticator.createCredential(
            options.json<PublicKeyCredentialCreationOptionsJSON>(),
            person.browser.origin,
          ),
        );
      }
      const users = await countRows(sesame.db, 'users');

      // On Postgres the interaction's row is held locked until all three wait for it to record
      // their result: each has read the interaction without one and verified its passkey, and
      // all three come to create their account at once. PGlite serves one connection, so there
      // they run one after another, and a loser may read the winner's result first.
      const lock = onPostgres ? await lockInteraction(at.uid) : undefined;
      const sent = Promise.all(
        credentials.map((credential) =>
          person.browser.postJson(`/interaction/${at.uid}/signup/verify`, at.csrf, credential),
        ),
      );
      if (lock) {
        await eventually(async () => (await waitingForTheLock()) === credentials.length, 10_000);
        await lock.release();
      }
      const answers = await sent;
      const won = answers.filter((answer) => answer.status === 200);
      expect(won).toHaveLength(1);
      // A loser that read the interaction with the winner's result is told the sign-in finished,
      // as a second sign-up is; one that read it before is refused when it comes to create.
      const lost = answers.filter((answer) => answer.status !== 200);
      for (const answer of lost) {
        if (answer.status === 400) expectError(answer, 400, 'interaction_expired');
        else expectError(answer, 409, 'conflict');
      }
      if (onPostgres) expect(lost.map((answer) => answer.status)).toEqual([409, 409]);
      expect(await countRows(sesame.db, 'users')).toBe(users + 1);
      const created = await sesame.db.selectFrom('users').select('id').where('email', 'in', emails).execute();
      expect(created).toHaveLength(1);
      expect((await stateOf(at.uid)).interactionResult).toMatchObject({
        login: { accountId: created[0]!.id },
      });
    });

    it('creates no account from a registration answering another interaction’s challenge', async () => {
      const person = new Person(sesame.baseUrl);
      const atA = await signupPage(person);
      const atB = await signupPage(person);
      const options = await signupOptions(person, atA, `x${randomBytes(4).toString('hex')}@example.com`);
      const credential = await person.authenticator.createCredential(
        options.json<PublicKeyCredentialCreationOptionsJSON>(),
        person.browser.origin,
      );
      const before = await stateOf(atB.uid);

      const answer = await person.browser.postJson(
        `/interaction/${atB.uid}/signup/verify`,
        atB.csrf,
        credential,
      );
      expectError(answer, 400, 'challenge_invalid');
      expect(await stateOf(atB.uid)).toEqual(before);
    });
  });

  describe('authorization requests', () => {
    async function interactionCount(): Promise<number> {
      const row = await sesame.db
        .selectFrom('oidc_models')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('model', '=', 'Interaction')
        .executeTakeFirstOrThrow();
      return Number(row.n);
    }

    it.each([
      ['a path the client did not register', 'http://127.0.0.1:8901/elsewhere'],
      ['another host', 'https://evil.example/callback'],
    ])('shows an error page, and never redirects, for a redirect_uri on %s', async (_what, redirectUri) => {
      const before = await interactionCount();
      const pending = await beginLogin({ ...rp, redirectUri });
      const person = new Person(sesame.baseUrl);
      const page = await person.browser.request(pending.url);

      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(page.text).toContain('redirect_uri');
      expect(page.text).not.toContain(`href="${redirectUri}`);
      expect(page.text).not.toMatch(/\n\s+at /);
      expect(await interactionCount()).toBe(before);
    });

    it.each([
      ['without a code_challenge', { code_challenge: '', code_challenge_method: '' }],
      ['with the plain method', { code_challenge_method: 'plain' }],
    ])('refuses an authorization request %s (PKCE S256 is required)', async (_what, override) => {
      const before = await interactionCount();
      const pending = await beginLogin(rp);
      const url = new URL(pending.url);
      for (const [key, value] of Object.entries(override)) {
        if (value) url.searchParams.set(key, value);
        else url.searchParams.delete(key);
      }
      const person = new Person(sesame.baseUrl);
      const answer = await person.browser.request(url.toString());

      // The redirect_uri is registered, so the error goes back to the app (RFC 6749 §4.1.2.1), without a code.
      const location = new URL(answer.location()!);
      expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('code')).toBeNull();
      expect(location.searchParams.get('state')).toBe(pending.state);
      expect(await interactionCount()).toBe(before);
    });
  });
});
