import * as jose from 'jose';
import { sql } from 'kysely';
import { createClient } from '../../src/oidc/clients.js';
import {
  KEY_ACTIVATION_DELAY_SECONDS,
  MAX_KEY_ACTIVATION_DELAY_SECONDS,
  RETIRED_KEY_GRACE_SECONDS,
  removeUnpublishedSigningKeys,
  rotateSigningKeys,
} from '../../src/oidc/keys.js';
import {
  createTestApiKeys,
  expectRefusedPosts,
  latestAuditEvent,
  postToAdminApi,
  type TestApiKeys,
} from '../support/adminApiCall.js';
import { countRows } from '../support/countRows.js';
import { waitUntil } from '../support/eventually.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { runCli } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8921/callback';
/** Long enough to log in once more before the new keys take over, even on a busy machine. */
const ACTIVATE_IN_SECONDS = 8;

/**
 * Sesame with an app registered, and on Postgres a second instance on the same database (the
 * embedded one has one owner), with the same pool and LISTEN (DATABASE_DIRECT_URL) a second
 * server would have.
 */
async function startInstancesWithApp(): Promise<{
  sesame: TestApp;
  other?: TestApp;
  clientId: string;
  clientSecret: string;
}> {
  const sesame = await startTestApp();
  let other: TestApp | undefined;
  if (onPostgres) {
    const { DATABASE_URL, DATABASE_DIRECT_URL } = sesame.env;
    other = await startTestApp({ DATABASE_URL: DATABASE_URL!, DATABASE_DIRECT_URL: DATABASE_DIRECT_URL! });
  }
  const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
  return { sesame, other, clientId: created.client.client_id, clientSecret: created.client_secret! };
}

