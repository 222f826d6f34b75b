import * as jose from 'jose';
import * as oidc from 'openid-client';
import { createClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8900/callback';

describe('passkey sign-up and sign-in as the OIDC login step', () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      {
        name: 'Notes',
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: ['http://127.0.0.1:8900/bye'],
      },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  it('signs a new person up with a passkey, asks consent, and issues a verified ID token and userinfo', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const loginPage = await person.open(pending.url);
    expect(loginPage.text).toContain('Sign in with a passkey');
    expect(loginPage.text).toContain('autocomplete="username webauthn"');
    expect(loginPage.text).toContain('Create an account');

    const next = await person.signUp(loginPage, 'ada@example.com', 'Ada Lovelace');
    const callback = await person.continueToApp(next, REDIRECT_URI);
    const tokens = await finishLogin(rp, pending, callback);

    const claims = tokens.claims()!;
    expect(claims.iss).toBe(sesame.baseUrl);
    expect(claims.email).toBe('ada@example.com');
    expect(claims.name).toBe('Ada Lovelace');
    expect(claims.amr).toEqual(expect.arrayContaining(['user', 'mfa']));
    expect(typeof claims.auth_time).toBe('number');

    // The ID token verifies against the published JWKS, independent of openid-client.
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    const { payload } = await jose.jwtVerify(tokens.id_token!, jwks, {
      issuer: sesame.baseUrl,
      audience: rp.config.clientMetadata().client_id,
    });
    expect(payload.sub).toBe(claims.sub);

    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ sub: claims.sub, email: 'ada@example.com', name: 'Ada Lovelace' });

    // A new browser session with the same passkey signs in and gets the same sub, without a second consent.
    const again = person.inNewBrowser();
    const pending2 = await beginLogin(rp);
    const loginPage2 = await again.open(pending2.url);
    const callback2 = await again.continueToApp(await again.signIn(loginPage2), REDIRECT_URI);
    const tokens2 = await finishLogin(rp, pending2, callback2);
    expect(tokens2.claims()!.sub).toBe(claims.sub);
  });
});
