import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { revokeConnectedApp } from '../../src/accounts/connectedApps.js';
import { backchannelDeliveriesQueries } from '../../src/db/queries/backchannelDeliveries.js';
import {
  CONSENT_REVOKED,
  type ModelPayload,
  modelRow,
  oidcModelsQueries,
} from '../../src/db/queries/oidcModels.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8941/callback';

/**
 * A device approval's copy of the consent, committed while the app's Revoke waited for the
 * grant it copies, and marked as the device's (markApprovedOnDevice) while the Revoke went on:
 * the Revoke's first lock saw only the rows there when it began, so the copy was neither
 * deleted (by then a device's) nor stamped (no device seemed to stay), and the next browser
 * copied the revoked consent without asking. Postgres only: the embedded database serves one
 * connection, so nothing runs beside the Revoke's transaction there.
 */
(onPostgres ? describe : describe.skip)('a Revoke racing a device approval', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let clientId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      {
        name: 'Photos',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', DEVICE_CODE_GRANT],
        first_party: false,
      },
      'test',
    );
    clientId = client.client_id;
    rp = await discoverRp(sesame.baseUrl, { client_id: clientId, client_secret }, REDIRECT_URI);
  }, 120_000);

  afterAll(() => sesame?.stop());

  const atApp = (url: string) => url.startsWith(REDIRECT_URI);

  it("stamps a device's copy made and marked while the Revoke runs, so no later browser copies it", async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid');
    const next = await person.signUp(
      await person.open(pending.url),
      `r${randomBytes(4).toString('hex')}@example.com`,
    );
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    const sub = tokens.claims()!.sub;
    const source = (await oidcModelsQueries.consentToCopy(sesame.db, sub, clientId))!;
    const sourceId = String(source.jti);

    // The device approval's copy (loadExistingGrant), its statement still open while the Revoke begins.
    const copyId = randomBytes(16).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const copy: ModelPayload = {
      accountId: sub,
      clientId,
      openid: source.openid,
      iat: now,
      exp: now + 3600,
      jti: copyId,
      kind: 'Grant',
    };
    let commitCopy!: () => void;
    let copied!: (stored: boolean) => void;
    const copyStored = new Promise<boolean>((resolve) => (copied = resolve));
    const copyTx = sesame.db.transaction().execute(async (trx) => {
      copied(
        await oidcModelsQueries.insertCopyOfConsent(trx, modelRow('Grant', copyId, copy, 3600), sourceId),
      );
      await new Promise<void>((resolve) => (commitCopy = resolve));
    });
    expect(await copyStored).toBe(true);

    // The device approval goes on (successSource: markApprovedOnDevice) while the Revoke is between its lock and its delete.
    const targets = backchannelDeliveriesQueries.logoutTargetsOfAccount;
    let mark: Promise<boolean> | undefined;
    backchannelDeliveriesQueries.logoutTargetsOfAccount = async (...args) => {
      backchannelDeliveriesQueries.logoutTargetsOfAccount = targets;
      mark = oidcModelsQueries.markApprovedOnDevice(sesame.db, copyId, Math.floor(Date.now() / 1000));
      // Stored at once unless the Revoke holds the copy locked: then it waits for the Revoke.
      await Promise.race([mark, new Promise((resolve) => setTimeout(resolve, 1000))]);
      return targets(...args);
    };
    try {
      const revoke = revokeConnectedApp(sesame.db, sub, clientId);
      // Wait until the Revoke's lockGrantsOf waits on the source's lock, then let the copy commit.
      await untilWaitingForLocks(sesame.db, 1);
      commitCopy();
      await copyTx;
      await revoke;
    } finally {
      backchannelDeliveriesQueries.logoutTargetsOfAccount = targets;
    }
    expect(mark).toBeDefined();
    // The copy went with the Revoke, the device's approval finding nothing to mark (it is then
    // refused), or, marked first, it stays the device's with its consent marked revoked.
    const marked = await mark!;
    const { rows } = await sql<{ payload: ModelPayload }>`
      select payload from oidc_models where model = 'Grant' and id = ${copyId}`.execute(sesame.db);
    expect(rows).toHaveLength(marked ? 1 : 0);
    if (marked) expect(rows[0]!.payload).toHaveProperty(CONSENT_REVOKED);
    expect(await oidcModelsQueries.consentToCopy(sesame.db, sub, clientId)).toBeUndefined();

    // A new browser is asked for consent again, as the Revoke promised.
    const elsewhere = person.inNewBrowser();
    const again = await beginLogin(rp, 'openid');
    const page = await elsewhere.browser.follow(
      await elsewhere.signIn(await elsewhere.open(again.url)),
      atApp,
    );
    expect('stoppedAt' in page ? `signed in without asking: ${page.stoppedAt}` : asPage(page).text).toContain(
      '>Allow<',
    );
  }, 60_000);
});