/** The kids `app` publishes at /jwks, sorted. */
async function publishedKidsOf(app: TestApp): Promise<string[]> {
  const { keys } = (await (await fetch(`${app.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] };
  return keys.map((key) => key.kid).sort();
}

describe('rotating the signing keys while the server runs', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let person: Person;
  let clientId: string;
  let clientSecret: string;

  const discoverApp = () =>
    discoverRp(sesame.baseUrl, { client_id: clientId, client_secret: clientSecret }, REDIRECT_URI);

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    clientId = created.client.client_id;
    clientSecret = created.client_secret!;
    rp = await discoverApp();
    person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'ada@example.com');
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  });

  afterAll(() => sesame.stop());

  async function publishedKids(): Promise<string[]> {
    const { keys } = (await (await fetch(`${sesame.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid);
  }

  /** A login by `app`; openid-client checks the ID token's signature against its cached JWKS. */
  async function idToken(app: TestRp = rp): Promise<{ token: string; kid: string }> {
    const pending = await beginLogin(app);
    const tokens = await finishLogin(app, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    return { token: tokens.id_token!, kid: jose.decodeProtectedHeader(tokens.id_token!).kid! };
  }

  it('publishes the new keys at once, signs with the old ones until the new ones activate, then switches', async () => {
    const oldKids = await publishedKids();
    const beforeRotation = await idToken();
    expect(oldKids).toContain(beforeRotation.kid);

    const { kids: newKids, activatesAt } = await rotateSigningKeys(sesame.db, sesame.config, 'test', {
      activateInSeconds: ACTIVATE_IN_SECONDS,
    });
    // No restart: the row change notice makes the running server publish them.
    await waitUntil(async () => (await publishedKids()).length === 4, 5_000);
    expect((await publishedKids()).sort()).toEqual([...oldKids, ...newKids].sort());

    // An app that fetches the JWKS in the meantime (here: a new one) caches the new keys
    // before any token is signed with them. Its first login still gets the old key.
    const refreshedApp = await discoverApp();
    const meantime = await idToken(refreshedApp);
    expect(Date.now()).toBeLessThan(activatesAt.getTime());
    expect(meantime.kid).toBe(beforeRotation.kid);

    // After the activation the same app, without refetching, verifies tokens of the new key.
    await waitUntil(
      async () => newKids.includes((await idToken(refreshedApp)).kid),
      (ACTIVATE_IN_SECONDS + 5) * 1000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt.getTime());

    // What the old key signed still verifies against what is published now.
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    const { payload } = await jose.jwtVerify(beforeRotation.token, jwks, {
      issuer: sesame.baseUrl,
      audience: clientId,
    });
    expect(payload.email).toBe('ada@example.com');
    expect((await publishedKids()).sort()).toEqual([...oldKids, ...newKids].sort());
  }, 30_000);

  it('serves the JWKS with an ETag that answers 304 until the keys change, then a new one', async () => {
    await fetch(`${sesame.baseUrl}/jwks`); // rendered once by the provider, then kept as bytes
    const first = await fetch(`${sesame.baseUrl}/jwks`);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]{22}"$/);
    expect(first.headers.get('cache-control')).toBe('public, max-age=300');
    const unchanged = await fetch(`${sesame.baseUrl}/jwks`, { headers: { 'if-none-match': etag } });
    expect(unchanged.status).toBe(304);
    expect(await unchanged.text()).toBe('');

    const { kids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 600 });
    await waitUntil(async () => (await publishedKids()).some((kid) => kids.includes(kid)), 5_000);
    const changed = await fetch(`${sesame.baseUrl}/jwks`, { headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(((await changed.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid)).toEqual(
      expect.arrayContaining(kids),
    );
    const again = await fetch(`${sesame.baseUrl}/jwks`);
    expect(again.headers.get('etag')).not.toBe(etag);
  });

  it('switches at once with no delay (the provider is rebuilt; sessions live in the database)', async () => {
    const { kids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 0 });
    await waitUntil(async () => (await publishedKids()).some((kid) => kids.includes(kid)), 5_000);
    // The person's session survives the switch: a new app (with a fresh JWKS) signs them in without a prompt.
    const app = await discoverApp();
    await waitUntil(async () => kids.includes((await idToken(app)).kid), 5_000);
  });
});

describe('revoking the previous keys (`sesame keys rotate --revoke-previous`)', () => {
  let sesame: TestApp;
  /** A second instance on the same database (Postgres only: the embedded one has one owner). */
  let other: TestApp | undefined;
  let person: Person;
  let clientId: string;
  let clientSecret: string;

  const discoverApp = () =>
    discoverRp(sesame.baseUrl, { client_id: clientId, client_secret: clientSecret }, REDIRECT_URI);

  beforeAll(async () => {
    ({ sesame, other, clientId, clientSecret } = await startInstancesWithApp());
    person = new Person(sesame.baseUrl);
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  async function idToken(app: TestRp, first = false): Promise<string> {
    const pending = await beginLogin(app);
    const next = first
      ? await person.signUp(await person.open(pending.url), 'grace@example.com')
      : pending.url;
    const tokens = await finishLogin(app, pending, await person.continueToApp(next, REDIRECT_URI));
    return tokens.id_token!;
  }

  /**
   * What an operator runs. On Postgres the command itself, beside the running servers; the
   * embedded database is held by the server, so there the function the command calls.
   */
  async function rotateRevokingPrevious(): Promise<{ kids: string[]; revoked_kids: string[] }> {
    if (!onPostgres) {
      const { kids, revokedKids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', {
        activateInSeconds: 0,
        revokePrevious: true,
      });
      return { kids, revoked_kids: revokedKids };
    }
    const result = await runCli(['keys', 'rotate', '--revoke-previous', '--json'], sesame.env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return JSON.parse(result.stdout);
  }

  it('removes every earlier key from the JWKS of each running instance within 2 s, and signs with the new keys only', async () => {
    // Earlier keys: the first ones and a pending rotation, all published.
    await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 600 });
    await waitUntil(async () => (await publishedKidsOf(sesame)).length === 4, 5_000);
    const before = await publishedKidsOf(sesame);
    const rp = await discoverApp();
    const oldToken = await idToken(rp, true);
    expect(before).toContain(jose.decodeProtectedHeader(oldToken).kid);

    const { kids, revoked_kids } = await rotateRevokingPrevious();
    const revokedAt = Date.now();
    expect(revoked_kids.sort()).toEqual(before);
    for (const app of [sesame, other].filter((a) => a !== undefined)) {
      await waitUntil(async () => {
        const now = await publishedKidsOf(app);
        return now.join() === [...kids].sort().join();
      }, 2_000);
    }
    expect(Date.now() - revokedAt).toBeLessThan(2_000);

    // A new login is signed by a new key, and verifies against what is published.
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    const fresh = await idToken(await discoverApp());
    expect(kids).toContain(jose.decodeProtectedHeader(fresh).kid);
    await expect(
      jose.jwtVerify(fresh, jwks, { issuer: sesame.baseUrl, audience: clientId }),
    ).resolves.toBeTruthy();

    // What the revoked key signed no longer verifies.
    await expect(
      jose.jwtVerify(oldToken, jwks, { issuer: sesame.baseUrl, audience: clientId }),
    ).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });

    // The private keys are gone from the database, and the audit log says who removed which.
    const rows = await sesame.db.selectFrom('signing_keys').select('kid').execute();
    expect(rows.map((r) => r.kid).sort()).toEqual([...kids].sort());
    const event = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'signing_keys.revoke')
      .executeTakeFirstOrThrow();
    expect((event.details as { kids: string[] }).kids.sort()).toEqual(before);
  }, 60_000);

  it('refuses to revoke while the new keys would not sign yet, and changes nothing', async () => {
    const before = await publishedKidsOf(sesame);
    await expect(
      rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 60, revokePrevious: true }),
    ).rejects.toThrow(/at once/);
    expect(await publishedKidsOf(sesame)).toEqual(before);
    expect(
      (await sesame.db.selectFrom('signing_keys').select('kid').execute()).map((r) => r.kid).sort(),
    ).toEqual(before);
  });
});

