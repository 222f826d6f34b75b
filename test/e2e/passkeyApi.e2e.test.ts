import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as jose from 'jose';
import type { Browser, Page } from 'playwright-core';
import { passkeyTenantCredentialsQueries } from '../../src/db/queries/passkeyTenantCredentials.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { ROOT } from '../../src/paths.js';
import { closeWithin, SESAME_STOP_MS } from '../support/boundedClose.js';
import {
  describeBrowser,
  newPasskeyContext,
  type PasskeyContext,
  watchPageProblems,
} from '../support/chromium.js';
import { closeBrowser, launchBrowser } from '../support/chromiumLifecycle.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const STEP_TIMEOUT = 15_000;
const BROWSER_LIB = path.join(ROOT, 'node_modules', '@simplewebauthn', 'browser', 'esm');

/**
 * The app's page script, served as a file (the page's CSP allows no inline script). It runs
 * the ceremony with @simplewebauthn/browser: registration and sign-in by user id through the
 * app's own server (which holds the API key), usernameless sign-in straight against Sesame
 * from the browser (CORS), the token then checked by the app's server.
 */
const APP_SCRIPT = `
import { startAuthentication, startRegistration } from '/swa/index.js';

const passkeyApi = document.body.dataset.passkeyApi;
const status = document.getElementById('status');
const username = document.getElementById('username');

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(json.details || json.error || String(response.status));
  return json;
}

function on(id, run) {
  document.getElementById(id).addEventListener('click', async () => {
    status.textContent = 'Working';
    try {
      status.textContent = await run();
    } catch (error) {
      status.textContent = 'Error: ' + error.message;
    }
  });
}

on('register', async () => {
  const { publicKey } = await post('/api/register/start', { username: username.value });
  const credential = await startRegistration({ optionsJSON: publicKey });
  const { user_id } = await post('/api/register/finish', credential);
  return 'Registered ' + user_id;
});

// Usernameless, straight to Sesame: the tutorials' empty body with a JSON content type.
on('signin-direct', async () => {
  const { publicKey } = await post(passkeyApi + '/login/initialize');
  const assertion = await startAuthentication({ optionsJSON: publicKey });
  const { token } = await post(passkeyApi + '/login/finalize', assertion);
  const { user_id } = await post('/api/session', { token });
  return 'Signed in as ' + user_id;
});

// Through the app's server, by user id when one is typed (that needs the API key).
on('signin-server', async () => {
  const { publicKey } = await post('/api/login/start', username.value ? { user_id: username.value } : {});
  const assertion = await startAuthentication({ optionsJSON: publicKey });
  const { user_id } = await post('/api/login/finish', assertion);
  return 'Signed in as ' + user_id;
});
`;

interface PasskeyApp {
  origin: string;
  close(): Promise<void>;
}

/**
 * A small app on its own origin that uses Sesame's passkey API as it would use Hanko's: the
 * API key stays on this server; tokens are verified with the tenant's JWKS.
 */
