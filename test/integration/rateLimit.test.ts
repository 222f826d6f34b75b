import { sql } from 'kysely';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { requestLines } from '../support/logLines.js';
import { beginLogin, discoverRp, Person } from '../support/oidcFlow.js';
import { linkPath, onboard } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8906/callback';

let pagesOpened = 0;

/** Opens a login page and returns a function that asks for passkey options there from a given client IP (with the page's uid, CSRF token and browser). */
async function loginOptionsCaller(sesame: TestApp) {
  const { client, client_secret } = await createClient(
    sesame.db,
    { name: 'Notes', redirect_uris: [REDIRECT_URI] },
    'test',
  );
  const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  const person = new Person(sesame.baseUrl);
  // The page is opened from an address of its own: its authorization request and its view are counted.
  person.browser.headers['x-forwarded-for'] = `10.0.0.${++pagesOpened}`;
  const page = await person.open((await beginLogin(rp)).url);
  delete person.browser.headers['x-forwarded-for'];
  const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
  const csrf = page.csrf();
  const call = (ip: string) =>
    person.browser.request(`/interaction/${uid}/login/options`, {
      json: {},
      headers: { accept: 'application/json', 'x-csrf-token': csrf, 'x-forwarded-for': ip },
    });
  return Object.assign(call, { uid, csrf, person });
}

const challengeCount = (sesame: TestApp) => countRows(sesame.db, 'webauthn_challenges');

function expectLimited(response: PageResponse) {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  return retryAfter;
}

