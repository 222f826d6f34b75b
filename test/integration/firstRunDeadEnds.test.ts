import { clientsQueries } from '../../src/db/queries/clients.js';
import { getClient } from '../../src/oidc/clients.js';
import { BrowserSession } from '../support/browser.js';
import { Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

/**
 * Dead ends a newcomer following the README met on a first run, each now with a way on.
 */
describe('first-run dead ends', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  describe("cancelling the sign-in to Sesame's own account page", () => {
    async function cancelledAt(path: string, language?: string) {
      const person = new Person(sesame.baseUrl);
      if (language) person.browser.headers['accept-language'] = language;
      const page = await person.open(path);
      const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
      const cancelled = await person.browser.request(`/interaction/${uid}/abort`, {
        form: { _csrf: page.csrf() },
      });
      const callback = await person.browser.follow(cancelled.location()!);
      return { person, callback: callback as Awaited<ReturnType<BrowserSession['request']>> };
    }

    it('says it was cancelled and offers signing in again, back to the page asked for', async () => {
      const { person, callback } = await cancelledAt('/account/login?return_to=%2Faccount%2Fprofile');
      expect(callback.url).toMatch(/\/account\/callback\?error=access_denied/);
      expect(callback.status).toBe(400);
      expect(callback.text).toContain('Sign-in was cancelled.');
      const link = /<a href="([^"]*)">Sign in again<\/a>/.exec(callback.text);
      expect(link?.[1]).toBe('/account/login?return_to=%2Faccount%2Fprofile');
      // The link starts a new sign-in: the sign-in page again.
      const again = await person.open(link![1]!.replaceAll('&amp;', '&'));
      expect(again.url).toMatch(/\/interaction\//);
      expect(again.text).toContain('passkey');
    });

    it('offers it from the start page too, in the page language', async () => {
      const { callback } = await cancelledAt('/', 'de');
      expect(callback.status).toBe(400);
      expect(callback.text).toMatch(/<a href="\/account\/login\?return_to=%2Faccount">Erneut anmelden<\/a>/);
    });

    it('keeps other errors as they were: no link', async () => {
      const browser = new BrowserSession(sesame.baseUrl);
      const page = await browser.request('/account/callback?error=server_error');
      expect(page.status).toBe(400);
      expect(page.text).toContain('Sign-in was cancelled.');
      expect(page.text).not.toContain('Sign in again');
    });
  });

  it('keeps loading a client stored with a * in a redirect URI before such URIs were refused', async () => {
    const uri = 'https://notes.example/*';
    await clientsQueries.insert(sesame.db, 'starred-client', null, {
      name: 'Starred',
      redirectUris: [uri],
      postLogoutRedirectUris: [uri],
      grantTypes: ['authorization_code', 'refresh_token'],
      isPublic: true,
      firstParty: false,
      introspectTokens: false,
      logoUri: null,
      requirePushedAuthorizationRequests: false,
      backchannelLogoutUri: null,
    });
    expect((await getClient(sesame.db, 'starred-client'))?.redirect_uris).toEqual([uri]);
    // The provider still loads it: its exact URI starts a sign-in.
    const response = await fetch(
      `${sesame.baseUrl}/auth?${new URLSearchParams({
        client_id: 'starred-client',
        redirect_uri: uri,
        response_type: 'code',
        scope: 'openid',
        code_challenge: CHALLENGE,
        code_challenge_method: 'S256',
      })}`,
      { redirect: 'manual' },
    );
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toMatch(/\/interaction\//);
  });
});
