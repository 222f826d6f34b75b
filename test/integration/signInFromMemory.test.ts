import { jest } from '@jest/globals';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { sql } from 'kysely';
import { credentialsQueries } from '../../src/db/queries/credentials.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { createClient } from '../../src/oidc/clients.js';
import { interactionBinding, storedId } from '../../src/oidc/storedIds.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { passkeyOptionsIn } from '../support/pageOptions.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8937/callback';
const BLOCKED = 'This passkey has been blocked. Sign in with another passkey or recover your account.';

/**
 * A passkey that signed in on this instance signs in again with one statement: the assertion
 * is checked against the passkey and the interaction as this process holds them, and the
 * statement that takes the challenge and records the use saves the sign-in only if the
 * database still says the same (interaction.ts signInFromMemory, credentials.ts
 * useCheckedInMemory). Wherever it does not, the sign-in goes the usual way, as before.
 */
describe('a sign-in checked against what this instance holds', () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterEach(() => jest.restoreAllMocks());
  afterAll(() => sesame.stop());

  /** Counts the usual way's statement: the interaction's read that takes the challenge. */
  const usualWay = () => jest.spyOn(credentialsQueries, 'findInteractionTakingChallenge');

  const credentialRow = (id: string) =>
    sesame.db
      .selectFrom('credentials')
      .select(['counter', 'suspected_clone_at', 'last_used_at'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  const challengesFor = (uid: string) =>
    sesame.db
      .selectFrom('webauthn_challenges')
      .select('challenge')
      .where('binding', '=', interactionBinding(uid))
      .execute();

  /** Someone signed up, and their passkey's credential id. */
  async function signedUp(email: string) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const page = await person.open(pending.url);
    await finishLogin(
      rp,
      pending,
      await person.continueToApp(await person.signUp(page, email), REDIRECT_URI),
    );
    return { person, credentialId: person.authenticator.credentials()[0]!.id };
  }

  /** A login page in a new browser, and the assertion answering its autofill options (`signCount` to set the counter). */
  async function assertion(person: Person, signCount?: number) {
    const visit = person.inNewBrowser();
    const pending = await beginLogin(rp);
    const page = await visit.open(pending.url);
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const response = await visit.authenticator.getAssertion(
      passkeyOptionsIn(page.text)!,
      visit.browser.origin,
      {
        signCount,
      },
    );
    const verify = (body: AuthenticationResponseJSON = response) =>
      visit.browser.postJson(`/interaction/${uid}/login/verify`, page.csrf(), body);
    return { visit, pending, uid, response, verify };
  }

  /** Signs in with a new browser's login page; returns the sub the app gets. */
  async function signIn(person: Person) {
    const { visit, pending, verify } = await assertion(person);
    const answer = await verify();
    expect(answer.status).toBe(200);
    const callback = await visit.continueToApp(answer.json<{ redirect: string }>().redirect, REDIRECT_URI);
    return (await finishLogin(rp, pending, callback)).claims()!.sub;
  }

  it("takes the challenge, records the passkey's use and saves the sign-in in one statement, from a passkey's second sign-in here", async () => {
    const { person, credentialId } = await signedUp('ada@example.com');
    const usual = usualWay();
    const sub = await signIn(person);
    expect(usual).toHaveBeenCalledTimes(1);
    expect(sesame.app.caches.passkeys.get(credentialId)?.counter).toBe(1);

    const { visit, pending, uid, verify } = await assertion(person);
    expect(await challengesFor(uid)).toHaveLength(1);
    const before = await credentialRow(credentialId);
    const answer = await verify();
    expect(answer.status).toBe(200);
    expect(usual).toHaveBeenCalledTimes(1);
    // The challenge is used up, the counter and last use recorded, and the app gets the same person.
    expect(await challengesFor(uid)).toEqual([]);
    const after = await credentialRow(credentialId);
    expect(Number(after.counter)).toBe(2);
    expect(after.last_used_at!.getTime()).toBeGreaterThan(before.last_used_at!.getTime());
    expect(sesame.app.caches.passkeys.get(credentialId)?.counter).toBe(2);
    const callback = await visit.continueToApp(answer.json<{ redirect: string }>().redirect, REDIRECT_URI);
    expect((await finishLogin(rp, pending, callback)).claims()!.sub).toBe(sub);
  });

  it('refuses the same assertion sent again (the usual way: its interaction has moved on), and changes nothing', async () => {
    const { person, credentialId } = await signedUp('babbage@example.com');
    await signIn(person);
    const { verify, response } = await assertion(person);
    expect((await verify()).status).toBe(200);
    const counter = (await credentialRow(credentialId)).counter;
    const again = await verify(response);
    expect(again.status).toBe(400);
    expect((await credentialRow(credentialId)).counter).toBe(counter);
  });

  it('goes the usual way when the stored interaction changed behind this instance, and signs in from what is stored', async () => {
    const { person } = await signedUp('hopper@example.com');
    const sub = await signIn(person);
    const { visit, pending, uid, verify } = await assertion(person);
    await sesame.db
      .updateTable('oidc_models')
      .set({ payload: sql`payload || '{"changedElsewhere": true}'::jsonb` })
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .execute();
    const usual = usualWay();
    const answer = await verify();
    expect(answer.status).toBe(200);
    expect(usual).toHaveBeenCalledTimes(1);
    expect(await challengesFor(uid)).toEqual([]);
    const callback = await visit.continueToApp(answer.json<{ redirect: string }>().redirect, REDIRECT_URI);
    expect((await finishLogin(rp, pending, callback)).claims()!.sub).toBe(sub);
  });

  it('refuses a passkey blocked behind this instance, as blocked, and stores nothing of the sign-in', async () => {
    const { person, credentialId } = await signedUp('lamarr@example.com');
    await signIn(person);
    await sesame.db
      .updateTable('credentials')
      .set({ suspected_clone_at: new Date() })
      .where('id', '=', credentialId)
      .execute();
    const { uid, verify } = await assertion(person);
    const counter = (await credentialRow(credentialId)).counter;
    const answer = await verify();
    expect(answer.status).toBe(403);
    expect(answer.json<{ error_description: string }>().error_description).toBe(BLOCKED);
    expect((await credentialRow(credentialId)).counter).toBe(counter);
    const interaction = await oidcModelsQueries.find(sesame.db, 'Interaction', storedId('Interaction', uid));
    expect(interaction?.result).toBeUndefined();
  });

  it('stores nothing, and leaves the challenge, unless the interaction, the passkey and its owner are as checked', async () => {
    const { person, credentialId } = await signedUp('meitner@example.com');
    await signIn(person);
    const { uid, response } = await assertion(person);
    const [{ challenge }] = (await challengesFor(uid)) as [{ challenge: string }];
    const interactionId = storedId('Interaction', uid);
    const stored = await oidcModelsQueries.find(sesame.db, 'Interaction', interactionId);
    /** A passkey's owner and public key, as stored. */
    const ownerAndKey = (id: string) =>
      sesame.db
        .selectFrom('credentials')
        .select(['user_id', 'public_key'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
    const owner = await ownerAndKey(credentialId);
    const checked = {
      credentialId,
      counter: 2,
      backupState: false,
      challenge,
      interactionId,
      interactionJson: JSON.stringify(stored),
      userId: owner.user_id,
      publicKey: owner.public_key,
    };
    const store = (changes: Partial<typeof checked>) =>
      oidcModelsQueries.destroyAndUpsertIf(
        sesame.db,
        credentialsQueries.useCheckedInMemory({ ...checked, ...changes }),
        [],
        [],
      );
    const other = await signedUp('franklin@example.com');
    const otherOwner = await ownerAndKey(other.credentialId);
    for (const changes of [
      { interactionJson: JSON.stringify({ ...stored, changedElsewhere: true }) },
      { userId: otherOwner.user_id },
      { publicKey: otherOwner.public_key },
      { credentialId: other.credentialId },
      { counter: 1 },
      { challenge: `${challenge.slice(0, -2)}AA` },
      { interactionId: storedId('Interaction', 'another') },
    ]) {
      expect(await store(changes)).toBeUndefined();
    }
    // Changes in the database, each undone after: the statement must see it, and store nothing.
    const challengeRow = () =>
      sesame.db.updateTable('webauthn_challenges').where('challenge', '=', challenge);
    const interactionRow = () =>
      sesame.db.updateTable('oidc_models').where('model', '=', 'Interaction').where('id', '=', interactionId);
    const ownerRow = () => sesame.db.updateTable('users').where('id', '=', owner.user_id);
    const passkeyRow = () => sesame.db.updateTable('credentials').where('id', '=', credentialId);
    const { expires_at: challengeEnds } = await sesame.db
      .selectFrom('webauthn_challenges')
      .select('expires_at')
      .where('challenge', '=', challenge)
      .executeTakeFirstOrThrow();
    const meanwhile: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
      [
        'owner disabled',
        () => ownerRow().set({ disabled_at: new Date() }).execute(),
        () => ownerRow().set({ disabled_at: null }).execute(),
      ],
      [
        'challenge expired',
        () =>
          challengeRow()
            .set({ expires_at: new Date(Date.now() - 1_000) })
            .execute(),
        () => challengeRow().set({ expires_at: challengeEnds }).execute(),
      ],
      [
        'challenge of another ceremony',
        () => challengeRow().set({ purpose: 'signup' }).execute(),
        () => challengeRow().set({ purpose: 'login' }).execute(),
      ],
      [
        'challenge for one person',
        () => challengeRow().set({ user_id: owner.user_id }).execute(),
        () => challengeRow().set({ user_id: null }).execute(),
      ],
      [
        'interaction used',
        () => interactionRow().set({ consumed_at: new Date() }).execute(),
        () => interactionRow().set({ consumed_at: null }).execute(),
      ],
      [
        'interaction expired',
        () =>
          interactionRow()
            .set({ expires_at: new Date(Date.now() - 1_000) })
            .execute(),
        () =>
          interactionRow()
            .set({ expires_at: new Date(Date.now() + 600_000) })
            .execute(),
      ],
      [
        'passkey blocked',
        () => passkeyRow().set({ suspected_clone_at: new Date() }).execute(),
        () => passkeyRow().set({ suspected_clone_at: null }).execute(),
      ],
    ];
    for (const [what, change, undo] of meanwhile) {
      await change();
      expect([what, await store({})]).toEqual([what, undefined]);
      await undo();
    }
    expect(await challengesFor(uid)).toHaveLength(1);
    expect(Number((await credentialRow(credentialId)).counter)).toBe(1);

    expect(await store({})).toEqual([]);
    expect(await challengesFor(uid)).toEqual([]);
    expect(Number((await credentialRow(credentialId)).counter)).toBe(2);
    // Once: the challenge is gone.
    expect(await store({ counter: 3 })).toBeUndefined();
    expect(response.id).toBe(credentialId);
  });

  (onPostgres ? it : it.skip)(
    'waits for a use of the passkey that commits meanwhile, and then answers as the usual way does',
    async () => {
      const { person, credentialId } = await signedUp('curie@example.com');
      await signIn(person);
      const { uid, verify } = await assertion(person);
      // Another instance's sign-in with a copy of the passkey holds its row, at counter 10,
      // while this one's statement runs: it must judge the counter that commits, not the one before.
      const release = await holdRow(sesame.db, (trx) =>
        trx.updateTable('credentials').set({ counter: 10 }).where('id', '=', credentialId).execute(),
      );
      const answer = verify();
      try {
        await untilWaitingForLocks(sesame.db, 1);
      } finally {
        await release();
      }
      const refused = await answer;
      expect(refused.status).toBe(403);
      expect(refused.json<{ error_description: string }>().error_description).toBe(BLOCKED);
      const row = await credentialRow(credentialId);
      expect(Number(row.counter)).toBe(10);
      expect(row.suspected_clone_at).not.toBeNull();
      const interaction = await oidcModelsQueries.find(
        sesame.db,
        'Interaction',
        storedId('Interaction', uid),
      );
      expect(interaction?.result).toBeUndefined();
    },
  );

  it("signs in from memory past a counter another instance moved on, and tells a copy's counter as ever", async () => {
    const { person, credentialId } = await signedUp('noether@example.com');
    await signIn(person);
    expect(sesame.app.caches.passkeys.get(credentialId)?.counter).toBe(1);
    // Another instance recorded a sign-in at 5: this one still remembers 1.
    await sesame.db.updateTable('credentials').set({ counter: 5 }).where('id', '=', credentialId).execute();
    const usual = usualWay();
    expect((await (await assertion(person, 6)).verify()).status).toBe(200);
    expect(usual).not.toHaveBeenCalled();
    expect(Number((await credentialRow(credentialId)).counter)).toBe(6);

    // A copy signed in elsewhere at 10; this instance remembers 6, so 7 looks fine here: the
    // statement finds the stored 10, stores nothing, and the usual way blocks the passkey.
    await sesame.db.updateTable('credentials').set({ counter: 10 }).where('id', '=', credentialId).execute();
    const { uid, verify } = await assertion(person, 7);
    const answer = await verify();
    expect(answer.status).toBe(403);
    expect(answer.json<{ error_description: string }>().error_description).toBe(BLOCKED);
    expect(usual).toHaveBeenCalledTimes(1);
    const row = await credentialRow(credentialId);
    expect(Number(row.counter)).toBe(10);
    expect(row.suspected_clone_at).not.toBeNull();
    expect(sesame.app.caches.passkeys.get(credentialId)).toBeUndefined();
    const interaction = await oidcModelsQueries.find(sesame.db, 'Interaction', storedId('Interaction', uid));
    expect(interaction?.result).toBeUndefined();
  });
});