describe('RATE_LIMIT_PER_MINUTE: a per-IP limit on passkey ceremonies, the passkey API and one-time links', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    // Behind a proxy, as in production: X-Forwarded-For names the client.
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame.stop());

  it('answers the request over the limit with 429 JSON and Retry-After, and does its work no more', async () => {
    const loginOptions = await loginOptionsCaller(sesame);
    for (let i = 0; i < 5; i++) expect((await loginOptions('198.51.100.1')).status).toBe(200);
    const before = await challengeCount(sesame);

    const refused = await loginOptions('198.51.100.1');
    const retryAfter = expectLimited(refused);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(refused.json()).toEqual({
      error: 'rate_limited',
      error_description: expect.stringContaining('Too many requests'),
      retry_after: retryAfter,
    });
    expect(await challengeCount(sesame)).toBe(before);

    // Another client is not held back by the first one.
    expect((await loginOptions('198.51.100.2')).status).toBe(200);
  });

  it('counts views of the login page, which store the challenge of its autofill', async () => {
    const loginOptions = await loginOptionsCaller(sesame);
    const { uid, person } = loginOptions;
    const view = (ip: string) =>
      person.browser.request(`/interaction/${uid}`, { headers: { 'x-forwarded-for': ip } });
    for (let i = 0; i < 3; i++) expect((await view('192.0.2.77')).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await loginOptions('192.0.2.77')).status).toBe(200);
    const before = await challengeCount(sesame);

    const refused = await view('192.0.2.77');
    expectLimited(refused);
    expect(refused.text).not.toContain('data-passkey-options');
    expect(await challengeCount(sesame)).toBe(before);
  });

  it('counts one-time links and the passkey API against the same limit', async () => {
    const loginOptions = await loginOptionsCaller(sesame);
    for (let i = 0; i < 5; i++) expect((await loginOptions('203.0.113.9')).status).toBe(200);

    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'rl@example.com',
      actor: 'test',
    });
    const visitor = new Person(sesame.baseUrl);
    const linkPage = await visitor.browser.request(linkPath(url), {
      headers: { accept: 'application/json', 'x-forwarded-for': '203.0.113.9' },
    });
    expectLimited(linkPage);
    expect(linkPage.json()).toMatchObject({ error: 'rate_limited' });

    const { tenant } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'App', origins: ['https://app.example'] },
      'test',
    );
    const api = await fetch(`${sesame.listenUrl}/passkey-api/${tenant.id}/login/initialize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
      body: '{}',
    });
    expect(api.status).toBe(429);
    expect(Number(api.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // The passkey API keeps its own (Hanko's) error shape.
    expect(await api.json()).toEqual({
      title: 'Too Many Requests',
      details: expect.any(String),
      status: 429,
    });

    // IPv6 clients are counted by their /64: another address in it shares the count.
    for (let i = 0; i < 5; i++) expect((await loginOptions('2001:db8:1:2::a')).status).toBe(200);
    expectLimited(await loginOptions('2001:db8:1:2:ffff::b'));
    expect((await loginOptions('2001:db8:1:3::a')).status).toBe(200);
  });

  it("counts the passkey API calls of an app's server (its API key) per tenant, and every other per IP", async () => {
    const tenantNamed = (name: string) =>
      createTenant(sesame.db, sesame.config, { name, origins: ['https://shop.example'] }, 'test');
    const [{ tenant, apiKey }, other] = await Promise.all([tenantNamed('Shop'), tenantNamed('Other shop')]);
    const callFrom = (ip: string, init: { key?: string; path?: string } = {}) =>
      fetch(`${sesame.listenUrl}/passkey-api/${tenant.id}${init.path ?? '/credentials?user_id=x'}`, {
        method: init.path ? 'POST' : 'GET',
        headers: {
          'x-forwarded-for': ip,
          ...(init.key && { apikey: init.key }),
          ...(init.path && { 'content-type': 'application/json' }),
        },
        ...(init.path && { body: '{}' }),
      });

    // The app's server is one address for all its users: its keyed calls pass the per-IP limit (5).
    const served = [];
    for (let i = 0; i < 20; i++) served.push((await callFrom('198.51.100.80', { key: apiKey })).status);
    expect(served).toEqual(Array(20).fill(200));

    // Its frontend's calls (no key) from that address are counted per IP as before.
    const login = { path: '/login/initialize' };
    for (let i = 0; i < 5; i++) expect((await callFrom('198.51.100.80', login)).status).toBe(200);
    expect((await callFrom('198.51.100.80', login)).status).toBe(429);
    // And the server's keyed calls go on.
    expect((await callFrom('198.51.100.80', { key: apiKey })).status).toBe(200);

    // A wrong key (guessing) or another tenant's key is no key: limited per IP.
    for (const [ip, key] of [
      ['198.51.100.81', 'spk_wrong'],
      ['198.51.100.82', other.apiKey],
    ] as const) {
      for (let i = 0; i < 5; i++) expect((await callFrom(ip, { key })).status).toBe(401);
      expect((await callFrom(ip, { key })).status).toBe(429);
    }
  });

  /** A GET of `path` (an authorization request, or a login's return to one) from client `ip`. */
  const authorizeFrom = (ip: string, path = '/auth?client_id=unknown&response_type=code&scope=openid') =>
    fetch(`${sesame.listenUrl}${path}`, { redirect: 'manual', headers: { 'x-forwarded-for': ip } });

  it('counts authorization requests (/auth) against the same limit', async () => {
    for (let i = 0; i < 5; i++) expect((await authorizeFrom('192.0.2.44')).status).not.toBe(429);
    expect((await authorizeFrom('192.0.2.44')).status).toBe(429);
  });

  it('counts a form POST to /auth or /session/end, which is sent on as a GET that is counted again', async () => {
    const postFrom = (ip: string, path: string) =>
      fetch(`${sesame.listenUrl}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
        body: 'client_id=unknown&response_type=code&scope=openid',
      });
    for (const [ip, path] of [
      ['192.0.2.50', '/auth'],
      ['192.0.2.51', '/session/end'],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        const posted = await postFrom(ip, path);
        expect({ path, status: posted.status }).toEqual({ path, status: 303 });
      }
      expect((await authorizeFrom(ip, `${path}?client_id=unknown`)).status).not.toBe(429);
      expect((await authorizeFrom(ip, `${path}?client_id=unknown`)).status).not.toBe(429);
      expect((await postFrom(ip, path)).status).toBe(429);
    }
  });

  it("does not count a login's return to /auth/:uid: it continues an authorization request already counted", async () => {
    // Without the signed cookie its authorization request set, a return reads nothing and fails.
    for (let i = 0; i < 7; i++) {
      expect((await authorizeFrom('192.0.2.45', '/auth/not-a-real-interaction')).status).toBe(400);
    }
    for (let i = 0; i < 5; i++) expect((await authorizeFrom('192.0.2.45')).status).not.toBe(429);
    expect((await authorizeFrom('192.0.2.45')).status).toBe(429);
  });

  it('counts every request that stores a row for anyone: PAR, the device request and page, the logout page', async () => {
    const par = (ip: string) =>
      fetch(`${sesame.listenUrl}/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
        body: 'client_id=unknown&response_type=code&scope=openid',
      });
    for (const [ip, call] of [
      ['192.0.2.46', () => par('192.0.2.46')],
      ['192.0.2.47', () => authorizeFrom('192.0.2.47', '/session/end')],
      ['192.0.2.48', () => authorizeFrom('192.0.2.48', '/device')],
    ] as const) {
      for (let i = 0; i < 5; i++)
        expect({ ip, status: (await call()).status }).not.toEqual({ ip, status: 429 });
      expect({ ip, status: (await call()).status }).toEqual({ ip, status: 429 });
    }
  });

  it("answers spellings of the provider's counted paths that the limit does not know with 404, not the provider", async () => {
    for (const path of [
      '/auth/',
      '/AUTH',
      '/device/',
      '/DEVICE',
      '/device/x/',
      '/Session/end',
      '/request/',
    ]) {
      for (let i = 0; i < 7; i++) {
        expect({
          path,
          status: (await authorizeFrom('192.0.2.49', `${path}?client_id=unknown`)).status,
        }).toEqual({
          path,
          status: 404,
        });
      }
    }
  });
});

describe('a visitor nobody signed in to', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  it('gets a stored session that lives as long as an interaction, not 14 days', async () => {
    const before = Date.now();
    for (const path of ['/session/end', '/device']) {
      expect((await fetch(`${sesame.baseUrl}${path}`)).status).toBe(200);
    }
    const sessions = await sesame.db
      .selectFrom('oidc_models')
      .select('expires_at')
      .where('model', '=', 'Session')
      .execute();
    expect(sessions).toHaveLength(2);
    for (const { expires_at } of sessions) {
      expect(new Date(expires_at!).getTime() - before).toBeLessThanOrEqual(31 * 60 * 1000);
    }
  });

  it('keeps the session of someone who signed in for 14 days', async () => {
    const person = new Person(sesame.baseUrl);
    await person.browser.follow(
      await person.signUp(asPage(await person.browser.follow('/account/login')), 'kept@example.com'),
    );
    const rows = await sesame.db
      .selectFrom('oidc_models')
      .select(['expires_at', sql<string | null>`payload->>'accountId'`.as('account')])
      .where('model', '=', 'Session')
      .execute();
    const signedIn = rows.filter((row) => row.account !== null);
    expect(signedIn).toHaveLength(1);
    expect(new Date(signedIn[0]!.expires_at!).getTime() - Date.now()).toBeGreaterThan(13 * 86_400_000);
  });
});

describe("the passkey API's keyed calls: a quota per tenant", () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '1', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame.stop());

  it('refuses a tenant its keyed calls past 100 times RATE_LIMIT_PER_MINUTE a minute, from any address', async () => {
    const tenantNamed = (name: string) =>
      createTenant(sesame.db, sesame.config, { name, origins: ['https://busy.example'] }, 'test');
    const [busy, quiet] = await Promise.all([tenantNamed('Busy app'), tenantNamed('Quiet app')]);
    const listFrom = (ip: string, { tenant, apiKey }: Awaited<ReturnType<typeof createTenant>>) =>
      fetch(`${sesame.listenUrl}/passkey-api/${tenant.id}/credentials`, {
        headers: { 'x-forwarded-for': ip, apikey: apiKey },
      });
    for (let done = 0; done < 100; done += 20) {
      const batch = Array.from({ length: 20 }, (_, i) =>
        listFrom(`198.51.100.${i % 5}`, busy).then((response) => response.status),
      );
      expect(new Set(await Promise.all(batch))).toEqual(new Set([200]));
    }
    const over = await listFrom('198.51.100.9', busy);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Another tenant's server is not held back by it.
    expect((await listFrom('198.51.100.9', quiet)).status).toBe(200);
  });
});

describe('RATE_LIMIT_PER_MINUTE=0', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '0', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame.stop());

  it('turns the limit off', async () => {
    const loginOptions = await loginOptionsCaller(sesame);
    const statuses = [];
    for (let i = 0; i < 40; i++) statuses.push((await loginOptions('198.51.100.1')).status);
    expect(new Set(statuses)).toEqual(new Set([200]));
  });

  it("still refuses the passkey API's keyed calls a wrong key, another app's key or none, which no limiter compared", async () => {
    const tenantNamed = (name: string) =>
      createTenant(sesame.db, sesame.config, { name, origins: ['https://shop.example'] }, 'test');
    const [{ tenant, apiKey }, other] = await Promise.all([tenantNamed('Shop'), tenantNamed('Other shop')]);
    const call = (key: string | undefined, path: string, body?: unknown) =>
      fetch(`${sesame.listenUrl}/passkey-api/${tenant.id}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', ...(key !== undefined && { apikey: key }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    const keyed = [
      ['/credentials', undefined],
      ['/registration/initialize', { user_id: 'u1', username: 'ada' }],
      ['/login/initialize', { user_id: 'u1' }],
    ] as const;
    for (const [path, body] of keyed) {
      for (const key of ['spk_wrong', other.apiKey, `${apiKey}x`, undefined]) {
        const refused = await call(key, path, body);
        expect({ path, key, status: refused.status }).toEqual({ path, key, status: 401 });
      }
    }
    expect((await call(apiKey, '/credentials')).status).toBe(200);
    expect((await call(apiKey, '/registration/initialize', keyed[1][1])).status).toBe(200);
  });
});

