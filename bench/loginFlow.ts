/**
 * One complete passkey login as a browser plus its relying party would drive it, request by
 * request, timing each step: authorize -> login page (with the passkey options) -> assertion ->
 * verify -> resume to the code -> token (PKCE) -> userinfo. Sign-up goes the same way with
 * a new passkey instead of an assertion.
 */
import { createHash, randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { passkeyOptionsIn } from '../test/support/pageOptions.js';
import { SoftAuthenticator } from '../test/support/softAuthenticator.js';
import { CookieJar, locationPath, type Reply, send } from './http.js';

/** Where Sesame is and the confidential, first-party client the logins go through. */
export interface FlowTarget {
  /** Where to connect: http://127.0.0.1:<port>. */
  base: string;
  /** With several instances: each request goes to the next of these (round-robin), not to `base`. */
  bases?: string[];
  /** Sesame's ISSUER (http://localhost:<port>): the WebAuthn origin and the base of its redirects. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

export const LOGIN_STEPS = ['authorize', 'login_page', 'verify', 'resume', 'token', 'userinfo'] as const;
export type LoginStep = (typeof LOGIN_STEPS)[number];

/** Raised when a step answers wrongly; `step` and `status` go into the error counts. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    readonly status: number,
    detail: string,
  ) {
    super(`${step}: ${status} ${detail.slice(0, 200)}`);
  }
}

const b64u = (bytes: Buffer) => bytes.toString('base64url');

/** The bench's own round-robin over FlowTarget.bases, one request at a time across every browser. */
let nextBase = 0;

/** A person with one passkey, who signs in from a fresh browser (no cookies) every time. */
export class BenchUser {
  readonly authenticator = new SoftAuthenticator();

  constructor(
    public target: FlowTarget,
    readonly email: string,
  ) {}

  private get base() {
    const bases = this.target.bases;
    return new URL(bases?.length ? bases[nextBase++ % bases.length]! : this.target.base);
  }

  private async step(
    jar: CookieJar,
    name: string,
    method: string,
    path: string,
    expect: number,
    extra: { json?: unknown; form?: string; headers?: Record<string, string> } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { accept: 'text/html,application/json', ...extra.headers };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (extra.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(extra.json);
    } else if (extra.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = extra.form;
    }
    if (method !== 'GET') headers.origin = this.target.issuer;
    const reply = await send(this.base, method, path, headers, body);
    jar.take(reply);
    if (reply.status !== expect) throw new StepError(name, reply.status, reply.body);
    return reply;
  }

  private authorizePath(challenge: string, state: string): string {
    const query = new URLSearchParams({
      client_id: this.target.clientId,
      redirect_uri: this.target.redirectUri,
      response_type: 'code',
      scope: 'openid email profile',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce: b64u(randomBytes(12)),
    });
    return `/auth?${query}`;
  }

  /** Opens the authorization URL in a fresh browser; returns the jar, the interaction path and the page. */
  private async openLogin(time: (step: LoginStep, ms: number) => void, challenge: string, state: string) {
    const jar = new CookieJar();
    let t = performance.now();
    const authorize = await this.step(jar, 'authorize', 'GET', this.authorizePath(challenge, state), 303);
    time('authorize', performance.now() - t);
    const interaction = locationPath(authorize, this.target.issuer);
    t = performance.now();
    const page = await this.step(jar, 'login_page', 'GET', interaction, 200);
    time('login_page', performance.now() - t);
    return { jar, interaction, page };
  }

  /** Follows the provider's redirects from `path` to the app's callback and returns the code. */
  private async resumeToCode(jar: CookieJar, path: string, state: string): Promise<string> {
    let next = path;
    for (let hops = 0; hops < 4; hops++) {
      const reply = await this.step(jar, 'resume', 'GET', next, 303);
      const location = new URL(reply.headers.location ?? '', this.target.issuer);
      if (location.href.startsWith(this.target.redirectUri)) {
        const code = location.searchParams.get('code');
        if (!code || location.searchParams.get('state') !== state) {
          throw new StepError('resume', reply.status, `no code in ${location.search.slice(0, 120)}`);
        }
        return code;
      }
      next = location.pathname + location.search;
    }
    throw new StepError('resume', 0, 'too many redirects before the app');
  }

  /** Signs up with a new passkey through the login page's "Create an account". */
  async signUp(): Promise<void> {
    const state = b64u(randomBytes(12));
    const challenge = b64u(
      createHash('sha256')
        .update(b64u(randomBytes(32)))
        .digest(),
    );
    const { jar, interaction } = await this.openLogin(() => {}, challenge, state);
    const signup = await this.step(jar, 'signup_page', 'GET', `${interaction}/signup`, 200);
    const csrf = csrfOf(signup);
    const options = await this.step(jar, 'signup_options', 'POST', `${interaction}/signup/options`, 200, {
      json: { email: this.email, name: this.email.split('@')[0] },
      headers: { 'x-csrf-token': csrf, accept: 'application/json' },
    });
    const credential = await this.authenticator.createCredential(
      JSON.parse(options.body) as PublicKeyCredentialCreationOptionsJSON,
      this.target.issuer,
    );
    const verify = await this.step(jar, 'signup_verify', 'POST', `${interaction}/signup/verify`, 200, {
      json: credential,
      headers: { 'x-csrf-token': csrf, accept: 'application/json' },
    });
    const redirect = (JSON.parse(verify.body) as { redirect: string }).redirect;
    await this.resumeToCode(jar, new URL(redirect, this.target.issuer).pathname, state);
  }

  /** One complete login from a fresh browser, reporting each step's latency to `time`. */
  async logIn(time: (step: LoginStep, ms: number) => void): Promise<void> {
    const verifier = b64u(randomBytes(32));
    const challenge = b64u(createHash('sha256').update(verifier).digest());
    const state = b64u(randomBytes(12));
    const { jar, interaction, page } = await this.openLogin(time, challenge, state);
    const csrf = csrfOf(page);
    const json = { 'x-csrf-token': csrf, accept: 'application/json' };

    // The page comes with the passkey request's options, as a browser's autofill takes them.
    const assertion: AuthenticationResponseJSON = await this.authenticator.getAssertion(
      passkeyOptionsOf(page),
      this.target.issuer,
    );

    let t = performance.now();
    const verify = await this.step(jar, 'verify', 'POST', `${interaction}/login/verify`, 200, {
      json: assertion,
      headers: json,
    });
    time('verify', performance.now() - t);

    t = performance.now();
    const redirect = new URL((JSON.parse(verify.body) as { redirect: string }).redirect, this.target.issuer);
    const code = await this.resumeToCode(jar, redirect.pathname + redirect.search, state);
    time('resume', performance.now() - t);

    const basic = Buffer.from(
      `${encodeURIComponent(this.target.clientId)}:${encodeURIComponent(this.target.clientSecret)}`,
    ).toString('base64');
    t = performance.now();
    const token = await send(
      this.base,
      'POST',
      '/token',
      { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: this.target.redirectUri,
        code_verifier: verifier,
      }).toString(),
    );
    time('token', performance.now() - t);
    if (token.status !== 200) throw new StepError('token', token.status, token.body);
    const tokens = JSON.parse(token.body) as { access_token?: string; id_token?: string };
    if (!tokens.access_token || !tokens.id_token) throw new StepError('token', 200, 'no access or ID token');

    t = performance.now();
    const userinfo = await send(this.base, 'GET', '/me', { authorization: `Bearer ${tokens.access_token}` });
    time('userinfo', performance.now() - t);
    if (userinfo.status !== 200 || !userinfo.body.includes(this.email)) {
      throw new StepError('userinfo', userinfo.status, userinfo.body);
    }
  }
}

/** The options the login page carries for its passkey autofill. */
function passkeyOptionsOf(page: Reply): PublicKeyCredentialRequestOptionsJSON {
  const options = passkeyOptionsIn(page.body);
  if (!options) throw new StepError('login_page', page.status, 'no passkey options on the login page');
  return options;
}

function csrfOf(page: Reply): string {
  const match = /<meta name="csrf-token" content="([^"]+)"/.exec(page.body);
  if (!match) throw new StepError('csrf', page.status, 'no csrf-token meta on the page');
  return match[1]!;
}
