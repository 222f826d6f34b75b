import * as oidc from 'openid-client';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { requestLines } from '../support/logLines.js';
import { beginLogin, discoverRp, finishLogin, Person } from '../support/oidcFlow.js';
import { linkPath, useLink } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8903/callback';
const LOGGED_OUT_URI = 'http://127.0.0.1:8903/bye';

/** Every request Sesame answers is logged, and no secret of a URL ends up in the log. */
describe('the request log', () => {
  let sesame: TestApp;
  const lines: string[] = [];

  beforeAll(async () => {
    sesame = await startTestApp({}, { log: createLogger('debug', (line) => lines.push(line)) });
  });

  afterAll(() => sesame.stop());

  const requests = () => requestLines(lines).map((line) => `${line.method} ${line.url} ${line.status}`);

  it('logs every request to a one-time link, with the token cut out of its path', async () => {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'ada@example.com',
      actor: 'test',
    });
    const token = linkPath(url).split('/').pop()!;
    const person = new Person(sesame.baseUrl);
    lines.length = 0;

    expect((await useLink(person, url)).status).toBe(200);
    // Used up: opening it again is a 410 page, and a near miss of the token a 404.
    expect((await person.browser.request(linkPath(url))).status).toBe(410);
    expect((await person.browser.request(`/link/${token.slice(0, -1)}x`)).status).toBe(404);

    expect(requests()).toEqual([
      'GET /link/[redacted] 200',
      'POST /link/[redacted]/options 200',
      'POST /link/[redacted]/verify 200',
      'GET /link/[redacted] 410',
      'GET /link/[redacted] 404',
    ]);
    expect(lines.join('\n')).not.toContain(token);
    expect(lines.join('\n')).not.toContain(token.slice(0, 20));
  });

  it('logs the OIDC requests of a sign-in and sign-out without codes, states or the ID token', async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [LOGGED_OUT_URI] },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'grace@example.com');
    const callback = await person.continueToApp(next, REDIRECT_URI);
    const tokens = await finishLogin(rp, pending, callback);
    const endSession = oidc.buildEndSessionUrl(rp.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: LOGGED_OUT_URI,
      state: pending.state,
    });
    expect((await person.browser.request(endSession.toString())).status).toBe(200);

    const logged = requests();
    expect(logged).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^GET \/auth\?.*&state=\[redacted\]&nonce=\[redacted\]&client_id=[\w-]+&/),
        'POST /token 200',
        expect.stringMatching(
          /^GET \/session\/end\?id_token_hint=\[redacted\]&post_logout_redirect_uri=.* 200$/,
        ),
      ]),
    );
    const text = lines.join('\n');
    const code = new URL(callback).searchParams.get('code')!;
    for (const secret of [code, pending.state, pending.nonce, tokens.id_token!, tokens.access_token]) {
      expect(text).not.toContain(secret);
    }
  });

  it('cuts a long URL to 2,048 characters and says how long it was', async () => {
    // 15 kB of short segments (none shaped like a secret, so none is redacted), and a query.
    const path = `/${'seg/'.repeat(3840)}end?client_id=x`;
    lines.length = 0;
    expect((await fetch(`${sesame.baseUrl}${path}`)).status).toBe(404);
    const [line] = requestLines(lines);
    expect(line).toMatchObject({ method: 'GET', status: 404, url_length: path.length });
    expect(line!.url).toBe(path.slice(0, 2048));
    const short = '/seg/end';
    lines.length = 0;
    await fetch(`${sesame.baseUrl}${short}`);
    expect(requestLines(lines)[0]).toEqual(expect.not.objectContaining({ url_length: expect.anything() }));
    expect(requestLines(lines)[0]!.url).toBe(short);
  });
});