describe('TRUST_PROXY: the client is the entry the trusted proxies wrote, not what the client wrote', () => {
  let sesame: TestApp;
  const lines: string[] = [];

  afterEach(() => sesame.stop());

  it('with TRUST_PROXY=true counts the right-most X-Forwarded-For entry, whatever the client puts before it', async () => {
    sesame = await startTestApp(
      { RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: 'true' },
      { log: createLogger('info', (line) => lines.push(line)) },
    );
    const loginOptions = await loginOptionsCaller(sesame);
    for (let n = 1; n <= 5; n++) {
      expect((await loginOptions(`198.51.100.${n}, 203.0.113.7`)).status).toBe(200);
    }
    expectLimited(await loginOptions('198.51.100.6, 203.0.113.7'));
    expectLimited(await loginOptions('203.0.113.7'));
    expect((await loginOptions('203.0.113.7, 203.0.113.8')).status).toBe(200);

    // The request log and the audit log name that same address.
    const logged = requestLines(lines).filter((line) => line.url.endsWith('/login/options'));
    expect(new Set(logged.map((line) => line.ip))).toEqual(new Set(['203.0.113.7', '203.0.113.8']));
    const { key } = await createApiKey(sesame.db, 'ops', 'test');
    const created = await fetch(`${sesame.listenUrl}/api/admin/clients`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        'x-forwarded-for': '192.0.2.66, 203.0.113.9',
      },
      body: JSON.stringify({ name: 'Wiki', redirect_uris: ['https://wiki.example.com/cb'] }),
    });
    expect(created.status).toBe(201);
    const [event] = await auditQueries.recent(sesame.db, 1);
    expect(event).toMatchObject({ action: 'client.create', details: { ip: '203.0.113.9' } });
  });

  it('with TRUST_PROXY=2 counts the second entry from the right', async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: '2' });
    const loginOptions = await loginOptionsCaller(sesame);
    for (let n = 1; n <= 5; n++) {
      expect((await loginOptions(`198.51.100.${n}, 203.0.113.7, 10.0.0.${n}`)).status).toBe(200);
    }
    expectLimited(await loginOptions('198.51.100.6, 203.0.113.7, 10.0.0.1'));
    expect((await loginOptions('203.0.113.7, 203.0.113.8, 10.0.0.1')).status).toBe(200);
  });
});

