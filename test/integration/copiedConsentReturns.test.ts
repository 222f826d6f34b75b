import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8933/callback';

/**
 * A third-party app's sign-in in a new browser copies the consent given earlier, in its own
 * statement before the return's writes (grantSaves.ts). The same return loaded several times at
 * once: one gets the code, the others 400, and losing that race is no server error to log.
 */
describe('returns of a sign-in that copies consent, loaded at once', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let clientId: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    sesame = await startTestApp({}, { log: createLogger('info', (line) => logLines.push(line)) });
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Photos', redirect_uris: [REDIRECT_URI], first_party: false },
      'test',
    );
    clientId = client.client_id;
    rp = await discoverRp(sesame.baseUrl, { client_id: clientId, client_secret }, REDIRECT_URI);
  });
  afterAll(() => sesame.stop());

  const count = async (where: ReturnType<typeof sql>) =>
    (await sql<{ n: number }>`select count(*)::int as n from oidc_models where ${where}`.execute(sesame.db))
      .rows[0]!.n;
  const grants = () => count(sql`model = 'Grant' and payload->>'clientId' = ${clientId}`);
  const codes = () => count(sql`model = 'AuthorizationCode'`);

  it('gives one code and one copy, answers the others 400, and logs no error', async () => {
    const person = new Person(sesame.baseUrl);
    const first = await beginLogin(rp);
    const next = await person.signUp(
      await person.open(first.url),
      `r${randomBytes(4).toString('hex')}@example.com`,
    );
    await finishLogin(rp, first, await person.continueToApp(next, REDIRECT_URI));
    for (let round = 0; round < 3; round++) {
      const visit = person.inNewBrowser();
      const pending = await beginLogin(rp);
      const resumeUrl = await visit.signIn(await visit.open(pending.url));
      const before = [await grants(), await codes()];
      logLines.length = 0;
      const responses = await Promise.all([0, 1, 2, 3].map(() => visit.browser.request(resumeUrl)));
      const withCode = responses.filter((r) => r.location()?.startsWith(REDIRECT_URI));
      expect(withCode).toHaveLength(1);
      expect(responses.filter((r) => r !== withCode[0]).map((r) => r.status)).toEqual([400, 400, 400]);
      expect(logLines.filter((line) => (JSON.parse(line) as { level: string }).level === 'error')).toEqual(
        [],
      );
      expect([await grants(), await codes()]).toEqual([before[0]! + 1, before[1]! + 1]);
      await finishLogin(rp, pending, withCode[0]!.location()!);
    }
  });
});