describe('rotating the signing keys over the admin API (`POST /api/admin/keys/rotate-signing-key`)', () => {
  let sesame: TestApp;
  /** A second instance on the same database (Postgres only: the embedded one has one owner). */
  let other: TestApp | undefined;
  let keys: TestApiKeys;
  let person: Person;
  let clientId: string;
  let clientSecret: string;
  let firstToken: string;

  const discoverApp = () =>
    discoverRp(sesame.baseUrl, { client_id: clientId, client_secret: clientSecret }, REDIRECT_URI);
  const instances = () => [sesame, other].filter((app) => app !== undefined);
  const rotateOverApi = (json?: unknown) =>
    postToAdminApi(sesame, keys.admin, '/keys/rotate-signing-key', { json });

  beforeAll(async () => {
    ({ sesame, other, clientId, clientSecret } = await startInstancesWithApp());
    keys = await createTestApiKeys(sesame);
    person = new Person(sesame.baseUrl);
    const rp = await discoverApp();
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'api@example.com');
    firstToken = (await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI))).id_token!;
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  /** Waits until every instance publishes exactly `kids`. */
  async function publishedEverywhere(kids: string[]): Promise<void> {
    const expected = [...kids].sort().join();
    for (const app of instances()) {
      await waitUntil(async () => (await publishedKidsOf(app)).join() === expected, 2_000);
    }
  }

  /** A login by `app` (the person is signed in at Sesame); openid-client checks the signature. */
  async function idToken(app: TestRp): Promise<{ token: string; kid: string }> {
    const pending = await beginLogin(app);
    const tokens = await finishLogin(app, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    return { token: tokens.id_token!, kid: jose.decodeProtectedHeader(tokens.id_token!).kid! };
  }

  const verify = (token: string) =>
    jose.jwtVerify(token, jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`)), {
      issuer: sesame.baseUrl,
      audience: clientId,
    });

  const latestAudit = (action: string) => latestAuditEvent(sesame, action);

  it('publishes the new keys at once on every instance and signs ID tokens with them after activate_in, as the CLI does', async () => {
    const before = await publishedKidsOf(sesame);
    const oldKid = jose.decodeProtectedHeader(firstToken).kid!;
    expect(before).toContain(oldKid);

    const answer = await rotateOverApi({ activate_in: ACTIVATE_IN_SECONDS });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    // What `sesame keys rotate --json` prints.
    expect(answer.json).toEqual({
      kids: [expect.stringMatching(/^es256-/), expect.stringMatching(/^rs256-/)],
      activates_at: expect.any(String),
    });
    const { kids } = answer.json as { kids: string[] };
    const activatesAt = Date.parse(answer.json.activates_at);
    await publishedEverywhere([...before, ...kids]);

    // Until activate_in has passed the old key signs, for an app that has the new keys already.
    const refreshedApp = await discoverApp();
    expect((await idToken(refreshedApp)).kid).toBe(oldKid);
    expect(Date.now()).toBeLessThan(activatesAt);
    await waitUntil(
      async () => kids.includes((await idToken(refreshedApp)).kid),
      (ACTIVATE_IN_SECONDS + 5) * 1000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt);
    const fresh = await idToken(refreshedApp);
    await expect(verify(fresh.token)).resolves.toMatchObject({ payload: { email: 'api@example.com' } });
    // What the old key signed still verifies: it stays published for its grace.
    await expect(verify(firstToken)).resolves.toBeTruthy();
    for (const app of instances()) expect(await publishedKidsOf(app)).toEqual([...before, ...kids].sort());

    const event = await latestAudit('signing_keys.rotate');
    expect(event.actor).toBe(`api-key:${keys.adminId}`);
    expect(event.details).toMatchObject({ kids, activates_at: answer.json.activates_at });
  }, 60_000);

  it('without a body waits the default hour; with revoke_previous signs with the new keys at once and removes every earlier one from every instance', async () => {
    const pending = await rotateOverApi();
    expect(pending.status).toBe(200);
    const delay = Date.parse(pending.json.activates_at) - Date.now();
    expect(Math.abs(delay - KEY_ACTIVATION_DELAY_SECONDS * 1000)).toBeLessThan(10_000);
    const earlier = (await sesame.db.selectFrom('signing_keys').select('kid').execute())
      .map((r) => r.kid)
      .sort();
    expect(earlier).toEqual(expect.arrayContaining(pending.json.kids));
    await publishedEverywhere(earlier);
    const oldToken = (await idToken(await discoverApp())).token;

    const revoked = await rotateOverApi({ revoke_previous: true });
    expect(revoked.status).toBe(200);
    expect(revoked.json).toEqual({
      kids: [expect.stringMatching(/^es256-/), expect.stringMatching(/^rs256-/)],
      activates_at: expect.any(String),
      revoked_kids: expect.any(Array),
    });
    const { kids } = revoked.json as { kids: string[] };
    expect(Math.abs(Date.parse(revoked.json.activates_at) - Date.now())).toBeLessThan(10_000);
    expect([...revoked.json.revoked_kids].sort()).toEqual(earlier);
    await publishedEverywhere(kids);

    const fresh = await idToken(await discoverApp());
    expect(kids).toContain(fresh.kid);
    await expect(verify(fresh.token)).resolves.toBeTruthy();
    await expect(verify(oldToken)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    const rows = await sesame.db.selectFrom('signing_keys').select('kid').execute();
    expect(rows.map((r) => r.kid).sort()).toEqual([...kids].sort());
    const event = await latestAudit('signing_keys.revoke');
    expect(event.actor).toBe(`api-key:${keys.adminId}`);
    expect(event.details).toMatchObject({ kids: revoked.json.revoked_kids });
  }, 60_000);

  it('refuses bad input with 400, a body not JSON with 415 and a key without the admin scope with 403, changing nothing', async () => {
    // Every column of every key, private parts included, and how many events the log holds.
    const snapshot = async () => ({
      keys: await sesame.db.selectFrom('signing_keys').selectAll().orderBy('kid').execute(),
      events: await countRows(sesame.db, 'audit_events'),
    });
    const before = await snapshot();
    const published = await publishedKidsOf(sesame);

    await expectRefusedPosts(
      sesame,
      keys,
      '/keys/rotate-signing-key',
      [
        [{ activate_in: '60' }, 'activate_in'],
        [{ activate_in: -1 }, 'activate_in'],
        [{ activate_in: 1.5 }, 'activate_in'],
        [{ activate_in: MAX_KEY_ACTIVATION_DELAY_SECONDS + 1 }, 'activate_in'],
        [{ activate_in: 1e13 }, 'activate_in'],
        [{ activate_in: null }, 'activate_in'],
        [{ revoke_previous: 'yes' }, 'revoke_previous'],
        [{ revoke_previous: 1 }, 'revoke_previous'],
        [{ revoke_previous: true, activate_in: 60 }, 'activate_in'],
        [{ activateIn: 60 }, 'body'],
        [[60], 'body'],
      ],
      { revoke_previous: true },
    );
    const contradiction = await rotateOverApi({ revoke_previous: true, activate_in: 60 });
    expect(contradiction.json.error_description).toMatch(/^activate_in: revoke_previous switches .* at once/);

    expect(await snapshot()).toEqual(before);
    for (const app of instances()) expect(await publishedKidsOf(app)).toEqual(published);
  }, 30_000);
});

describe('retired keys', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let person: Person;
  let clientId: string;
  let firstIdToken: string;
  const LOGOUT_URI = 'http://127.0.0.1:8921/signed-out';

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [LOGOUT_URI] },
      'test',
    );
    clientId = created.client.client_id;
    rp = await discoverRp(
      sesame.baseUrl,
      { client_id: clientId, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'retired@example.com');
    firstIdToken = (await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI))).id_token!;
  });

  afterAll(() => sesame.stop());

  async function publishedKids(): Promise<string[]> {
    const { keys } = (await (await fetch(`${sesame.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid);
  }

  /** Moves the retirement of every retired key to `secondsAgo` before now (a notice reloads the keys). */
  async function retiredSecondsAgo(secondsAgo: number): Promise<void> {
    await sql`update signing_keys set retired_at = now() - make_interval(secs => ${secondsAgo}) where retired_at is not null`.execute(
      sesame.db,
    );
  }

  it("still verifies an app's sign-out with an ID token signed by a key retired days ago", async () => {
    const oldKid = jose.decodeProtectedHeader(firstIdToken).kid!;
    const { kids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 0 });
    await waitUntil(async () => (await publishedKids()).includes(kids[0]!), 5_000);
    // Two days: the ID token itself expired long ago, the app still holds it for its session.
    await retiredSecondsAgo(2 * 24 * 3600);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await publishedKids()).toContain(oldKid);

    const url = new URL('/session/end', sesame.baseUrl);
    url.search = new URLSearchParams({
      id_token_hint: firstIdToken,
      post_logout_redirect_uri: LOGOUT_URI,
      state: 'bye',
    }).toString();
    const answer = await person.open(url.href);
    // The confirmation page, not "could not validate id_token_hint".
    expect(answer.status).toBe(200);
    expect(answer.text).not.toMatch(/id_token_hint/);
  });

  it('stops publishing a retired key when its grace ends, with no restart or other change', async () => {
    const published = await publishedKids();
    expect(published.length).toBe(4);
    // The grace of each retired key ends three seconds from now.
    await retiredSecondsAgo(RETIRED_KEY_GRACE_SECONDS - 3);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await publishedKids()).length).toBe(4);
    await waitUntil(async () => (await publishedKids()).length === 2, 8_000);
  });

  it('deletes the keys whose grace has ended, private parts included, and only those', async () => {
    await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 0 });
    const before = await sesame.db.selectFrom('signing_keys').select(['kid', 'retired_at']).execute();
    // Two generations retired: the oldest past its grace, the one just retired within it.
    expect(before.filter((row) => row.retired_at).length).toBe(4);
    expect(await removeUnpublishedSigningKeys(sesame.db)).toBe(2);
    const after = await sesame.db.selectFrom('signing_keys').select(['kid', 'retired_at']).execute();
    expect(after.length).toBe(before.length - 2);
    expect(after.filter((row) => row.retired_at).length).toBe(2);
    expect(await removeUnpublishedSigningKeys(sesame.db)).toBe(0);
  });
});
