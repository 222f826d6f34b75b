import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { CLIENT_AUTH_FAILURES_ALLOWED } from '../../src/oidc/clientAuthBackoff.js';
import { createClient } from '../../src/oidc/clients.js';
import { type SecondInstance, startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/** A client_credentials token request with HTTP Basic client authentication (from `forwardedFor`, under TRUST_PROXY). */
function requestToken(baseUrl: string, clientId: string, secret: string, forwardedFor?: string) {
  return fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(forwardedFor && { 'x-forwarded-for': forwardedFor }),
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
}

/** Failed client authentications counted under `key` in the shared counter. */
async function failuresCounted(db: TestApp['db'], key: string) {
  const row = await db.selectFrom('rate_limit_hits').select('hits').where('key', '=', key).executeTakeFirst();
  return row?.hits;
}

(onPostgres ? describe : describe.skip)('limits shared by every instance on one Postgres database', () => {
  let sesame: TestApp;
  let other: SecondInstance;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '10' });
    other = await startSecondInstance(sesame);
  });

  afterAll(async () => {
    await other?.stop();
    await sesame?.stop();
  });

  it('refuses the 11th request of a minute whichever instance gets it (round-robin)', async () => {
    const instances = [sesame.listenUrl, other.url];
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const response = await fetch(`${instances[i % 2]}/link/not-a-real-token`, {
        headers: { accept: 'application/json' },
      });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 10)).not.toContain(429);
    // The 11th went to the first instance, the 12th to the second: both refuse.
    expect(statuses.slice(10)).toEqual([429, 429]);
  });

  it('counts no more wrong secrets from an address past its limit on any instance, and serves the right one', async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Backend', redirect_uris: ['https://backend.example/cb'] },
      'test',
    );
    // The suite's requests come from the loopback address.
    const key = `client-auth:${client.client_id}:127.0.0.1`;
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      const instance = i % 2 ? other.url : sesame.listenUrl;
      expect((await requestToken(instance, client.client_id, 'wrong')).status).toBe(401);
    }
    for (const instance of [sesame.listenUrl, other.url]) {
      const refused = await requestToken(instance, client.client_id, 'wrong again');
      expect(refused.status).toBe(401);
      expect((await refused.json()).error).toBe('invalid_client');
      // Anyone sharing the app server's address can send wrong secrets: the app keeps its tokens.
      expect((await requestToken(instance, client.client_id, client_secret!)).status).toBe(200);
    }
    expect(await failuresCounted(sesame.db, key)).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
  });

  it('counts failed authentication at introspection and revocation too', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Target2', grant_types: ['client_credentials'] },
      't',
    );
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      const endpoint = i % 2 ? '/token/revocation' : '/token/introspection';
      const response = await fetch(`${sesame.listenUrl}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: 'anything', client_id: client.client_id, client_secret: 'wrong' }),
      });
      expect(response.status).toBe(401);
    }
    expect(await failuresCounted(sesame.db, `client-auth:${client.client_id}:127.0.0.1`)).toBe(
      CLIENT_AUTH_FAILURES_ALLOWED,
    );
  });

  it(`counts only ${CLIENT_AUTH_FAILURES_ALLOWED} of a burst of wrong secrets sent at once`, async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Hammered backend', grant_types: ['client_credentials'] },
      'test',
    );
    // The suite's requests come from the loopback address.
    const key = `client-auth:${client.client_id}:127.0.0.1`;
    expect((await requestToken(sesame.listenUrl, client.client_id, 'guess')).status).toBe(401);
    // The count's row held while the burst arrives: every failure compared waits to be
    // counted, as the slowest of a real burst does, and a check reads the count before it.
    const burst = await sesame.db.transaction().execute(async (trx) => {
      await trx.selectFrom('rate_limit_hits').select('hits').where('key', '=', key).forUpdate().execute();
      const responses = Array.from({ length: 100 }, (_, i) =>
        requestToken(sesame.listenUrl, client.client_id, `guess-${i}`),
      );
      await sleep(1_000);
      return responses;
    });
    const statuses = await Promise.all(burst.map(async (response) => (await response).status));
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(await failuresCounted(sesame.db, key)).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
    expect((await requestToken(sesame.listenUrl, client.client_id, client_secret!)).status).toBe(200);
  });

  it("serves the right secret and counts no wrong one from an address past its limit by another instance's count", async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Busy backend', grant_types: ['client_credentials'] },
      'test',
    );
    // The suite's requests come from the loopback address.
    const key = `client-auth:${client.client_id}:127.0.0.1`;
    for (const instance of [sesame.listenUrl, other.url]) {
      expect((await requestToken(instance, client.client_id, client_secret!)).status).toBe(200);
    }
    // As a third instance counts the address's failures (and announces them).
    await sesame.db
      .insertInto('rate_limit_hits')
      .values({
        key,
        hits: CLIENT_AUTH_FAILURES_ALLOWED,
        expires_at: sql<Date>`now() + interval '5 minutes'`,
      })
      .execute();
    for (const instance of [sesame.listenUrl, other.url]) {
      expect((await requestToken(instance, client.client_id, 'wrong')).status).toBe(401);
      expect((await requestToken(instance, client.client_id, client_secret!)).status).toBe(200);
    }
    expect(await failuresCounted(sesame.db, key)).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
  });
});

if (!onPostgres) {
  it('shares limits between instances: skipped on the embedded database, which one process owns', () => {});
}

describe('client authentication after repeated failures from one address', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '600', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame?.stop());

  it(`serves the right secret after ${CLIENT_AUTH_FAILURES_ALLOWED} wrong ones from the same address, at every endpoint`, async () => {
    const target = await createClient(
      sesame.db,
      { name: 'Target', grant_types: ['client_credentials'] },
      't',
    );
    const bystander = await createClient(
      sesame.db,
      { name: 'Other', grant_types: ['client_credentials'] },
      't',
    );
    // A neighbour behind the app server's NAT or shared egress: one address for both, and a
    // client_id every authorization request shows.
    const shared = '203.0.113.7';
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED + 2; i++) {
      expect(
        (await requestToken(sesame.listenUrl, target.client.client_id, `guess-${i}`, shared)).status,
      ).toBe(401);
    }
    const served = await requestToken(
      sesame.listenUrl,
      target.client.client_id,
      target.client_secret!,
      shared,
    );
    expect(served.status).toBe(200);
    expect((await served.json()).access_token).toEqual(expect.any(String));
    for (const endpoint of ['/token/introspection', '/token/revocation']) {
      const response = await fetch(`${sesame.listenUrl}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': shared },
        body: new URLSearchParams({
          token: 'anything',
          client_id: target.client.client_id,
          client_secret: target.client_secret!,
        }),
      });
      expect(response.status).toBe(200);
    }
    expect(
      (await requestToken(sesame.listenUrl, target.client.client_id, 'one more guess', shared)).status,
    ).toBe(401);
    expect(
      (await requestToken(sesame.listenUrl, bystander.client.client_id, bystander.client_secret!, shared))
        .status,
    ).toBe(200);
  });

  (onPostgres ? it : it.skip)(
    'counts failures per client_id and address, a port of the address being the same one',
    async () => {
      const target = await createClient(
        sesame.db,
        { name: 'Target3', grant_types: ['client_credentials'] },
        't',
      );
      const guesser = '203.0.113.8';
      for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
        const from = i % 2 ? `${guesser}:4431` : guesser;
        expect(
          (await requestToken(sesame.listenUrl, target.client.client_id, `guess-${i}`, from)).status,
        ).toBe(401);
      }
      expect(
        (await requestToken(sesame.listenUrl, target.client.client_id, 'guess', '198.51.100.20')).status,
      ).toBe(401);
      expect(await failuresCounted(sesame.db, `client-auth:${target.client.client_id}:${guesser}`)).toBe(
        CLIENT_AUTH_FAILURES_ALLOWED,
      );
      expect(await failuresCounted(sesame.db, `client-auth:${target.client.client_id}:198.51.100.20`)).toBe(
        1,
      );
    },
  );
});
