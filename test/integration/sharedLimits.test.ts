import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { CLIENT_AUTH_FAILURES_ALLOWED } from '../../src/oidc/clientAuthBackoff.js';
import { createClient } from '../../src/oidc/clients.js';
import { eventually } from '../support/eventually.js';
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

  it('locks a client out on every instance after repeated failed authentications', async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Backend', redirect_uris: ['https://backend.example/cb'] },
      'test',
    );
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      const instance = i % 2 ? other.url : sesame.listenUrl;
      expect((await requestToken(instance, client.client_id, 'wrong')).status).toBe(401);
    }
    for (const instance of [sesame.listenUrl, other.url]) {
      const refused = await requestToken(instance, client.client_id, client_secret!);
      expect(refused.status).toBe(401);
      expect((await refused.json()).error).toBe('invalid_client');
    }
  });

  it(`compares and counts only ${CLIENT_AUTH_FAILURES_ALLOWED} of a burst of wrong secrets sent at once`, async () => {
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
    const counted = await sesame.db
      .selectFrom('rate_limit_hits')
      .select('hits')
      .where('key', '=', key)
      .executeTakeFirstOrThrow();
    expect(counted.hits).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
    expect((await requestToken(sesame.listenUrl, client.client_id, client_secret!)).status).toBe(401);
  });

  it('asks Postgres about a client that authenticates correctly only after a failure of it is announced', async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Busy backend', grant_types: ['client_credentials'] },
      'test',
    );
    // The suite's requests come from the loopback address.
    const key = `client-auth:${client.client_id}:127.0.0.1`;
    const lockOut = (db: TestApp['db']) =>
      db
        .insertInto('rate_limit_hits')
        .values({
          key,
          hits: CLIENT_AUTH_FAILURES_ALLOWED,
          expires_at: sql<Date>`now() + interval '5 minutes'`,
        })
        .onConflict((oc) => oc.column('key').doUpdateSet({ hits: CLIENT_AUTH_FAILURES_ALLOWED }))
        .execute();
    // Both instances find the client not locked out and keep that.
    for (const instance of [sesame.listenUrl, other.url]) {
      expect((await requestToken(instance, client.client_id, client_secret!)).status).toBe(200);
    }
    // A lockout written with the notice trigger off is not seen: neither instance reads the count again.
    await sesame.db.transaction().execute(async (trx) => {
      await sql`alter table rate_limit_hits disable trigger rate_limit_hits_announce_client_auth`.execute(
        trx,
      );
      await lockOut(trx);
      await sql`alter table rate_limit_hits enable trigger rate_limit_hits_announce_client_auth`.execute(trx);
    });
    for (const instance of [sesame.listenUrl, other.url]) {
      expect((await requestToken(instance, client.client_id, client_secret!)).status).toBe(200);
    }
    // The same write announced (as a failure counted on any instance is): both refuse the client.
    await lockOut(sesame.db);
    for (const instance of [sesame.listenUrl, other.url]) {
      expect(
        await eventually(
          async () => (await requestToken(instance, client.client_id, client_secret!)).status === 401,
        ),
      ).toBe(true);
    }
  });
});

if (!onPostgres) {
  it('shares limits between instances: skipped on the embedded database, which one process owns', () => {});
}

describe('client authentication backs off per client_id and address (brute-force detection)', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '600' });
  });

  afterAll(() => sesame?.stop());

  it(`refuses even the right secret after ${CLIENT_AUTH_FAILURES_ALLOWED} failures, and only for that client`, async () => {
    const target = await createClient(
      sesame.db,
      { name: 'Target', redirect_uris: ['https://t.example/cb'] },
      't',
    );
    const bystander = await createClient(
      sesame.db,
      { name: 'Other', redirect_uris: ['https://o.example/cb'] },
      't',
    );
    expect(
      (await requestToken(sesame.listenUrl, target.client.client_id, target.client_secret!)).status,
    ).toBe(200);

    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      expect((await requestToken(sesame.listenUrl, target.client.client_id, `guess-${i}`)).status).toBe(401);
    }
    expect(
      (await requestToken(sesame.listenUrl, target.client.client_id, target.client_secret!)).status,
    ).toBe(401);
    const introspection = await fetch(`${sesame.listenUrl}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: 'anything',
        client_id: target.client.client_id,
        client_secret: target.client_secret!,
      }),
    });
    expect(introspection.status).toBe(401);

    expect(
      (await requestToken(sesame.listenUrl, bystander.client.client_id, bystander.client_secret!)).status,
    ).toBe(200);
  });

  it('counts failed authentication at introspection and revocation too', async () => {
    const target = await createClient(
      sesame.db,
      { name: 'Target2', redirect_uris: ['https://t.example/cb'] },
      't',
    );
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      const endpoint = i % 2 ? '/token/revocation' : '/token/introspection';
      const response = await fetch(`${sesame.listenUrl}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          token: 'anything',
          client_id: target.client.client_id,
          client_secret: 'wrong',
        }),
      });
      expect(response.status).toBe(401);
    }
    expect(
      (await requestToken(sesame.listenUrl, target.client.client_id, target.client_secret!)).status,
    ).toBe(401);
  });
});

describe('a client locked out from one address is not locked out from another', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '600', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame?.stop());

  it('refuses the address that sent the wrong secrets, and still serves the client from its own', async () => {
    const target = await createClient(
      sesame.db,
      { name: 'Target3', grant_types: ['client_credentials'] },
      't',
    );
    const attacker = '203.0.113.7';
    const app = '198.51.100.20';
    // Anyone who knows a client_id (every authorization request shows it) can send wrong secrets.
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++) {
      expect(
        (await requestToken(sesame.listenUrl, target.client.client_id, `guess-${i}`, attacker)).status,
      ).toBe(401);
    }
    expect(
      (await requestToken(sesame.listenUrl, target.client.client_id, target.client_secret!, attacker)).status,
    ).toBe(401);
    // Another port of the same address, or another address of its IPv6 /64, is the same address.
    expect(
      (
        await requestToken(
          sesame.listenUrl,
          target.client.client_id,
          target.client_secret!,
          `${attacker}:4431`,
        )
      ).status,
    ).toBe(401);
    // The app itself, from its own address, goes on getting tokens.
    const served = await requestToken(sesame.listenUrl, target.client.client_id, target.client_secret!, app);
    expect(served.status).toBe(200);
    expect((await served.json()).access_token).toEqual(expect.any(String));
  });
});
