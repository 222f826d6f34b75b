import fs from 'node:fs';
import path from 'node:path';
import * as jose from 'jose';
import * as openidClient from 'openid-client';
import { createClient } from '../../src/oidc/clients.js';
import { allowMachineClient, createResource } from '../../src/oidc/resources.js';
import { ROOT } from '../../src/paths.js';
import { Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** The first ```js block after `heading` in `file` (README.md by default), as a reader would copy it. */
function readmeBlock(heading: string, file = 'README.md'): string {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const at = text.indexOf(heading);
  if (at === -1) throw new Error(`${file} has no "${heading}"`);
  const match = /```js\n([\s\S]*?)```/.exec(text.slice(at));
  if (!match) throw new Error(`${file} has no js block after "${heading}"`);
  return match[1]!;
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
  ...args: string[]
) => (...values: unknown[]) => Promise<unknown>;

describe("README's openid-client snippet, run as pasted against a local Sesame on http", () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  /** The browser's round trip the snippet's comment stands for: a person signs up and returns to the app. */
  const signsUp = (redirectUri: string, email: string, name: string) => async (url: URL) => {
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(await person.open(url.href), email, name);
    return person.continueToApp(next, redirectUri);
  };

  it('discovers Sesame, builds the authorization URL, and gets tokens with the claims it names', async () => {
    const snippet = readmeBlock('**Node (openid-client 6)**');
    // The snippet's redirect URI, registered as its `sesame clients create` line does.
    const redirectUri = /redirect_uri: '([^']+)'/.exec(snippet)![1]!;
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [redirectUri] },
      'test',
    );

    // Three edits make it runnable here, and nothing else changes: the import becomes a
    // parameter, the default issuer gets this server's port, and the comment standing for
    // the browser's round trip becomes a person signing up in a browser.
    const lines = snippet.split('\n');
    const importLine = "import * as client from 'openid-client';";
    const redirectComment = lines.findIndex((line) => line.startsWith('// ...redirect to url'));
    expect(lines[0]).toBe(importLine);
    expect(redirectComment).toBeGreaterThan(0);
    expect(snippet).toContain("'http://localhost:3000'");
    lines[0] = '';
    lines[redirectComment] = 'const currentUrl = new URL(await browserSignsUp(url));';
    const body = lines.join('\n').replaceAll("'http://localhost:3000'", `'${sesame.baseUrl}'`);

    const browserSignsUp = signsUp(redirectUri, 'ada@example.com', 'Ada');
    const printed: unknown[] = [];
    const run = new AsyncFunction('client', 'CLIENT_ID', 'CLIENT_SECRET', 'browserSignsUp', 'console', body);
    await run(openidClient, client.client_id, client_secret, browserSignsUp, {
      log: (value: unknown) => printed.push(value),
    });

    expect(printed).toEqual([
      expect.objectContaining({
        iss: sesame.baseUrl,
        sub: expect.any(String),
        email: 'ada@example.com',
        name: 'Ada',
        amr: expect.arrayContaining(['user']),
        auth_time: expect.any(Number),
      }),
    ]);
  });

  it("runs for a public app with the README's change for one (no secret, client.None())", async () => {
    const snippet = readmeBlock('**Node (openid-client 6)**');
    const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const publicCall = /A public app \(`--public`[^)]*\) calls\s+`([^`]+)`/.exec(text)?.[1];
    expect(publicCall).toBe('client.discovery(issuer, CLIENT_ID, undefined, client.None(),');
    const secretCall = 'client.discovery(issuer, CLIENT_ID, CLIENT_SECRET, undefined,';
    expect(snippet.split(secretCall)).toHaveLength(2);
    const redirectUri = /redirect_uri: '([^']+)'/.exec(snippet)![1]!;
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes on the phone', redirect_uris: [redirectUri], public: true },
      'test',
    );
    expect(client_secret).toBeUndefined();

    const lines = snippet.replace(secretCall, publicCall!).split('\n');
    lines[0] = '';
    const redirectComment = lines.findIndex((line) => line.startsWith('// ...redirect to url'));
    lines[redirectComment] = 'const currentUrl = new URL(await browserSignsUp(url));';
    const body = lines.join('\n').replaceAll("'http://localhost:3000'", `'${sesame.baseUrl}'`);
    const browserSignsUp = signsUp(redirectUri, 'grace@example.com', 'Grace');
    const printed: unknown[] = [];
    const run = new AsyncFunction('client', 'CLIENT_ID', 'browserSignsUp', 'console', body);
    await run(openidClient, client.client_id, browserSignsUp, {
      log: (value: unknown) => printed.push(value),
    });
    expect(printed).toEqual([
      expect.objectContaining({ iss: sesame.baseUrl, email: 'grace@example.com', name: 'Grace' }),
    ]);
  });

  it('verifies a JWT access token for a registered API with the API snippet of docs/apps.md (jose and the JWKS alone)', async () => {
    const snippet = readmeBlock('## APIs as resources (RFC 8707)', 'docs/apps.md');
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Worker', redirect_uris: [], grant_types: ['client_credentials'] },
      'test',
    );
    await createResource(sesame.db, { identifier: 'https://api.example', scopes: ['read'] }, 'test');
    await allowMachineClient(sesame.db, 'https://api.example', client.client_id, undefined, 'test');
    const config = await openidClient.discovery(
      new URL(sesame.baseUrl),
      client.client_id,
      client_secret,
      undefined,
      {
        execute: [openidClient.allowInsecureRequests],
      },
    );
    const { access_token } = await openidClient.clientCredentialsGrant(config, {
      resource: 'https://api.example',
      scope: 'read',
    });

    // The import becomes parameters, the issuer this server, and the snippet returns what it verified.
    const lines = snippet.split('\n');
    expect(lines[1]).toBe("import { createRemoteJWKSet, jwtVerify } from 'jose';");
    lines[1] = '';
    const body = `${lines.join('\n').replaceAll('https://sesame.example', sesame.baseUrl)}\nreturn payload;`;
    const run = new AsyncFunction('createRemoteJWKSet', 'jwtVerify', 'token', body);
    const payload = await run(jose.createRemoteJWKSet, jose.jwtVerify, access_token);
    expect(payload).toMatchObject({ aud: 'https://api.example', client_id: client.client_id, scope: 'read' });
    await expect(
      run(jose.createRemoteJWKSet, jose.jwtVerify, `${access_token.slice(0, -4)}AAAA`),
    ).rejects.toThrow();
  });
});
