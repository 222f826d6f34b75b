import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { sha256Hex } from '../../src/crypto.js';
import { LISTENER_APPLICATION_NAME } from '../../src/db/notifications.js';
import { rowChangeListenerUp } from '../../src/metrics.js';
import { createClient } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { leftOfGrant, useCodeElsewhere } from '../support/codesUsedElsewhere.js';
import { eventually } from '../support/eventually.js';
import { noticesHeard as noticesHeardBy } from '../support/noticesHeard.js';
import { beginLogin, discoverRp, finishLogin, Person } from '../support/oidcFlow.js';
import { startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8904/callback';

/**
 * Clients and users are cached in the server and kept in step by the notices their tables
 * send on every committed change. These tests also change rows behind the server's back
 * (the trigger switched off) to tell an answer from memory from an answer from the table.
 */
describe('the client and user caches, kept in step by change notifications', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(async () => {
    await sesame.stop();
  });

  async function newService() {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Service', grant_types: ['client_credentials'] },
      'test',
    );
    return { id: client.client_id, secret: client_secret! };
  }

  async function clientCredentials(id: string, secret: string): Promise<number> {
    const response = await fetch(`${sesame.baseUrl}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
    await response.arrayBuffer();
    return response.status;
  }

  const noticesHeard = async () => expect(await noticesHeardBy(sesame)).toBe(true);

  /** Runs `change` with the table's change trigger off: as if its notice were lost on the way. */
  async function unannounced(
    table: 'clients' | 'users' | 'group_members' | 'client_allowed_groups' | 'oidc_models',
    change: (trx: TestApp['db']) => Promise<unknown>,
  ) {
    const trigger = sql.id(`${table}_announce_change`);
    await sesame.db.transaction().execute(async (trx) => {
      await sql`alter table ${sql.table(table)} disable trigger ${trigger}`.execute(trx);
      await change(trx);
      await sql`alter table ${sql.table(table)} enable trigger ${trigger}`.execute(trx);
    });
  }

  const setSecret = (db: TestApp['db'], id: string, secret: string) =>
    db
      .updateTable('clients')
      .set({ secret_hash: sha256Hex(secret) })
      .where('client_id', '=', id)
      .execute();

  /** A new first-party app and a person at its login page. */
  async function atLoginPage(scope?: string, person = new Person(sesame.baseUrl)) {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    const pending = await beginLogin(rp, scope);
    const loginPage = await person.open(pending.url);
    return { client, rp, person, pending, loginPage };
  }

  describe('clients', () => {
    it('answers from memory once a client has been used: an unannounced change is not seen', async () => {
      const client = await newService();
      await noticesHeard();
      expect(await clientCredentials(client.id, client.secret)).toBe(200);
      await unannounced('clients', (db) => setSecret(db, client.id, 'changed behind its back'));
      expect(await clientCredentials(client.id, client.secret)).toBe(200);
    });

    it('drops a client as soon as its change is announced: the old secret stops working', async () => {
      const client = await newService();
      expect(await clientCredentials(client.id, client.secret)).toBe(200);
      await setSecret(sesame.db, client.id, 'the new secret');
      expect(await eventually(async () => (await clientCredentials(client.id, client.secret)) === 401)).toBe(
        true,
      );
      expect(await clientCredentials(client.id, 'the new secret')).toBe(200);
    });

    it("builds the provider's client anew once a change is announced, and reuses it until then", async () => {
      const client = await newService();
      const first = await sesame.app.provider.Client.find(client.id);
      expect(await sesame.app.provider.Client.find(client.id)).toBe(first);
      await sesame.db
        .updateTable('clients')
        .set({ name: 'Renamed service' })
        .where('client_id', '=', client.id)
        .execute();
      expect(
        await eventually(
          async () => (await sesame.app.provider.Client.find(client.id))?.clientName === 'Renamed service',
        ),
      ).toBe(true);
      expect(await sesame.app.provider.Client.find(client.id)).not.toBe(first);
    });

    it('forgets a deleted client', async () => {
      const client = await newService();
      expect(await clientCredentials(client.id, client.secret)).toBe(200);
      await sesame.db.deleteFrom('clients').where('client_id', '=', client.id).execute();
      expect(await eventually(async () => (await clientCredentials(client.id, client.secret)) === 401)).toBe(
        true,
      );
    });
  });

  describe('users', () => {
    /** A person signed up at a first-party app, with an access token for userinfo. */
    async function signedUpPerson(scope?: string) {
      const { client, rp, person, pending, loginPage } = await atLoginPage(scope);
      const email = `c${randomBytes(4).toString('hex')}@example.com`;
      const next = await person.signUp(loginPage, email);
      const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
      const sub = tokens.claims()!.sub;
      const userinfo = async () => {
        try {
          return await oidc.fetchUserInfo(rp.config, tokens.access_token, sub);
        } catch {
          return undefined;
        }
      };
      return { sub, email, userinfo, person, clientId: client.client_id };
    }

    it('answers userinfo from memory: an unannounced rename is not seen, an announced one is', async () => {
      const person = await signedUpPerson();
      await noticesHeard();
      expect((await person.userinfo())?.email).toBe(person.email);
      await unannounced('users', (db) =>
        db.updateTable('users').set({ email: 'silent@example.com' }).where('id', '=', person.sub).execute(),
      );
      expect((await person.userinfo())?.email).toBe(person.email);
      await sesame.db
        .updateTable('users')
        .set({ email: 'loud@example.com' })
        .where('id', '=', person.sub)
        .execute();
      expect(await eventually(async () => (await person.userinfo())?.email === 'loud@example.com')).toBe(
        true,
      );
    });

    it('stops serving a user as soon as their disabling is announced', async () => {
      const person = await signedUpPerson();
      expect(await person.userinfo()).toBeDefined();
      await sesame.db
        .updateTable('users')
        .set({ disabled_at: new Date() })
        .where('id', '=', person.sub)
        .execute();
      expect(await eventually(async () => (await person.userinfo()) === undefined)).toBe(true);
    });

    it('sees a change the server itself made at once, even when its notice never comes', async () => {
      const { person, userinfo } = await signedUpPerson();
      expect((await userinfo())?.name).not.toBe('Renamed Here');
      const page = await person.browser.request('/account');
      expect(page.status).toBe(200);
      await sql`alter table users disable trigger users_announce_change`.execute(sesame.db);
      try {
        const saved = await person.browser.postJson('/account/profile', page.csrf(), {
          name: 'Renamed Here',
        });
        expect(saved.status).toBe(200);
        expect((await userinfo())?.name).toBe('Renamed Here');
      } finally {
        await sql`alter table users enable trigger users_announce_change`.execute(sesame.db);
      }
    });

    describe('groups', () => {
      const newGroup = async () =>
        (
          await sesame.db
            .insertInto('groups')
            .values({ name: `g${randomBytes(4).toString('hex')}` })
            .returningAll()
            .executeTakeFirstOrThrow()
        ).id;
      const groupsOf = async (person: Awaited<ReturnType<typeof signedUpPerson>>) =>
        ((await person.userinfo()) as { groups?: string[] } | undefined)?.groups;

      it('answers memberships from memory: an unannounced one is not seen, an announced one is', async () => {
        // Made first: a new group is announced too, and its notice empties the memberships.
        const [silent, loud] = [await newGroup(), await newGroup()];
        const person = await signedUpPerson('openid email groups');
        await noticesHeard();
        expect(await groupsOf(person)).toEqual([]);
        await unannounced('group_members', (db) =>
          db.insertInto('group_members').values({ group_id: silent, user_id: person.sub }).execute(),
        );
        expect(await groupsOf(person)).toEqual([]);
        await sesame.db.insertInto('group_members').values({ group_id: loud, user_id: person.sub }).execute();
        expect(await eventually(async () => (await groupsOf(person))?.length === 2)).toBe(true);
        // A renamed group is announced on its own row: every member's next answer shows the name.
        await sesame.db.updateTable('groups').set({ name: 'renamed-group' }).where('id', '=', loud).execute();
        expect(
          await eventually(async () => (await groupsOf(person))?.includes('renamed-group') === true),
        ).toBe(true);
      });

      it("stops serving a person once the client's announced allowed groups leave them out", async () => {
        const person = await signedUpPerson('openid email groups');
        const members = await newGroup();
        await noticesHeard();
        expect(await person.userinfo()).toBeDefined();
        await unannounced('client_allowed_groups', (db) =>
          db
            .insertInto('client_allowed_groups')
            .values({ client_id: person.clientId, group_id: members })
            .execute(),
        );
        expect(await person.userinfo()).toBeDefined();
        await sesame.db
          .deleteFrom('client_allowed_groups')
          .where('client_id', '=', person.clientId)
          .execute();
        await sesame.db
          .insertInto('client_allowed_groups')
          .values({ client_id: person.clientId, group_id: members })
          .execute();
        expect(await eventually(async () => (await person.userinfo()) === undefined)).toBe(true);
      });
    });
  });

  describe('tokens', () => {
    /** A client_credentials token of a new service, and a way to introspect it as that service. */
    async function issuedToken() {
      const client = await newService();
      const basic = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
      const post = (path: string, body: string) =>
        fetch(`${sesame.baseUrl}${path}`, {
          method: 'POST',
          headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
          body,
        });
      const { access_token } = (await (await post('/token', 'grant_type=client_credentials')).json()) as {
        access_token: string;
      };
      const active = async () =>
        ((await (await post('/token/introspection', `token=${access_token}`)).json()) as { active: boolean })
          .active;
      const stored = storedId('ClientCredentials', access_token);
      const deleteRow = (db: TestApp['db']) =>
        db
          .deleteFrom('oidc_models')
          .where('model', '=', 'ClientCredentials')
          .where('id', '=', stored)
          .execute();
      return { active, deleteRow, revoke: () => post('/token/revocation', `token=${access_token}`) };
    }

    it('introspects from memory: a token deleted unannounced is still active, an announced delete ends it', async () => {
      const token = await issuedToken();
      await noticesHeard();
      expect(await token.active()).toBe(true);
      await unannounced('oidc_models', token.deleteRow);
      expect(await token.active()).toBe(true);

      const other = await issuedToken();
      expect(await other.active()).toBe(true);
      // As another instance revoking it would: the row goes, the trigger announces it.
      await other.deleteRow(sesame.db);
      expect(await eventually(async () => !(await other.active()))).toBe(true);
    });

    it('a token revoked through this server is inactive at once, before any notice', async () => {
      const token = await issuedToken();
      expect(await token.active()).toBe(true);
      expect((await token.revoke()).status).toBe(200);
      expect(await token.active()).toBe(false);
    });
  });

  describe('logins', () => {
    it('refuses a code another instance used though it holds the code unused (codes are not announced), and revokes what it issued', async () => {
      const { rp, person, pending, loginPage } = await atLoginPage();
      const email = `k${randomBytes(4).toString('hex')}@example.com`;
      const callback = await person.continueToApp(await person.signUp(loginPage, email), REDIRECT_URI);
      const codeId = storedId('AuthorizationCode', new URL(callback).searchParams.get('code')!);
      // This server stored the code as it issued it, and so holds it unused; another instance uses it.
      const grantId = await useCodeElsewhere(sesame.db, codeId);
      await expect(finishLogin(rp, pending, callback)).rejects.toMatchObject({ error: 'invalid_grant' });
      // A replay: the grant goes, and everything issued under it.
      expect(await leftOfGrant(sesame.db, grantId)).toEqual([]);
    });
  });

  (onPostgres ? it : it.skip)(
    'signs up and signs in with each request of the browser going to the other of two instances',
    async () => {
      const other = await startSecondInstance(sesame);
      try {
        const instances = [sesame.listenUrl, other.url];
        let turn = 0;
        // As behind a round-robin balancer: each instance reads the interaction the other wrote
        // or changed a moment before, and must see the change, not what it holds from before.
        const roundRobin = {
          get connectTo() {
            return instances[turn++ % 2]!;
          },
        };
        const { rp, person, pending, loginPage } = await atLoginPage(
          undefined,
          new Person(sesame.baseUrl, undefined, roundRobin),
        );
        const email = `r${randomBytes(4).toString('hex')}@example.com`;
        const signedUp = await person.continueToApp(await person.signUp(loginPage, email), REDIRECT_URI);
        const tokens = await finishLogin(rp, pending, signedUp);
        expect(tokens.claims()!.email).toBe(email);

        for (let i = 0; i < 3; i++) {
          const browser = person.inNewBrowser();
          const login = await beginLogin(rp);
          const next = await browser.signIn(await browser.open(login.url));
          const again = await finishLogin(rp, login, await browser.continueToApp(next, REDIRECT_URI));
          expect(again.claims()!.sub).toBe(tokens.claims()!.sub);
        }
      } finally {
        await other.stop();
      }
    },
  );

  (onPostgres ? it : it.skip)(
    'reads every row from the table while the notification connection is down, and caches again once it is back',
    async () => {
      const client = await newService();
      expect(await clientCredentials(client.id, client.secret)).toBe(200);
      const listeners = sql<{ pid: number }>`
        select pid from pg_stat_activity
        where datname = current_database() and application_name = ${LISTENER_APPLICATION_NAME}`;
      const killed = await sql`select pg_terminate_backend(pid) from (${listeners}) l`.execute(sesame.db);
      expect(killed.rows).toHaveLength(1);

      const listenerUp = async () => (await rowChangeListenerUp.get()).values[0]?.value;
      expect(await eventually(async () => (await listenerUp()) === 0)).toBe(true);

      // Dark: a change whose notice nobody can receive is still seen, because nothing is cached.
      await unannounced('clients', (db) => setSecret(db, client.id, 'second'));
      expect(await eventually(async () => (await clientCredentials(client.id, 'second')) === 200)).toBe(true);
      expect(await clientCredentials(client.id, client.secret)).toBe(401);

      // The listener reconnects after a second; then the cache serves from memory again.
      const relistened = await eventually(async () => (await listeners.execute(sesame.db)).rows.length === 1);
      expect(relistened).toBe(true);
      // The server marks the cache live once its LISTEN hears a ping, a moment after Postgres shows it.
      await noticesHeard();
      expect(await listenerUp()).toBe(1);
      expect(await clientCredentials(client.id, 'second')).toBe(200);
      await unannounced('clients', (db) => setSecret(db, client.id, 'third'));
      expect(await clientCredentials(client.id, 'second')).toBe(200);
    },
  );
});
