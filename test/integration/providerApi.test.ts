import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { requestLines } from '../support/logLines.js';
import { rawRequest } from '../support/rawRequest.js';
import { SECURITY_HEADERS } from '../support/securityHeaders.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * The provider's API endpoints (token, userinfo, introspection, revocation, PAR) are answered
 * without Sesame's middleware stack in front (src/http/providerApi.ts); they still get from
 * Sesame everything that stack gave them.
 */
describe("the provider's API endpoints, answered in front of Sesame's middleware", () => {
  let sesame: TestApp;
  const lines: string[] = [];
  let basic: string;

  beforeAll(async () => {
    sesame = await startTestApp({}, { log: createLogger('info', (line) => lines.push(line)) });
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Batch', grant_types: ['client_credentials'] },
      'test',
    );
    basic = `Basic ${Buffer.from(`${client.client_id}:${client_secret}`).toString('base64')}`;
  });

  afterAll(() => sesame.stop());

  const form = { 'content-type': 'application/x-www-form-urlencoded' };

  it('carry the security headers of every answer, refusals included', async () => {
    const token = await rawRequest(`${sesame.listenUrl}/token`, {
      method: 'POST',
      headers: { ...form, authorization: basic },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);
    const answers = [
      token,
      await rawRequest(`${sesame.listenUrl}/token`, {
        method: 'POST',
        headers: form,
        body: 'grant_type=client_credentials',
      }),
      await rawRequest(`${sesame.listenUrl}/me`),
      await rawRequest(`${sesame.listenUrl}/token/introspection`, {
        method: 'POST',
        headers: { ...form, authorization: basic },
        body: `token=${JSON.parse(token.text).access_token}`,
      }),
      await rawRequest(`${sesame.listenUrl}/token/revocation`, {
        method: 'POST',
        headers: form,
        body: 'token=x',
      }),
      await rawRequest(`${sesame.listenUrl}/request`, {
        method: 'POST',
        headers: form,
        body: 'client_id=nobody',
      }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([200, 400, 401, 200, 400, 401]);
    const healthz = await rawRequest(`${sesame.listenUrl}/healthz`);
    for (const answer of answers) {
      for (const name of SECURITY_HEADERS)
        expect([name, answer.headers[name]]).toEqual([name, healthz.headers[name]]);
    }
  });

  it('log a line each, with the status sent and the client address Koa reads for any other route', async () => {
    lines.length = 0;
    // Without TRUST_PROXY, what the client writes in X-Forwarded-For is not its address.
    const forged = { 'x-forwarded-for': '203.0.113.7' };
    await rawRequest(`${sesame.listenUrl}/token?from=test`, {
      method: 'POST',
      headers: { ...form, ...forged, authorization: basic },
      body: 'grant_type=client_credentials',
    });
    await rawRequest(`${sesame.listenUrl}/me`, { headers: forged });
    await rawRequest(`${sesame.listenUrl}/healthz`, { headers: forged });
    const requests = requestLines(lines);
    expect(requests.map(({ method, url, status }) => `${method} ${url} ${status}`)).toEqual([
      'POST /token?from=[redacted] 200',
      'GET /me 401',
      'GET /healthz 200',
    ]);
    const [token, me, healthz] = requests.map((line) => line.ip);
    expect([token, me]).toEqual([healthz, healthz]);
    expect(healthz).not.toBe('203.0.113.7');
  });

  it('match their paths exactly, as every other route is matched', async () => {
    const post = (path: string) =>
      rawRequest(`${sesame.listenUrl}${path}`, {
        method: 'POST',
        headers: { ...form, authorization: basic, accept: 'application/json' },
        body: 'grant_type=client_credentials',
      });
    const [upper, slash, query] = [await post('/TOKEN'), await post('/token/'), await post('/token?x=1')];
    expect([upper.status, slash.status, query.status]).toEqual([404, 404, 200]);
    expect(JSON.parse(upper.text)).toMatchObject({ error: 'not_found' });
  });

  it("see the issuer's host, not the one the request names: a DPoP proof for another host's token endpoint is refused", async () => {
    const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
    const jwk = await jose.exportJWK(publicKey);
    const proofFor = (htu: string) =>
      new jose.SignJWT({ htm: 'POST', htu, jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
        .setIssuedAt()
        .sign(privateKey);
    const tokenWith = async (host: string, htu: string) =>
      rawRequest(`${sesame.listenUrl}/token`, {
        method: 'POST',
        headers: { ...form, authorization: basic, host, dpop: await proofFor(htu) },
        body: 'grant_type=client_credentials',
      });

    const forged = await tokenWith('evil.example', 'http://evil.example/token');
    expect(forged.status).toBe(400);
    expect(JSON.parse(forged.text)).toMatchObject({ error: 'invalid_dpop_proof' });
    const bound = await tokenWith('evil.example', `${sesame.baseUrl}/token`);
    expect(bound.status).toBe(200);
    expect(JSON.parse(bound.text)).toMatchObject({ token_type: 'DPoP' });
  });
});

describe('with TRUST_PROXY, the API endpoints name the address the proxies wrote', () => {
  it('logs the right-most X-Forwarded-For entry for a token request, as for any other request', async () => {
    const lines: string[] = [];
    const sesame = await startTestApp(
      { TRUST_PROXY: 'true' },
      { log: createLogger('info', (line) => lines.push(line)) },
    );
    try {
      const headers = { 'x-forwarded-for': '198.51.100.4, 203.0.113.7' };
      await rawRequest(`${sesame.listenUrl}/token`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      await rawRequest(`${sesame.listenUrl}/healthz`, { headers });
      const ips = requestLines(lines).map((line) => `${line.url} ${line.ip}`);
      expect(ips).toEqual(['/token 203.0.113.7', '/healthz 203.0.113.7']);
    } finally {
      await sesame.stop();
    }
  });
});
