import { sql } from 'kysely';
import { createClient, deleteClient } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { eventually } from '../support/eventually.js';
import { type SecondInstance, startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A client_credentials token request; the access token when one was issued. */
async function clientCredentials(baseUrl: string, id: string, secret: string): Promise<string | undefined> {
  const response = await fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  return response.status === 200
    ? ((await response.json()) as { access_token: string }).access_token
    : undefined;
}

/**
 * Deleting a client is an admin's answer to its leaked secret: no token issued to it may
 * stay good, however its last token requests interleave with the delete.
 */
describe('a deleted client leaves no active token behind', () => {
  let sesame: TestApp;
  let other: SecondInstance | undefined;
  let resourceServer: { id: string; secret: string };

  beforeAll(async () => {
    sesame = await startTestApp();
    if (onPostgres) other = await startSecondInstance(sesame);
    const { client, client_secret } = await createClient(
      sesame.db,
      // Marked as checking tokens: it introspects other apps' access tokens.
      { name: 'API', grant_types: ['client_credentials'], introspect_tokens: true },
      'test',
    );
    resourceServer = { id: client.client_id, secret: client_secret! };
  });

  afterAll(async () => {
    await other?.stop();
    await sesame?.stop();
  });

  async function introspect(baseUrl: string, token: string): Promise<{ active: boolean }> {
    const response = await fetch(`${baseUrl}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: basic(resourceServer.id, resourceServer.secret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { active: boolean };
  }

  const newBackend = (name: string) =>
    createClient(sesame.db, { name, grant_types: ['client_credentials'] }, 'test');

  it('calls a token stored after its client was deleted inactive', async () => {
    const { client, client_secret } = await newBackend('Leaky backend');
    const token = (await clientCredentials(sesame.listenUrl, client.client_id, client_secret!))!;
    const key = storedId('ClientCredentials', token);
    const row = await sesame.db
      .selectFrom('oidc_models')
      .selectAll()
      .where('model', '=', 'ClientCredentials')
      .where('id', '=', key)
      .executeTakeFirstOrThrow();
    expect(await deleteClient(sesame.db, client.client_id, 'test')).toBe(true);
    // Its tokens went with it, in the same transaction, not at the next sweep of expired rows.
    const left = await sesame.db
      .selectFrom('oidc_models')
      .select('id')
      .where(sql<boolean>`payload->>'clientId' = ${client.client_id}`)
      .execute();
    expect(left).toEqual([]);
    // What a token request that authenticated the client just before the delete stores just after it.
    await sesame.db
      .insertInto('oidc_models')
      .values({ ...row, payload: JSON.stringify(row.payload) })
      .execute();
    expect(await introspect(sesame.listenUrl, token)).toEqual({ active: false });
  });

  it('calls every token of requests in flight during the delete inactive, on every instance', async () => {
    const instances = [sesame.listenUrl, other?.url ?? sesame.listenUrl];
    for (let round = 0; round < 8; round++) {
      const { client, client_secret } = await newBackend(`Backend ${round}`);
      // Both instances know the client, as they do a busy one's.
      for (const instance of instances) await clientCredentials(instance, client.client_id, client_secret!);
      const [tokens] = await Promise.all([
        Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            clientCredentials(instances[i % 2]!, client.client_id, client_secret!),
          ),
        ),
        deleteClient(sesame.db, client.client_id, 'test'),
      ]);
      // Once each instance has heard of the delete (its change notice), as the repro waited 1.5 s.
      for (const instance of instances) {
        expect(
          await eventually(
            async () => !(await clientCredentials(instance, client.client_id, client_secret!)),
          ),
        ).toBe(true);
      }
      const active = [];
      for (const token of tokens.filter((t) => t !== undefined)) {
        for (const instance of instances) if ((await introspect(instance, token)).active) active.push(token);
      }
      expect(active).toEqual([]);
    }
  });
});
