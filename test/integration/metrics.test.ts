import { createApiKey, findApiKey } from '../../src/admin/apiKeys.js';
import { createClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8900/callback';

/** The value of one series in Prometheus text format, 0 when it has not been written yet. */
function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('GET /metrics (Prometheus)', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let apiKey: string;
  let service: { id: string; secret: string };

  beforeAll(async () => {
    sesame = await startTestApp();
    // The key an operator gives a scraper: it opens /metrics and nothing else.
    ({ key: apiKey } = await createApiKey(sesame.db, 'prometheus', 'test', 'metrics'));
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    const svc = await createClient(sesame.db, { name: 'Batch', grant_types: ['client_credentials'] }, 'test');
    service = { id: svc.client.client_id, secret: svc.client_secret! };
  });

  afterAll(() => sesame.stop());

  const scrape = async () => {
    const response = await fetch(`${sesame.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.text();
  };

  it('refuses a scrape without an API key, or with a wrong one, and shows no numbers', async () => {
    const without = await fetch(`${sesame.baseUrl}/metrics`);
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer realm="sesame"');
    const wrong = await fetch(`${sesame.baseUrl}/metrics`, {
      headers: { authorization: 'Bearer sk_not-a-real-key' },
    });
    expect(wrong.status).toBe(401);
    for (const response of [without, wrong]) expect(await response.text()).not.toContain('sesame_');
  });

  it('serves a metrics key, which the admin API refuses, and an admin key, which opens both', async () => {
    const { key: adminKey } = await createApiKey(sesame.db, 'ops', 'test');
    const get = (path: string, key: string) =>
      fetch(`${sesame.baseUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
    const answers = {
      metricsAtMetrics: (await get('/metrics', apiKey)).status,
      metricsAtClients: (await get('/api/admin/clients', apiKey)).status,
      adminAtMetrics: (await get('/metrics', adminKey)).status,
      adminAtClients: (await get('/api/admin/clients', adminKey)).status,
    };
    expect(answers).toEqual({
      metricsAtMetrics: 200,
      metricsAtClients: 403,
      adminAtMetrics: 200,
      adminAtClients: 200,
    });
  });

  it('records a key as used only where it is accepted, not where its scope is refused', async () => {
    const {
      apiKey: { id },
      key,
    } = await createApiKey(sesame.db, 'second scraper', 'test', 'metrics');
    const refused = await fetch(`${sesame.baseUrl}/api/admin/clients`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(refused.status).toBe(403);
    expect((await findApiKey(sesame.db, id))?.last_used_at).toBeNull();
    const served = await fetch(`${sesame.baseUrl}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(served.status).toBe(200);
    expect((await findApiKey(sesame.db, id))?.last_used_at).toEqual(expect.any(String));
  });

  it('serves process metrics and the database pool gauges to a scraper with an API key', async () => {
    const text = await scrape();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toContain('sesame_db_pool_connections_in_use');
    expect(text).toContain('sesame_db_pool_waiting');
  });

  it('says that row change notifications arrive, so rows are cached', async () => {
    expect(sesame.app.caches.clients.live).toBe(true);
    expect(seriesValue(await scrape(), 'sesame_row_change_listener_up')).toBe(1);
  });

  it('counts a sign-up, a sign-in, a refused passkey and a client_credentials token', async () => {
    const before = await scrape();

    const person = new Person(sesame.baseUrl);
    await person.signUp(await person.open((await beginLogin(rp)).url), 'ada@example.com', 'Ada');

    // A signature that does not verify, then the same person signs in properly.
    const again = person.inNewBrowser();
    const loginPage = await again.open((await beginLogin(rp)).url);
    const uid = /\/interaction\/([^/?#]+)/.exec(loginPage.url)![1]!;
    const csrf = loginPage.csrf();
    const options = await again.browser.postJson(`/interaction/${uid}/login/options`, csrf, {});
    const forged = await again.authenticator.getAssertion(options.json(), again.browser.origin, {
      badSignature: true,
    });
    const refused = await again.browser.postJson(`/interaction/${uid}/login/verify`, csrf, forged);
    expect(refused.status).toBe(400);
    expect(refused.json<{ error: string }>().error).toBe('verification_failed');
    await again.signIn(loginPage);

    const token = await fetch(`${sesame.baseUrl}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${service.id}:${service.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);

    const after = await scrape();
    const moved = (series: string) => seriesValue(after, series) - seriesValue(before, series);
    expect({
      signUps: moved('sesame_sign_ups_total{result="success"}'),
      signIns: moved('sesame_sign_ins_total{result="success"}'),
      failedSignIns: moved('sesame_sign_ins_total{result="failure"}'),
      verificationFailed: moved('sesame_passkey_ceremony_failures_total{reason="verification_failed"}'),
      clientCredentials: moved('sesame_token_grants_total{grant_type="client_credentials",result="success"}'),
      tokenRequests: moved('sesame_http_request_duration_seconds_count{route="/token"}'),
      signInRequests: moved(
        'sesame_http_request_duration_seconds_count{route="/interaction/:uid/login/verify"}',
      ),
    }).toEqual({
      signUps: 1,
      signIns: 1,
      failedSignIns: 1,
      verificationFailed: 1,
      clientCredentials: 1,
      tokenRequests: 1,
      signInRequests: 2,
    });
  });

  it('labels latency by route template, never by the path a caller made up', async () => {
    await fetch(`${sesame.baseUrl}/no-such-page-7f3a9c`);
    await fetch(`${sesame.baseUrl}/auth/made-up-uid-5d21e0`);
    const text = await scrape();
    expect(text).not.toContain('7f3a9c');
    expect(text).not.toContain('5d21e0');
    expect(
      seriesValue(text, 'sesame_http_request_duration_seconds_count{route="unmatched"}'),
    ).toBeGreaterThan(0);
    expect(
      seriesValue(text, 'sesame_http_request_duration_seconds_count{route="/auth/:uid"}'),
    ).toBeGreaterThan(0);
  });
});