describe('sign-up attempts are limited per address from one requester and per IP', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    // A per-IP limit far above what the test sends: only the per-address limit can refuse.
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '1000', TRUST_PROXY: 'true' });
    await usersQueries.insert(sesame.db, { email: 'known@example.com', name: null });
  });

  afterAll(() => sesame.stop());

  /** Opens a sign-up page and returns a function that asks for sign-up options there for an address, from an IP. */
  async function signupOptionsCaller() {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    const person = new Person(sesame.baseUrl);
    const page = await person.open((await beginLogin(rp)).url);
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const csrf = (await person.browser.request(`/interaction/${uid}/signup`)).csrf();
    return (email: string, ip: string) =>
      person.browser.request(`/interaction/${uid}/signup/options`, {
        json: { email },
        headers: { accept: 'application/json', 'x-csrf-token': csrf, 'x-forwarded-for': ip },
      });
  }

  /** The 429 a sign-up limit answers: the same body as before, with Retry-After in seconds. */
  function expectRefused(refused: PageResponse) {
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({ error: 'rate_limited' });
    expect(refused.json().error_description).toMatch(/^Too many requests\. Try again in \d+ minutes\.$/);
    return Number(refused.headers.get('retry-after'));
  }

  it('refuses the sixth attempt for one address from one requester within 15 minutes, in any case and from any address of its IPv6 /64', async () => {
    const signupOptions = await signupOptionsCaller();
    for (let n = 1; n <= 5; n++) {
      expect(
        (await signupOptions(n % 2 ? 'New@Example.com' : 'new@example.com', `2001:db8:5:1::${n}`)).status,
      ).toBe(200);
    }
    const before = await challengeCount(sesame);
    // Spellings that the database's lower() takes for the same address count as it.
    for (const spelling of ['NEW@EXAMPLE.COM', 'ｎｅｗ@example.com', 'nEw@exAmple.com']) {
      expect((await signupOptions(spelling, '2001:db8:5:1::78')).status).toBe(429);
    }
    const refused = await signupOptions('NEW@example.com', '2001:db8:5:1:ffff::77');
    const retryAfter = expectRefused(refused);
    expect(retryAfter).toBeGreaterThan(60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(await challengeCount(sesame)).toBe(before);
    // Another address from the same requester is not held back, nor the address from another.
    expect((await signupOptions('other@example.com', '2001:db8:5:1::77')).status).toBe(200);
    expect((await signupOptions('new@example.com', '2001:db8:5:2::1')).status).toBe(200);
  });

  it('counts an address per requester: a stranger who names it until refused, from one IP or several, does not keep its owner from signing up', async () => {
    const signupOptions = await signupOptionsCaller();
    // One stranger, until refused; then four more IPs, five times each.
    for (let n = 1; n <= 5; n++)
      expect((await signupOptions('newhire@example.com', '198.51.100.60')).status).toBe(200);
    expectRefused(await signupOptions('Newhire@example.com', '198.51.100.60'));
    for (let ip = 61; ip <= 64; ip++)
      for (let n = 1; n <= 5; n++)
        expect((await signupOptions('newhire@example.com', `198.51.100.${ip}`)).status).toBe(200);
    // The owner, from their own network, gets the passkey prompt.
    const owner = await signupOptions('newhire@example.com', '203.0.113.200');
    expect(owner.status).toBe(200);
    expect(owner.json()).toMatchObject({ challenge: expect.any(String) });
  });

  it('counts an address with a dotted capital I as the one Postgres lowercases it to', async () => {
    const signupOptions = await signupOptionsCaller();
    for (let n = 1; n <= 5; n++)
      expect((await signupOptions('iris@example.com', '198.51.100.21')).status).toBe(200);
    // JavaScript lowercases İ to i and a combining dot; Postgres to i. One account, one count.
    expect((await signupOptions('İris@example.com', '198.51.100.21')).status).toBe(429);
    expect((await signupOptions('İris@example.com', '198.51.100.22')).status).toBe(200);
  });

  it('keeps no count per address from all requesters together: strangers from many IPs never hold back the next one', async () => {
    const signupOptions = await signupOptionsCaller();
    // Eight strangers, five tries each (as many as their own count lets them), on a taken
    // address and on a free one: each try is answered, and so is the owner's after them.
    for (const [email, answer] of [
      ['known@example.com', 409],
      ['patient@example.com', 200],
    ] as const) {
      const statuses: number[] = [];
      for (let requester = 1; requester <= 8; requester++)
        for (let n = 1; n <= 5; n++)
          statuses.push((await signupOptions(email, `203.0.113.${requester}`)).status);
      expect(statuses).toEqual(Array(40).fill(answer));
      expect((await signupOptions(email, '192.0.2.33')).status).toBe(answer);
    }
  });

  it('refuses the 21st sign-up from one IP within 15 minutes, whatever addresses it names, others have tried them or not', async () => {
    // Each sign-up mails a welcome to the address it names: one IP may not mail strangers at will.
    const signupOptions = await signupOptionsCaller();
    // Four addresses that four other IPs have each named five times: this IP still has its own 5 for each.
    for (let n = 1; n <= 4; n++)
      for (let i = 1; i <= 5; i++)
        expect((await signupOptions(`office${n}@example.com`, `192.0.2.${210 + n}`)).status).toBe(200);
    const ip = '192.0.2.201';
    for (let n = 1; n <= 4; n++)
      for (let i = 1; i <= 5; i++)
        expect((await signupOptions(`office${n}@example.com`, ip)).status).toBe(200);
    const before = await challengeCount(sesame);
    const refused = await signupOptions('stranger21@example.com', ip);
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({ error: 'rate_limited' });
    // A limit of 15 minutes says so; it said "wait a minute".
    expect(refused.json().error_description).toMatch(/^Too many requests\. Try again in 1[45] minutes\.$/);
    expect(await challengeCount(sesame)).toBe(before);
    // Another IP is not held back.
    expect((await signupOptions('stranger21@example.com', '192.0.2.202')).status).toBe(200);
  });
});

