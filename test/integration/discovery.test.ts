import http from 'node:http';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** A GET with headers fetch will not send (Host), over plain node:http. */
function get(base: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const request = http.get(new URL(path, base), { headers }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
      });
      request.on('error', reject);
    },
  );
}

/** Every URL a discovery document names. */
function urlsIn(document: Record<string, unknown>): string[] {
  return Object.values(document).filter(
    (value): value is string => typeof value === 'string' && /^[a-z]+:\/\//.test(value),
  );
}

describe.each([
  ['off', 'false'],
  ['on', 'true'],
])(
  'discovery with TRUST_PROXY %s names only ISSUER, whatever the request says its host is',
  (_, trustProxy) => {
    let sesame: TestApp;

    beforeAll(async () => {
      sesame = await startTestApp({ TRUST_PROXY: trustProxy });
    });

    afterAll(() => sesame.stop());

    it.each<Record<string, string>>([
      { host: 'evil.example' },
      { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
      { 'x-forwarded-host': 'evil.example:8443, sesame.test', 'x-forwarded-proto': 'https' },
    ])('builds every endpoint from ISSUER for %j', async (headers) => {
      const discovery = await get(sesame.listenUrl, '/.well-known/openid-configuration', headers);
      expect(discovery.status).toBe(200);
      const document = JSON.parse(discovery.body) as Record<string, unknown>;
      expect(document.issuer).toBe(sesame.config.issuer);
      expect(document.token_endpoint).toBe(`${sesame.config.issuer}/token`);
      const urls = urlsIn(document);
      expect(urls.length).toBeGreaterThan(5);
      const issuer = sesame.config.issuer;
      expect(urls.filter((url) => url !== issuer && !url.startsWith(`${issuer}/`))).toEqual([]);
    });

    it('lets caches keep discovery and the JWKS for five minutes', async () => {
      for (const path of ['/.well-known/openid-configuration', '/jwks']) {
        const response = await get(sesame.listenUrl, path, {});
        expect(response.status).toBe(200);
        expect(response.headers['cache-control']).toBe('public, max-age=300');
      }
    });
  },
);
