import { sql } from 'kysely';
import { revokeGrants } from '../../src/accounts/revocation.js';
import { blockSuspectedClone } from '../../src/accounts/suspectedClone.js';
import type { Db } from '../../src/db/connect.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { createLogger } from '../../src/logger.js';
import { SuspectedClone } from '../../src/webauthn/errors.js';
import { onboard } from '../support/oneTimeLinkFlow.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/**
 * A cloned passkey's block deletes every row of the account in one transaction (its grants,
 * sessions, codes and tokens). Whatever else changes a grant and the rows that name it at the
 * same time must take the locks in the same order, the grants first, or Postgres refuses one of
 * the two with a deadlock: the block, rolled back, would leave the copy free to try again.
 * Postgres only: the embedded database serves one connection.
 */
(onPostgres ? describe : describe.skip)(
  "a cloned passkey's block racing other changes of the account's grants",
  () => {
    let sesame: TestApp;

    beforeAll(async () => {
      sesame = await startTestApp({});
    });

    afterAll(() => sesame?.stop());

    const block = (credentialId: string) =>
      blockSuspectedClone(
        { db: sesame.db, config: sesame.config, log: createLogger('silent'), caches: sesame.app.caches },
        new SuspectedClone(credentialId, 5, 1),
      ).then(
        () => 'done',
        (error: Error) => `block: ${error.message}`,
      );

    const blockedAt = async (credentialId: string) =>
      (
        await sesame.db
          .selectFrom('credentials')
          .select('suspected_clone_at')
          .where('id', '=', credentialId)
          .executeTakeFirstOrThrow()
      ).suspected_clone_at;

    /** A session of the account stored before a grant of it: the table holds the session first. */
    async function sessionThenGrant(userId: string, tag: string) {
      const expires = new Date(Date.now() + 3_600_000);
      const grantId = `race-grant-${tag}`;
      await sql`insert into oidc_models (model, id, payload, uid, expires_at) values ('Session', ${`race-session-${tag}`},
      ${JSON.stringify({ accountId: userId, loginTs: 1, authorizations: { app: { grantId } } })}::jsonb,
      ${`race-uid-${tag}`}, ${expires})`.execute(sesame.db);
      await sql`insert into oidc_models (model, id, payload, expires_at) values ('Grant', ${grantId},
      ${JSON.stringify({ accountId: userId, clientId: 'app', iat: 1 })}::jsonb, ${expires})`.execute(
        sesame.db,
      );
      await sql`insert into oidc_models (model, id, payload, grant_id, expires_at) values ('AccessToken', ${`race-token-${tag}`},
      ${JSON.stringify({ accountId: userId, clientId: 'app', grantId })}::jsonb, ${grantId}, ${expires})`.execute(
        sesame.db,
      );
      return { grantId, sessionId: `race-session-${tag}`, tokenId: `race-token-${tag}` };
    }

    it("and an app's Revoke, which holds the app's grants and then changes the sessions naming them: both finish, the passkey is blocked", async () => {
      const { person, userId } = await onboard(sesame, 'revoke-race@example.com');
      const credentialId = person.authenticator.credentials()[0]!.id;
      const { grantId, sessionId } = await sessionThenGrant(userId, 'revoke');
      // As revokeConnectedApp: the app's grants locked, then the sessions that name the app changed.
      let locked!: () => void;
      const grantHeld = new Promise<void>((resolve) => (locked = resolve));
      let goOn!: () => void;
      const sessionsNext = new Promise<void>((resolve) => (goOn = resolve));
      const revoke = sesame.db
        .transaction()
        .execute(async (trx) => {
          await sql`select id from oidc_models where model = 'Grant' and id = ${grantId} for update`.execute(
            trx,
          );
          locked();
          await sessionsNext;
          await sql`update oidc_models set payload = payload #- array['authorizations', 'app']
          where model = 'Session' and id = ${sessionId}`.execute(trx);
        })
        .then(
          () => 'done',
          (error: Error) => `revoke: ${error.message}`,
        );
      await grantHeld;
      const blocking = block(credentialId);
      await untilWaitingForLocks(sesame.db, 1);
      goOn();
      expect([await revoke, await blocking]).toEqual(['done', 'done']);
      expect(await blockedAt(credentialId)).not.toBeNull();
    });

    /**
     * Runs `change` while grant `grantId` is held elsewhere (as the block holds an account's
     * grants while it deletes their rows): waiting for it, `change` must hold no lock on token
     * `tokenId`. Then lets go; both rows are gone.
     */
    async function waitsForTheGrantFirst(
      grantId: string,
      tokenId: string,
      change: (trx: Db) => Promise<unknown>,
    ) {
      const release = await holdRow(
        sesame.db,
        sql`select id from oidc_models where id = ${grantId} for update`,
      );
      const changing = sesame.db.transaction().execute(change);
      try {
        await untilWaitingForLocks(sesame.db, 1);
        const token = await sesame.db
          .transaction()
          .execute((trx) =>
            sql`select id from oidc_models where id = ${tokenId} for update nowait`.execute(trx),
          )
          .then(
            () => 'free',
            (error: Error) => error.message,
          );
        expect(token).toBe('free');
      } finally {
        await release();
      }
      await changing;
      const left = await sql<{
        n: number;
      }>`select count(*)::int as n from oidc_models where id in (${grantId}, ${tokenId})`.execute(sesame.db);
      expect(left.rows[0]!.n).toBe(0);
    }

    it("and a device's sign-out (revokeGrants): it waits for the grant before it touches the grant's tokens", async () => {
      const { userId } = await onboard(sesame, 'device-race@example.com');
      const { grantId, tokenId } = await sessionThenGrant(userId, 'device');
      await waitsForTheGrantFirst(grantId, tokenId, (trx) => revokeGrants(trx, [grantId]));
    });

    it("and an app's deletion (destroyByClientId): it waits for the app's grants before it touches their tokens", async () => {
      const { userId } = await onboard(sesame, 'client-race@example.com');
      // A token stored before its grant: the table holds it first, and a delete in table order
      // would lock it before it waits for the grant.
      const expires = new Date(Date.now() + 3_600_000);
      const grantId = 'race-grant-client';
      const tokenId = 'race-token-client';
      await sql`insert into oidc_models (model, id, payload, grant_id, expires_at) values ('AccessToken', ${tokenId},
        ${JSON.stringify({ accountId: userId, clientId: 'app', grantId })}::jsonb, ${grantId}, ${expires})`.execute(
        sesame.db,
      );
      await sql`insert into oidc_models (model, id, payload, expires_at) values ('Grant', ${grantId},
        ${JSON.stringify({ accountId: userId, clientId: 'app', iat: 1 })}::jsonb, ${expires})`.execute(
        sesame.db,
      );
      await waitsForTheGrantFirst(grantId, tokenId, (trx) => oidcModelsQueries.destroyByClientId(trx, 'app'));
    });
  },
);
