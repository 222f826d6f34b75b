import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { tenant as hankoTenant, type Tenant } from '@teamhanko/passkeys-sdk';
import * as jose from 'jose';
import type { Page } from 'playwright-core';
import { passkeyTenantCredentialsQueries } from '../../src/db/queries/passkeyTenantCredentials.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { ROOT } from '../../src/paths.js';
import { closeWithin } from '../support/boundedClose.js';
import { browserScenario, type Device } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';

const STEP_TIMEOUT = 15_000;
/** `@github/webauthn-json`'s ES module, served as is, the way Hanko's example frontends load the library. */
const WEBAUTHN_JSON = path.join(
  ROOT,
  'node_modules',
  '@github',
  'webauthn-json',
  'dist',
  'esm',
  'webauthn-json.js',
);

/**
 * The app's page script (a file: the page's CSP allows no inline script). As in Hanko's
 * example frontends, it passes the server's options to webauthn-json's `create`/`get` and
 * posts the JSON they return; the app's server talks to the passkey API with the API key.
 */
const APP_SCRIPT = `
import { create, get } from '/webauthn-json.js';

const status = document.getElementById('status');
const username = document.getElementById('username');

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(json.error || String(response.status));
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

on('passkey', async () => {
  const options = await post('/api/passkey/start', { username: username.value });
  const { user_id } = await post('/api/passkey/finish', await create(options));
  return 'Passkey for ' + user_id;
});

on('mfa-register', async () => {
  const options = await post('/api/mfa/register/start', { username: username.value });
  const { user_id } = await post('/api/mfa/register/finish', { username: username.value, credential: await create(options) });
  return 'Security key for ' + user_id;
});

on('mfa-login', async () => {
  const options = await post('/api/mfa/login/start', { username: username.value });
  const { user_id } = await post('/api/mfa/login/finish', { username: username.value, credential: await get(options) });
  return 'Second factor verified for ' + user_id;
});

on('pay', async () => {
  const options = await post('/api/pay/start', { username: username.value, amount: 25 });
  const { user_id, trans } = await post('/api/pay/finish', await get(options));
  return 'Payment ' + trans + ' approved by ' + user_id;
});
`;

interface ShopApp {
  origin: string;
  close(): Promise<void>;
}

/**
 * A shop on its own origin using Sesame as it would use Hanko: Hanko's SDK for registration
 * and MFA (its `user(id).mfa.*`), plain HTTP for transactions (the SDK has none), every
 * token checked against the tenant's JWKS.
 */
