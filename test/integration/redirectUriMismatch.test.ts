import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REGISTERED = 'http://localhost:8904/callback';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

/**
 * An authorization request whose redirect_uri is not registered is refused on Sesame's error
 * page, in the person's browser: the app never hears of it. Whoever set the app up reads the
 * reason, and the near miss, in the log.
 */
describe('an authorization request with an unregistered redirect_uri', () => {
  let sesame: TestApp;
  let clientId: string;
  const lines: string[] = [];

  beforeAll(async () => {
    sesame = await startTestApp({}, { log: createLogger('warn', (line) => lines.push(line)) });
    ({
      client: { client_id: clientId },
    } = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REGISTERED] }, 'test'));
  });

  afterAll(() => sesame.stop());

  const authorize = (redirectUri: string) =>
    fetch(
      `${sesame.listenUrl}/auth?${new URLSearchParams({
        client_id: clientId,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid',
        code_challenge: CHALLENGE,
        code_challenge_method: 'S256',
      })}`,
      { redirect: 'manual' },
    );
  const refusals = () =>
    lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter(
        (entry) =>
          entry.msg === 'authorization request refused: its redirect_uri is not registered for the client',
      );

  it.each([
    [`${REGISTERED}/`, `only its trailing slash differs from the registered ${REGISTERED}`],
    ['http://localhost:8905/callback', `only its port differs from the registered ${REGISTERED}`],
    ['https://localhost:8904/callback', `only its scheme differs from the registered ${REGISTERED}`],
    ['http://localhost:8904/Callback', `only letter case differs from the registered ${REGISTERED}`],
  ])('logs one warn line naming the client, %s, the registered URIs and what differs', async (sent, hint) => {
    lines.length = 0;
    const response = await authorize(sent);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain(
      'redirect_uri did not match any of the client&#39;s registered redirect_uris',
    );
    expect(refusals()).toEqual([
      expect.objectContaining({
        level: 'warn',
        client: clientId,
        redirect_uri: sent,
        registered: [REGISTERED],
        hint: `${hint}; redirect URIs match exactly`,
      }),
    ]);
  });

  it('logs no hint for a redirect_uri nothing like a registered one, and nothing for a registered one', async () => {
    lines.length = 0;
    expect((await authorize('https://elsewhere.example/cb')).status).toBe(400);
    expect(refusals()).toEqual([expect.not.objectContaining({ hint: expect.anything() })]);
    expect(refusals()[0]).toMatchObject({
      redirect_uri: 'https://elsewhere.example/cb',
      registered: [REGISTERED],
    });
    lines.length = 0;
    const allowed = await authorize(REGISTERED);
    expect(allowed.status).toBe(303);
    expect(refusals()).toEqual([]);
  });

  it.each(['foo:[', 'x:a b', 'foo:%'])(
    'refuses %j, which parses as a URL but does not rebuild, as any other, with its line',
    async (sent) => {
      lines.length = 0;
      const response = await authorize(sent);
      expect(response.status).toBe(400);
      expect(refusals()).toEqual([expect.objectContaining({ redirect_uri: sent, registered: [REGISTERED] })]);
    },
  );
});
