/**
 * A small relying-party web app for browser tests, built with openid-client as a real app
 * would be: /login starts an authorization code flow with PKCE S256, state and nonce;
 * /callback redeems the code, verifies the ID token (its signature too, against the JWKS),
 * calls userinfo and shows who signed in.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { discoverRp } from './oidcFlow.js';

/** What the app learned from the last completed sign-in. */
export interface RpSignIn {
  /** Claims of the verified ID token. */
  claims: oidc.IDToken;
  userinfo: oidc.UserInfoResponse;
  tokens: oidc.TokenEndpointResponse;
}

export interface RpServer {
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  /** The URL a person opens to sign in: {origin}/login */
  loginUrl: string;
  redirectUri: string;
  postLogoutRedirectUri: string;
  /** The last sign-in that completed, or undefined. */
  readonly lastSignIn: RpSignIn | undefined;
  /** The last error the callback met (an error response or a failed check), or undefined. */
  readonly lastError: Error | undefined;
  close(): Promise<void>;
}

/** Client registration the app needs: called with the app's own URLs once its port is known. */
export type RegisterClient = (urls: {
  redirectUri: string;
  postLogoutRedirectUri: string;
}) => Promise<{ client_id: string; client_secret?: string | undefined }>;

const escapeHtml = (value: unknown) =>
  String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

function page(res: http.ServerResponse, status: number, title: string, body: string) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(
    `<!doctype html><html lang="en"><head><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`,
  );
}

/**
 * Starts the app on a free loopback port, registers it through `register`, and discovers
 * the issuer. `scope` is what /login asks for; /login?prompt=...&ui_locales=... passes them through.
 */
export async function startRpServer(
  issuer: string,
  register: RegisterClient,
  options: { scope?: string } = {},
): Promise<RpServer> {
  const scope = options.scope ?? 'openid email profile';
  // Pending logins by state: what the callback must check the response against.
  const pending = new Map<string, { verifier: string; nonce: string }>();
  let config: oidc.Configuration | undefined;
  let lastSignIn: RpSignIn | undefined;
  let lastError: Error | undefined;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      lastError = error;
      page(res, 500, 'Error', `<h1>Sign-in failed</h1><p id="error">${escapeHtml(error.message)}</p>`);
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', origin);
    if (!config) throw new Error('the app is not configured yet');
    if (url.pathname === '/login') {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      pending.set(state, { verifier, nonce });
      const prompt = url.searchParams.get('prompt');
      const uiLocales = url.searchParams.get('ui_locales');
      const target = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...(prompt && { prompt }),
        ...(uiLocales && { ui_locales: uiLocales }),
      });
      res.writeHead(302, { location: target.toString() });
      res.end();
      return;
    }
    if (url.pathname === '/callback') {
      const state = url.searchParams.get('state') ?? '';
      const expected = pending.get(state);
      if (!expected) throw new Error('unknown state');
      pending.delete(state);
      const tokens = await oidc.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: expected.verifier,
        expectedState: state,
        expectedNonce: expected.nonce,
      });
      const claims = tokens.claims()!;
      const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
      lastSignIn = { claims, userinfo, tokens };
      page(
        res,
        200,
        'Signed in',
        `<h1>Signed in</h1><dl><dt>sub</dt><dd id="sub">${escapeHtml(claims.sub)}</dd>` +
          `<dt>email</dt><dd id="email">${escapeHtml(userinfo.email)}</dd></dl>`,
      );
      return;
    }
    if (url.pathname === '/bye') {
      page(res, 200, 'Signed out', '<h1>Signed out of the app</h1>');
      return;
    }
    page(res, 404, 'Not found', '<h1>Not found</h1>');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const redirectUri = `${origin}/callback`;
  const postLogoutRedirectUri = `${origin}/bye`;

  const client = await register({ redirectUri, postLogoutRedirectUri });
  // Configured as the Jest-driven RP is: ID token signatures are verified against the JWKS.
  ({ config } = await discoverRp(issuer, client, redirectUri));

  return {
    origin,
    loginUrl: `${origin}/login`,
    redirectUri,
    postLogoutRedirectUri,
    get lastSignIn() {
      return lastSignIn;
    },
    get lastError() {
      return lastError;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A page that only answers "the app": a redirect URI for browser tests that need nothing of
 * the app but somewhere to land (Playwright's routing does not see the end of a redirect).
 */
export async function startCallbackPage(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('the app');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/callback`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