describe("the account page's changes are limited per IP, and per account", () => {
  let sesame: TestApp;

  afterEach(() => sesame.stop());

  /** A signed-in person on the account page: `post` sends a change from a given IP. */
  async function accountOf(email: string) {
    const { person, userId } = await onboard(sesame, email, { name: 'Start' });
    const csrf = (await person.browser.request('/account')).csrf();
    const post = (ip: string, path: string, json: unknown, token = csrf) => {
      person.browser.headers['x-forwarded-for'] = ip;
      return person.browser.postJson(path, token, json);
    };
    return { person, userId, post };
  }

  const audited = (sesame: TestApp) => countRows(sesame.db, 'audit_events');

  it('refuses a client IP its account changes past RATE_LIMIT_PER_MINUTE a minute, never its sign-outs', async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: 'true' });
    const { post } = await accountOf('ip-limit@example.com');
    for (let n = 1; n <= 5; n++) {
      expect((await post('198.51.100.40', '/account/profile', { name: `Name ${n}` })).status).toBe(200);
    }
    const before = await audited(sesame);
    expectLimited(await post('198.51.100.40', '/account/profile', { name: 'Flood' }));
    expectLimited(await post('198.51.100.40', '/account/language', { locale: 'de' }));
    expect(await audited(sesame)).toBe(before);
    // The same account from another address is not held back by the first one.
    expect((await post('198.51.100.41', '/account/profile', { name: 'Other' })).status).toBe(200);
    // Signing out is never refused: a neighbour behind the same address could otherwise keep
    // someone signed in on a shared computer.
    expect((await post('198.51.100.40', '/account/logout', {})).status).toBe(302);
    expect((await post('198.51.100.40', '/account/sign-out-everywhere', {})).status).toBe(200);
  });

  it('refuses an account its changes past 30 a minute, whichever addresses they come from', async () => {
    // A per-IP limit far above what the test sends from one address: only the per-account limit can refuse.
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '1000', TRUST_PROXY: 'true' });
    const { post, userId } = await accountOf('account-limit@example.com');
    const [{ id } = { id: '' }] = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', userId)
      .execute();
    // Posts another site forges (no CSRF token) use up none of the person's changes.
    for (let n = 1; n <= 5; n++) {
      expect((await post('192.0.2.1', '/account/profile', { name: 'Forged' }, 'wrong')).status).toBe(403);
    }
    for (let n = 1; n <= 30; n++) {
      const changed = await post(`203.0.113.${n}`, '/account/profile', { name: `Name ${n}` });
      expect({ n, status: changed.status }).toEqual({ n, status: 200 });
    }
    const before = await audited(sesame);
    const refused = await post('203.0.113.99', '/account/profile', { name: 'Flood' });
    expectLimited(refused);
    expect(refused.json()).toMatchObject({ error: 'rate_limited' });
    expectLimited(await post('203.0.113.100', '/account/language', { locale: 'de' }));
    expectLimited(await post('203.0.113.101', `/account/passkeys/${id}/rename`, { name: 'Flood' }));
    expect(await audited(sesame)).toBe(before);
    const { name } = await sesame.db
      .selectFrom('users')
      .select('name')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    expect(name).toBe('Name 30');
    // What protects the account is not counted against it: someone holding a stolen sign-in
    // who used up its changes does not keep the owner from throwing them out.
    expect((await post('203.0.113.102', '/account/sign-out-everywhere', {})).status).toBe(200);

    // Another account, from one of the same addresses, is not held back by the first one.
    const other = await accountOf('account-limit-other@example.com');
    expect((await other.post('203.0.113.99', '/account/profile', { name: 'Fine' })).status).toBe(200);
  });
});
