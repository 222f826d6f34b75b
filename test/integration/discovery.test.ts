import http from 'node:http';
import net from 'node:net';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';
import { createClient } from '../../src/oidc/clients.js';
import { SECURITY_HEADERS } from '../support/securityHeaders.js';
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

/** One request sent as raw bytes (a request target fetch and node:http would not send), and the answer's status and body. */
function rawExchange(base: string, head: string) {
  const { hostname, port } = new URL(base);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () =>
      socket.end(`${head}\r\nConnection: close\r\n\r\n`),
    );
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', reject);
    socket.on('end', () =>
      resolve({
        status: Number(answer.slice(9, 12)),
        body: answer.slice(answer.indexOf('\r\n\r\n') + 4),
      }),
    );
  });
}

describe('a request target in absolute form (GET http://host/path)', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  it("is answered as the issuer's: the first discovery after a start, which is kept for everyone, names only ISSUER", async () => {
    const host = new URL(sesame.listenUrl).host;
    const poisoning = await rawExchange(
      sesame.listenUrl,
      `GET http://evil.example/.well-known/openid-configuration HTTP/1.1\r\nHost: ${host}`,
    );
    expect(poisoning.status).toBe(200);
    const issuer = sesame.config.issuer;
    for (const document of [
      JSON.parse(poisoning.body) as Record<string, unknown>,
      (await (await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)).json()) as Record<
        string,
        unknown
      >,
    ]) {
      expect(document.token_endpoint).toBe(`${issuer}/token`);
      expect(urlsIn(document).filter((url) => url !== issuer && !url.startsWith(`${issuer}/`))).toEqual([]);
    }
  });

  it('refuses a target that is neither a path nor an http URL with 400', async () => {
    const host = new URL(sesame.listenUrl).host;
    for (const target of ['evil.example:80/jwks', 'ftp://evil.example/jwks']) {
      const answer = await rawExchange(sesame.listenUrl, `GET ${target} HTTP/1.1\r\nHost: ${host}`);
      expect(answer.status).toBe(400);
    }
  });
});

describe('discovery served as kept bytes', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  it('answers the same document with a strong ETag, a 304 to a matching If-None-Match, and CORS to an Origin', async () => {
    const url = `${sesame.baseUrl}/.well-known/openid-configuration`;
    const rendered = await fetch(url);
    const document = await rendered.text();
    const kept = await fetch(url);
    expect(kept.status).toBe(200);
    expect(await kept.text()).toBe(document);
    expect(kept.headers.get('content-type')).toBe(rendered.headers.get('content-type'));
    expect(kept.headers.get('cache-control')).toBe('public, max-age=300');
    // Answered before the rest of the stack, with the headers every response carries all the same.
    for (const name of SECURITY_HEADERS) {
      expect(kept.headers.get(name)).toBeTruthy();
      expect(kept.headers.get(name)).toBe(rendered.headers.get(name));
    }
    const etag = kept.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]{22}"$/);

    const conditional = await fetch(url, { headers: { 'if-none-match': etag } });
    expect(conditional.status).toBe(304);
    expect(await conditional.text()).toBe('');
    const stale = await fetch(url, { headers: { 'if-none-match': '"not-this-one"' } });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe(document);

    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(etag);

    // A browser app reading discovery across origins still gets the provider's CORS answer.
    const cors = await fetch(url, { headers: { origin: 'https://app.example' } });
    expect(cors.status).toBe(200);
    expect(cors.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(await cors.text()).toBe(document);
  });
});

describe('what discovery advertises', () => {
  let sesame: TestApp;
  let document: Record<string, unknown>;

  beforeAll(async () => {
    sesame = await startTestApp();
    document = await (await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)).json();
  });

  afterAll(() => sesame.stop());

  it('lists the languages of the pages, and only the response type an app can register', () => {
    expect(document.ui_locales_supported).toEqual([...SUPPORTED_LOCALES]);
    expect(document.ui_locales_supported).toEqual(['en', 'de', 'fr', 'es']);
    // `none` is for Sesame's own account pages, which no app can register.
    expect(document.response_types_supported).toEqual(['code']);
  });

  it('lists the client authentication methods of introspection and revocation, and each one works there', async () => {
    const methods = ['none', 'client_secret_basic', 'client_secret_post'];
    expect(document.introspection_endpoint_auth_methods_supported).toEqual(methods);
    expect(document.revocation_endpoint_auth_methods_supported).toEqual(methods);
    const spa = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: ['https://spa.example/cb'], public: true },
      'test',
    );
    const web = await createClient(
      sesame.db,
      { name: 'Web', redirect_uris: ['https://web.example/cb'] },
      'test',
    );
    const webId = web.client.client_id;
    const secret = web.client_secret!;
    /** The form and headers that authenticate a client with `method`, and with it done wrong. */
    const authenticated = (
      method: string,
      right: boolean,
    ): { form: Record<string, string>; headers: Record<string, string> } => {
      const wrong = right ? '' : 'x';
      switch (method) {
        case 'none':
          // A public client that sends a secret does not authenticate as registered.
          return {
            form: { client_id: spa.client.client_id, ...(!right && { client_secret: 'x' }) },
            headers: {},
          };
        case 'client_secret_basic':
          return {
            form: {},
            headers: {
              authorization: `Basic ${Buffer.from(`${webId}:${secret}${wrong}`).toString('base64')}`,
            },
          };
        default:
          return { form: { client_id: webId, client_secret: `${secret}${wrong}` }, headers: {} };
      }
    };
    for (const endpoint of ['introspection', 'revocation']) {
      for (const method of methods) {
        for (const right of [true, false]) {
          const { form, headers } = authenticated(method, right);
          const response = await fetch(`${sesame.baseUrl}/token/${endpoint}`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
            body: new URLSearchParams({ token: 'no-such-token', ...form }).toString(),
          });
          expect({ endpoint, method, right, status: response.status }).toEqual({
            endpoint,
            method,
            right,
            status: right ? 200 : 401,
          });
        }
      }
    }
  });
});