async function startShop(options: {
  hanko: () => Tenant;
  tenantUrl: () => string;
  apiKey: () => string;
}): Promise<ShopApp> {
  let paymentCount = 0;

  async function verified(token: string): Promise<jose.JWTPayload> {
    const jwks = jose.createLocalJWKSet((await options.hanko().jwks()) as jose.JSONWebKeySet);
    return (await jose.jwtVerify(token, jwks, { audience: 'localhost', algorithms: ['RS256'] })).payload;
  }

  async function passkeyApi(pathname: string, body: unknown): Promise<Record<string, unknown>> {
    const response = await fetch(`${options.tenantUrl()}${pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: options.apiKey() },
      body: JSON.stringify(body),
    });
    const json = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new Error(`passkey API ${response.status}: ${JSON.stringify(json)}`);
    return json;
  }

  // biome-ignore lint/suspicious/noExplicitAny: webauthn-json output goes to the SDK as the browser produced it
  async function route(pathname: string, body: any): Promise<unknown> {
    const hanko = options.hanko();
    switch (pathname) {
      case '/api/passkey/start':
        return hanko.registration.initialize({ userId: body.username, username: body.username });
      case '/api/passkey/finish':
        return { user_id: (await verified((await hanko.registration.finalize(body)).token!)).sub };
      case '/api/mfa/register/start':
        return hanko.user(body.username).mfa.registration.initialize({ username: body.username });
      case '/api/mfa/register/finish':
        return {
          user_id: (
            await verified(
              (
                await hanko.user(body.username).mfa.registration.finalize(body.credential)
              ).token!,
            )
          ).sub,
        };
      case '/api/mfa/login/start':
        return hanko.user(body.username).mfa.login.initialize();
      case '/api/mfa/login/finish':
        return {
          user_id: (
            await verified((await hanko.user(body.username).mfa.login.finalize(body.credential)).token!)
          ).sub,
        };
      case '/api/pay/start':
        paymentCount += 1;
        return passkeyApi('/transaction/initialize', {
          user_id: body.username,
          transaction_id: `pay-${paymentCount}`,
          transaction_data: { amount: body.amount, currency: 'EUR' },
        });
      case '/api/pay/finish': {
        const claims = await verified(String((await passkeyApi('/transaction/finalize', body)).token));
        return { user_id: claims.sub, trans: claims.trans };
      }
      default:
        return undefined;
    }
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://shop');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'",
      });
      res.end(
        `<!doctype html><html lang="en"><head><title>Shop</title>` +
          `<script type="module" src="/app.js"></script></head>` +
          `<body><label>Username <input id="username"></label>` +
          `<button id="passkey">Create a passkey</button>` +
          `<button id="mfa-register">Add a security key</button>` +
          `<button id="mfa-login">Verify with the security key</button>` +
          `<button id="pay">Approve the payment</button>` +
          `<p id="status" role="status"></p></body></html>`,
      );
      return;
    }
    if (req.method === 'GET' && (url.pathname === '/app.js' || url.pathname === '/webauthn-json.js')) {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(url.pathname === '/app.js' ? APP_SCRIPT : fs.readFileSync(WEBAUTHN_JSON));
      return;
    }
    let raw = '';
    for await (const chunk of req) raw += chunk;
    try {
      const result =
        req.method === 'POST' ? await route(url.pathname, raw ? JSON.parse(raw) : {}) : undefined;
      if (result === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(result));
    } catch (error) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (error as Error).message }));
    }
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

describeBrowser("Hanko's MFA and transactions from a page with @github/webauthn-json, in Chromium", () => {
  // The scenario checks after each test that the shop's page met no CSP violation or script error.
  const scenario = browserScenario({ stepTimeout: STEP_TIMEOUT });
  let shop: ShopApp;
  let tenantId = '';
  let apiKey = '';
  let hanko: Tenant;
  let device: Device;

  beforeAll(async () => {
    const { sesame } = scenario;
    shop = await startShop({
      hanko: () => hanko,
      tenantUrl: () => `${sesame.baseUrl}/passkey-api/${tenantId}`,
      apiKey: () => apiKey,
    });
    const created = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Shop', origins: [shop.origin] },
      'test',
    );
    tenantId = created.tenant.id;
    apiKey = created.apiKey;
    hanko = hankoTenant({ baseUrl: `${sesame.baseUrl}/passkey-api/`, apiKey, tenantId });
    device = await scenario.device();
  });

  afterAll(() => closeWithin('shop close', () => shop?.close()));

  async function outcome(page: Page, button: string, username: string): Promise<string> {
    await page.getByLabel('Username').fill(username);
    await page.getByRole('button', { name: button }).click();
    await page.waitForFunction(() => {
      const text = document.getElementById('status')?.textContent ?? '';
      return text !== '' && text !== 'Working';
    });
    return (await page.getByRole('status').textContent()) ?? '';
  }

  it('approves a payment with a passkey: the token names the transaction', async () => {
    const { page } = device;
    await page.goto(shop.origin);
    expect(await outcome(page, 'Create a passkey', 'tom')).toBe('Passkey for tom');
    expect(await outcome(page, 'Approve the payment', 'tom')).toBe('Payment pay-1 approved by tom');
    const listed = await fetch(`${scenario.sesame.baseUrl}/passkey-api/${tenantId}/transaction/tom`, {
      headers: { apikey: apiKey },
    });
    expect(await listed.json()).toEqual([
      expect.objectContaining({ identifier: 'pay-1', data: '{"amount":25,"currency":"EUR"}' }),
    ]);
  });

  it('registers a USB security key without a PIN as a second factor and verifies with it', async () => {
    // A roaming key next to the laptop's built-in authenticator; MFA asks for cross-platform.
    const { authenticatorId: securityKey } = await device.cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: false,
        hasUserVerification: false,
        automaticPresenceSimulation: true,
      },
    });
    const { page } = device;
    await page.goto(shop.origin);
    expect(await outcome(page, 'Add a security key', 'mia')).toBe('Security key for mia');
    const [stored] = await passkeyTenantCredentialsQueries.listForUser(scenario.sesame.db, tenantId, 'mia');
    // Direct attestation, as Hanko's MFA default asks: the key's attestation statement is kept.
    expect(stored).toMatchObject({ isMfa: true, attestationType: 'packed' });
    const { credentials } = await device.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: securityKey,
    });
    expect(credentials).toEqual([expect.objectContaining({ isResidentCredential: false })]);

    expect(await outcome(page, 'Verify with the security key', 'mia')).toBe('Second factor verified for mia');
    const [used] = await passkeyTenantCredentialsQueries.listForUser(scenario.sesame.db, tenantId, 'mia');
    expect(used!.lastUsedAt).not.toBeNull();
    // The key is no passkey: it cannot approve a payment.
    expect(await outcome(page, 'Approve the payment', 'mia')).toMatch(/^Error: passkey API 400/);
  });
});
