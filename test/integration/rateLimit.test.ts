import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import type { PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { beginLogin, discoverRp, Person } from '../support/oidcFlow.js';
import { linkPath } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8906/callback';

/** Opens a login page and returns a function that asks for passkey options there from a given client IP. */
async function loginOptionsCaller(sesame: TestApp) {
  const { client, client_secret } = await createClient(
    sesame.db,
    { name: 'Notes', redirect_uris: [REDIRECT_URI] },
    'test',
  );
  const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  const person = new Person(sesame.baseUrl);
  const page = await person.open((await beginLogin(rp)).url);
  const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
  const csrf = page.csrf();
  return (ip: string) =>
    person.browser.request(`/interaction/${uid}/login/options`, {
      json: {},
      headers: { accept: 'application/json', 'x-csrf-token': csrf, 'x-forwarded-for': ip },
    });
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

  it('counts authorization requests (/auth) against the same limit', async () => {
    const authorize = () =>
      fetch(`${sesame.listenUrl}/auth?client_id=unknown&response_type=code&scope=openid`, {
        redirect: 'manual',
        headers: { 'x-forwarded-for': '192.0.2.44' },
      });
    for (let i = 0; i < 5; i++) expect((await authorize()).status).not.toBe(429);
    expect((await authorize()).status).toBe(429);
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
});
