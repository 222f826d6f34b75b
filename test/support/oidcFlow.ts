import * as oidc from 'openid-client';
import { asPage, BrowserSession, type PageResponse, stoppedAt } from './browser.js';
import { passkeyOptionsIn } from './pageOptions.js';
import { SoftAuthenticator } from './softAuthenticator.js';

/** An app that signs people in through Sesame, built with openid-client as a real RP would be. */
export interface TestRp {
  config: oidc.Configuration;
  redirectUri: string;
}

/**
 * Discovers Sesame as an app would and configures the client. The tests talk plain http, so
 * no TLS vouches for the token endpoint's answers: ID token signatures are checked against
 * the JWKS (openid-client skips that by default, trusting TLS; enableNonRepudiationChecks
 * turns it on), which is what proves Sesame signs with the keys it publishes.
 */
export async function discoverRp(
  baseUrl: string,
  client: { client_id: string; client_secret?: string | undefined },
  redirectUri: string,
): Promise<TestRp> {
  const config = await oidc.discovery(
    new URL(baseUrl),
    client.client_id,
    client.client_secret,
    client.client_secret ? oidc.ClientSecretBasic(client.client_secret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks] },
  );
  return { config, redirectUri };
}

/** The RP's side of one login: the authorization URL it sends the browser to, and what it must remember. */
export interface PendingLogin {
  url: string;
  verifier: string;
  state: string;
  nonce: string;
}

/** With `pushed`, the app sends the parameters to the PAR endpoint and the URL holds only its `request_uri` (RFC 9126). */
export async function beginLogin(
  rp: TestRp,
  scope = 'openid email profile',
  extra: Record<string, string> = {},
  { pushed = false } = {},
): Promise<PendingLogin> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const params = {
    redirect_uri: rp.redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  };
  const url = pushed
    ? await oidc.buildAuthorizationUrlWithPAR(rp.config, params)
    : oidc.buildAuthorizationUrl(rp.config, params);
  return { url: url.toString(), verifier, state, nonce };
}

export async function finishLogin(rp: TestRp, pending: PendingLogin, callbackUrl: string) {
  return oidc.authorizationCodeGrant(rp.config, new URL(callbackUrl), {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
  });
}