async function startPasskeyApp(options: {
  sesameOrigin: string;
  /** `${ISSUER}/passkey-api/${tenant_id}`, filled in once the tenant exists. */
  tenantUrl: () => string;
  apiKey: () => string | undefined;
}): Promise<PasskeyApp> {
  let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;

  async function sesame(pathname: string, body: unknown, withKey: boolean) {
    const key = options.apiKey();
    const response = await fetch(`${options.tenantUrl()}${pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(withKey && key && { apikey: key }) },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }

  async function verifiedUser(token: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    jwks ??= jose.createRemoteJWKSet(new URL(`${options.tenantUrl()}/.well-known/jwks.json`));
    try {
      const { payload } = await jose.jwtVerify(String(token), jwks, {
        issuer: options.tenantUrl(),
        audience: 'localhost',
      });
      return { status: 200, json: { user_id: payload.sub } };
    } catch (error) {
      return { status: 401, json: { error: (error as Error).message } };
    }
  }

  async function route(method: string, pathname: string, body: Record<string, unknown>) {
    if (method === 'POST' && pathname === '/api/register/start') {
      return sesame('/registration/initialize', { user_id: body.username, username: body.username }, true);
    }
    if (method === 'POST' && pathname === '/api/login/start') return sesame('/login/initialize', body, true);
    if (method === 'POST' && (pathname === '/api/register/finish' || pathname === '/api/login/finish')) {
      const finalize = pathname === '/api/register/finish' ? '/registration/finalize' : '/login/finalize';
      const result = await sesame(finalize, body, false);
      return result.status === 200 ? verifiedUser(result.json.token) : result;
    }
    if (method === 'POST' && pathname === '/api/session') return verifiedUser(body.token);
    return undefined;
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    const csp = `default-src 'none'; script-src 'self'; connect-src 'self' ${options.sesameOrigin}`;
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp });
      res.end(
        `<!doctype html><html lang="en"><head><title>Notes</title>` +
          `<script type="module" src="/app.js"></script></head>` +
          `<body data-passkey-api="${options.tenantUrl()}"><label>Username <input id="username"></label>` +
          `<button id="register">Create a passkey</button>` +
          `<button id="signin-direct">Sign in with a passkey</button>` +
          `<button id="signin-server">Sign in through the app</button>` +
          `<p id="status" role="status"></p></body></html>`,
      );
      return;
    }
    if (req.method === 'GET' && url.pathname === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(APP_SCRIPT);
      return;
    }
    // The library's own ES modules, as a bundler-less app would serve them.
    const lib = /^\/swa\/([a-zA-Z0-9/]+\.js)$/.exec(url.pathname);
    if (req.method === 'GET' && lib) {
      const file = path.join(BROWSER_LIB, lib[1]!);
      if (!file.startsWith(BROWSER_LIB + path.sep) || !fs.existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(fs.readFileSync(file));
      return;
    }
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const result = await route(req.method ?? 'GET', url.pathname, raw ? JSON.parse(raw) : {});
    if (!result) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(result.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(result.json));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://localhost:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describeBrowser('the passkey API from a page on the app’s own origin, in Chromium', () => {
  let sesame: TestApp;
  let browser: Browser;
  let app: PasskeyApp;
  /** Another site on the same registrable domain (localhost), not among the tenant's origins. */
  let lookalike: PasskeyApp;
  let tenantUrl = '';
  let apiKey = '';
  let tenantId = '';
  let device: PasskeyContext;
  let problems: string[];

  beforeAll(async () => {
    [sesame, browser] = await Promise.all([startTestApp(), launchBrowser()]);
    app = await startPasskeyApp({
      sesameOrigin: sesame.baseUrl,
      tenantUrl: () => tenantUrl,
      apiKey: () => apiKey,
    });
    lookalike = await startPasskeyApp({
      sesameOrigin: sesame.baseUrl,
      tenantUrl: () => tenantUrl,
      apiKey: () => undefined,
    });
    const created = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Notes', origins: [app.origin] },
      'test',
    );
    tenantId = created.tenant.id;
    apiKey = created.apiKey;
    tenantUrl = `${sesame.baseUrl}/passkey-api/${tenantId}`;
    expect(created.tenant.rpId).toBe('localhost');
    device = await newPasskeyContext(browser);
    device.page.setDefaultTimeout(STEP_TIMEOUT);
    problems = watchPageProblems(device.page);
  });

  afterAll(async () => {
    await closeBrowser(browser);
    await closeWithin('app close', () => app?.close());
    await closeWithin('lookalike app close', () => lookalike?.close());
    await closeWithin('Sesame stop', () => sesame?.stop(), { ms: SESAME_STOP_MS });
  });

  /** Clicks a button and returns the status line once the script has written its outcome. */
  async function outcome(page: Page, button: string, username = ''): Promise<string> {
    await page.getByLabel('Username').fill(username);
    await page.getByRole('button', { name: button }).click();
    await page.waitForFunction(() => {
      const text = document.getElementById('status')?.textContent ?? '';
      return text !== '' && text !== 'Working';
    });
    return (await page.getByRole('status').textContent()) ?? '';
  }

  it('registers a passkey through the app’s server and signs in with it, usernameless, straight against Sesame', async () => {
    const { page } = device;
    await page.goto(app.origin);
    expect(await outcome(page, 'Create a passkey', 'alice')).toBe('Registered alice');
    expect(await outcome(page, 'Sign in with a passkey')).toBe('Signed in as alice');

    const stored = await passkeyTenantCredentialsQueries.listForUser(sesame.db, tenantId, 'alice');
    expect(stored).toHaveLength(1);
    expect(stored[0]!.lastUsedAt).not.toBeNull();
    const { credentials } = await device.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: device.authenticatorId,
    });
    expect(credentials).toEqual([expect.objectContaining({ rpId: 'localhost', isResidentCredential: true })]);
    expect(problems).toEqual([]);
  });

  it('signs in a second user by user id through the app’s server', async () => {
    const { page } = device;
    await page.goto(app.origin);
    expect(await outcome(page, 'Create a passkey', 'bob')).toBe('Registered bob');
    expect(await outcome(page, 'Sign in through the app', 'bob')).toBe('Signed in as bob');
    expect(await outcome(page, 'Sign in through the app', 'alice')).toBe('Signed in as alice');
    expect(problems).toEqual([]);
  });

  it('gives a look-alike site on the same domain neither CORS access nor a token for its assertions', async () => {
    const credentialsNow = async () => [
      ...(await passkeyTenantCredentialsQueries.listForUser(sesame.db, tenantId, 'alice')),
      ...(await passkeyTenantCredentialsQueries.listForUser(sesame.db, tenantId, 'bob')),
    ];
    const before = await credentialsNow();
    const { page } = device;
    await page.goto(lookalike.origin);
    // The browser refuses to let the page read Sesame's answers: its origin is not the tenant's.
    expect(await outcome(page, 'Sign in with a passkey')).toMatch(/^Error: Failed to fetch/);
    // Its own server can relay the ceremony, and the passkey (RP ID localhost) answers, but
    // the assertion names the look-alike origin, so Sesame refuses it.
    expect(await outcome(page, 'Sign in through the app')).toMatch(
      /^Error: The passkey could not be verified/,
    );
    expect(await credentialsNow()).toEqual(before);
  });
});