export const uidOf = (page: PageResponse) => {
  const match = /\/interaction\/([^/?#]+)/.exec(page.url);
  if (!match) throw new Error(`not an interaction page: ${page.url}`);
  return match[1]!;
};

/** A person at a browser with a passkey authenticator, going through Sesame's pages. */
export class Person {
  readonly browser: BrowserSession;

  /** `behindProxy`: Sesame's https ISSUER is served by a TLS proxy at this http address (see BrowserSession). */
  constructor(
    readonly baseUrl: string,
    readonly authenticator = new SoftAuthenticator(),
    behindProxy?: { connectTo: string },
  ) {
    this.browser = new BrowserSession(new URL(baseUrl).origin, behindProxy);
  }

  /** The same passkey in a fresh browser (no cookies), like signing in on another visit. */
  inNewBrowser(): Person {
    return new Person(this.baseUrl, this.authenticator, this.browser.behindProxy);
  }

  /** This browser with `other`'s passkey: someone else signs in where this person is signed in. */
  withPasskeyOf(other: Person): Person {
    const atThisBrowser = new Person(this.baseUrl, other.authenticator);
    (atThisBrowser as { browser: BrowserSession }).browser = this.browser;
    return atThisBrowser;
  }

  /** Opens the authorization URL and returns the page Sesame shows (the login prompt). */
  async open(url: string): Promise<PageResponse> {
    return asPage(await this.browser.follow(url));
  }

  /** From the login page: sign up with email (and name) and a new passkey; returns where Sesame sends the browser next. */
  async signUp(loginPage: PageResponse, email: string, name?: string): Promise<string> {
    const uid = uidOf(loginPage);
    const signupPage = await this.browser.request(`/interaction/${uid}/signup`);
    const csrf = signupPage.csrf();
    const options = await this.browser.postJson(`/interaction/${uid}/signup/options`, csrf, { email, name });
    if (options.status !== 200) throw new Error(`signup options failed: ${options.status} ${options.text}`);
    const credential = await this.authenticator.createCredential(options.json(), this.browser.origin);
    const verify = await this.browser.postJson(`/interaction/${uid}/signup/verify`, csrf, credential);
    if (verify.status !== 200) throw new Error(`signup verify failed: ${verify.status} ${verify.text}`);
    return verify.json<{ redirect: string }>().redirect;
  }

  /** From the login page: "Sign in with a passkey" (discoverable); returns where Sesame sends the browser next. */
  async signIn(loginPage: PageResponse): Promise<string> {
    const uid = uidOf(loginPage);
    const csrf = loginPage.csrf();
    const options = await this.browser.postJson(`/interaction/${uid}/login/options`, csrf, {});
    if (options.status !== 200) throw new Error(`login options failed: ${options.status} ${options.text}`);
    const assertion = await this.authenticator.getAssertion(options.json(), this.browser.origin);
    const verify = await this.browser.postJson(`/interaction/${uid}/login/verify`, csrf, assertion);
    if (verify.status !== 200) throw new Error(`login verify failed: ${verify.status} ${verify.text}`);
    return verify.json<{ redirect: string }>().redirect;
  }

  /**
   * From the login page: picks the passkey its autofill offers, with the options the page came
   * with (no request for options); returns where Sesame sends the browser next.
   */
  async signInWithAutofill(loginPage: PageResponse): Promise<string> {
    const uid = uidOf(loginPage);
    const options = passkeyOptionsIn(loginPage.text);
    if (!options) throw new Error(`the login page carries no passkey options: ${loginPage.url}`);
    const assertion = await this.authenticator.getAssertion(options, this.browser.origin);
    const verify = await this.browser.postJson(
      `/interaction/${uid}/login/verify`,
      loginPage.csrf(),
      assertion,
    );
    if (verify.status !== 200) throw new Error(`login verify failed: ${verify.status} ${verify.text}`);
    return verify.json<{ redirect: string }>().redirect;
  }

  /** Follows `url` until the app's callback, pressing Allow on a consent page if one appears. */
  async continueToApp(
    url: string,
    redirectUri: string,
    decision: 'allow' | 'deny' = 'allow',
  ): Promise<string> {
    const atApp = (u: string) => u.startsWith(redirectUri);
    const result = await this.browser.follow(url, atApp);
    if ('stoppedAt' in result) return result.stoppedAt;
    const uid = uidOf(result);
    if (!result.text.includes('>Allow<'))
      throw new Error(`expected the consent page, got: ${result.text.slice(0, 400)}`);
    const posted = await this.browser.request(`/interaction/${uid}/consent`, {
      form: { _csrf: result.csrf(), decision },
    });
    const location = posted.location();
    if (!location) throw new Error(`consent did not redirect: ${posted.status} ${posted.text.slice(0, 300)}`);
    return stoppedAt(await this.browser.follow(location, atApp));
  }
}

/** RP-initiated logout from `rp`: the person presses "Sign out" on Sesame's page; returns its answer. */
export async function signOutFromApp(
  person: Person,
  rp: TestRp,
  idToken: string,
  postLogoutRedirectUri: string,
): Promise<PageResponse> {
  const url = oidc.buildEndSessionUrl(rp.config, {
    id_token_hint: idToken,
    post_logout_redirect_uri: postLogoutRedirectUri,
  });
  const confirm = await person.browser.request(url.toString());
  const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text);
  if (!form) throw new Error(`no sign-out form: ${confirm.status} ${confirm.text.slice(0, 300)}`);
  return person.browser.request(form[1]!, { form: { xsrf: form[2]!, logout: 'yes' } });
}

/**
 * Types a device's user code at ISSUER/device and confirms it, the person signed in: returns
 * the page that follows, the consent page (with its Allow), which every device's approval
 * shows (grants.ts), or the page that turns the person away.
 */
export async function confirmDeviceCode(person: Person, userCode: string): Promise<PageResponse> {
  const post = (page: PageResponse, fields: Record<string, string>) => {
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)?.[1];
    if (!xsrf) throw new Error(`no device form on ${page.url}: ${page.text.slice(0, 300)}`);
    return person.browser.request('/device', { form: { xsrf, ...fields } });
  };
  const confirm = await post(asPage(await person.browser.follow('/device')), { user_code: userCode });
  const confirmed = await post(confirm, { user_code: userCode, confirm: 'yes' });
  const next = confirmed.location();
  if (!next) throw new Error(`confirming the device code did not redirect: ${confirmed.text.slice(0, 300)}`);
  return asPage(await person.browser.follow(next));
}

/**
 * At ISSUER/device, as the person whose browser is already signed in: types the device's
 * code, confirms it and allows the app on the consent page; returns the page the flow ends
 * on ("Your device is signed in").
 */
export async function approveDevice(person: Person, userCode: string): Promise<PageResponse> {
  const page = await confirmDeviceCode(person, userCode);
  if (!page.text.includes('>Allow<'))
    throw new Error(`expected the consent page, got: ${page.text.slice(0, 400)}`);
  const uid = uidOf(page);
  const posted = await person.browser.request(`/interaction/${uid}/consent`, {
    form: { _csrf: page.csrf(), decision: 'allow' },
  });
  return asPage(await person.browser.follow(posted.location()!));
}

/**
 * A device (RFC 8628) of the app `config` describes, approved in the person's browser (its
 * consent page allowed): the device's tokens, polled as the device does.
 * `extra` goes into the device's request (`resource`, say).
 */
export async function signInDevice(
  person: Person,
  config: oidc.Configuration,
  scope = 'openid email',
  extra: Record<string, string> = {},
) {
  const started = await oidc.initiateDeviceAuthorization(config, { scope, ...extra });
  expect((await approveDevice(person, started.user_code)).text).toContain('Your device is signed in');
  return oidc.pollDeviceAuthorizationGrant(config, { ...started, interval: 0.01 });
}

/**
 * Confirms with the person's passkey, as src/client/stepUp.ts does before a request that
 * needs a recent one (adding or deleting a passkey; as an admin, issuing a one-time link or
 * minting a client secret or API key).
 */
export async function stepUp(person: Person, csrf: string, authenticator = person.authenticator) {
  const options = await person.browser.postJson('/account/step-up/options', csrf, {});
  if (options.status !== 200) throw new Error(`step-up options failed: ${options.status} ${options.text}`);
  const assertion = await authenticator.getAssertion(options.json(), person.browser.origin);
  return person.browser.postJson('/account/step-up/verify', csrf, assertion);
}
