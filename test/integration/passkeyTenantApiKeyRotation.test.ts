import { sha256Hex } from '../../src/crypto.js';
import { createTenant, MAX_PREVIOUS_API_KEY_SECONDS } from '../../src/passkeyApi/tenants.js';
import {
  createTestApiKeys,
  expectRefusedPosts,
  postToAdminApi,
  type TestApiKeys,
} from '../support/adminApiCall.js';
import { asPage } from '../support/browser.js';
import { waitUntil } from '../support/eventually.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { cliJsonOn, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const ORIGIN = 'https://notes.example';
/** Long enough to call with both keys on every instance, even on a busy machine. */
const OVERLAP_SECONDS = 6;

interface Rotation {
  tenant_id: string;
  api_key: string;
  previous_key_expires_at: string | null;
}

describe("rotating a passkey API app's API key with an overlap", () => {
  let sesame: TestApp;
  /** A second instance on the same database (Postgres only: the embedded one has one owner). */
  let other: TestApp | undefined;
  let tenantId: string;
  let firstKey: string;
  let keys: TestApiKeys;

  beforeAll(async () => {
    sesame = await startTestApp();
    if (onPostgres) {
      const { DATABASE_URL, DATABASE_DIRECT_URL } = sesame.env;
      other = await startTestApp({ DATABASE_URL: DATABASE_URL!, DATABASE_DIRECT_URL: DATABASE_DIRECT_URL! });
    }
    const made = await createTenant(sesame.db, sesame.config, { name: 'Notes', origins: [ORIGIN] }, 'test');
    tenantId = made.tenant.id;
    firstKey = made.apiKey;
    keys = await createTestApiKeys(sesame);
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  const instances = () => [sesame, other].filter((a) => a !== undefined);

  /** The status of a keyed call (the tenant's passkeys) with `apiKey`, on one instance. */
  async function keyedCall(apiKey: string, on: TestApp = sesame): Promise<number> {
    const response = await fetch(`${on.baseUrl}/passkey-api/${tenantId}/credentials?user_id=ada`, {
      headers: { apikey: apiKey },
    });
    await response.body?.cancel();
    return response.status;
  }

  /** Which of the keys work, on every instance. */
  async function working(...apiKeys: string[]): Promise<boolean[][]> {
    const answers: boolean[][] = [];
    for (const on of instances()) {
      answers.push(await Promise.all(apiKeys.map(async (key) => (await keyedCall(key, on)) === 200)));
    }
    return answers;
  }
  const onEvery = (...worksByKey: boolean[]) => instances().map(() => worksByKey);

  const storedKeys = () =>
    sesame.db
      .selectFrom('passkey_tenants')
      .select(['api_key_hash', 'previous_api_key_hash', 'previous_api_key_expires_at'])
      .where('id', '=', tenantId)
      .executeTakeFirstOrThrow();

  const rotateKeyEvents = () =>
    sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'passkey_tenant.rotate_key')
      .orderBy('id')
      .execute();

  it('with --keep-previous-for, both keys work on every instance until the old one expires by itself', async () => {
    expect(await working(firstKey)).toEqual(onEvery(true));
    const rotated = await cliJsonOn<Rotation>(sesame, [
      'passkey-api',
      'rotate-key',
      tenantId,
      '--keep-previous-for',
      String(OVERLAP_SECONDS),
    ]);
    expect(rotated).toEqual({
      tenant_id: tenantId,
      api_key: expect.stringMatching(/^spk_/),
      previous_key_expires_at: expect.any(String),
    });
    const expiresAt = Date.parse(rotated.previous_key_expires_at!);
    expect(expiresAt - Date.now()).toBeGreaterThan(0);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(OVERLAP_SECONDS * 1000 + 1000);
    // Both are stored as hashes, never as they are.
    expect(await storedKeys()).toEqual({
      api_key_hash: sha256Hex(rotated.api_key),
      previous_api_key_hash: sha256Hex(firstKey),
      previous_api_key_expires_at: new Date(expiresAt),
    });

    expect(await working(firstKey, rotated.api_key)).toEqual(onEvery(true, true));
    expect(Date.now()).toBeLessThan(expiresAt);

    await waitUntil(async () => (await keyedCall(firstKey)) === 401, (OVERLAP_SECONDS + 5) * 1000);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 1000);
    expect(await working(firstKey, rotated.api_key)).toEqual(onEvery(false, true));
    const event = (await rotateKeyEvents()).at(-1)!;
    expect(event).toMatchObject({
      target: tenantId,
      details: { previous_key_expires_at: rotated.previous_key_expires_at },
    });
    expect(event.actor).toMatch(/^cli:/);
    firstKey = rotated.api_key;
  }, 60_000);

  it('without the flag cuts off the old key at once, and any earlier key still in its overlap', async () => {
    const overlapping = await cliJsonOn<Rotation>(sesame, [
      'passkey-api',
      'rotate-key',
      tenantId,
      '--keep-previous-for',
      '3600',
    ]);
    expect(await working(firstKey, overlapping.api_key)).toEqual(onEvery(true, true));

    const cut = await cliJsonOn<Rotation>(sesame, ['passkey-api', 'rotate-key', tenantId]);
    expect(cut.previous_key_expires_at).toBeNull();
    expect(await working(firstKey, overlapping.api_key, cut.api_key)).toEqual(onEvery(false, false, true));
    expect(await storedKeys()).toEqual({
      api_key_hash: sha256Hex(cut.api_key),
      previous_api_key_hash: null,
      previous_api_key_expires_at: null,
    });
    firstKey = cut.api_key;
  });

  it('refuses a bad --keep-previous-for and an unknown app, changing nothing', async () => {
    const before = await storedKeys();
    for (const [value, message] of [
      ['soon', /expected a whole number of seconds/],
      ['-5', /expected a whole number of seconds|unknown option/],
      [String(MAX_PREVIOUS_API_KEY_SECONDS + 1), /--keep-previous-for: at most/],
    ] as const) {
      const refused = await runCliOn(sesame, [
        'passkey-api',
        'rotate-key',
        tenantId,
        '--keep-previous-for',
        value,
      ]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(message);
    }
    const unknown = await runCliOn(sesame, [
      'passkey-api',
      'rotate-key',
      '00000000-0000-0000-0000-000000000000',
      '--keep-previous-for',
      '60',
    ]);
    expect(unknown).toMatchObject({
      code: 1,
      stderr: 'sesame: no passkey API tenant with id 00000000-0000-0000-0000-000000000000\n',
    });
    expect(await storedKeys()).toEqual(before);
    expect(await working(firstKey)).toEqual(onEvery(true));
  });

  describe('over the admin API (`POST /api/admin/passkey-tenants/{id}/rotate-key`)', () => {
    const rotateOverApi = (json?: unknown, id = tenantId) =>
      postToAdminApi(sesame, keys.admin, `/passkey-tenants/${id}/rotate-key`, { json });

    it('keeps the old key working for keep_previous_for seconds; without a body cuts it off at once', async () => {
      const kept = await rotateOverApi({ keep_previous_for: 3600 });
      expect(kept.status).toBe(200);
      expect(kept.headers.get('cache-control')).toBe('no-store');
      expect(kept.json).toEqual({
        tenant_id: tenantId,
        api_key: expect.stringMatching(/^spk_/),
        previous_key_expires_at: expect.any(String),
      });
      expect(Math.abs(Date.parse(kept.json.previous_key_expires_at) - Date.now() - 3600_000)).toBeLessThan(
        10_000,
      );
      expect(await working(firstKey, kept.json.api_key)).toEqual(onEvery(true, true));
      expect((await rotateKeyEvents()).at(-1)).toMatchObject({
        actor: `api-key:${keys.adminId}`,
        target: tenantId,
        details: { previous_key_expires_at: kept.json.previous_key_expires_at },
      });

      const cut = await rotateOverApi();
      expect(cut.status).toBe(200);
      expect(cut.json).toEqual({
        tenant_id: tenantId,
        api_key: expect.any(String),
        previous_key_expires_at: null,
      });
      expect(await working(firstKey, kept.json.api_key, cut.json.api_key)).toEqual(
        onEvery(false, false, true),
      );
      firstKey = cut.json.api_key;
    });

    it('refuses bad input with 400, an unknown app with 404 and a key without the admin scope with 403, changing nothing', async () => {
      const before = await storedKeys();
      const events = (await rotateKeyEvents()).length;
      await expectRefusedPosts(
        sesame,
        keys,
        `/passkey-tenants/${tenantId}/rotate-key`,
        [
          [{ keep_previous_for: '60' }, 'keep_previous_for'],
          [{ keep_previous_for: -1 }, 'keep_previous_for'],
          [{ keep_previous_for: 1.5 }, 'keep_previous_for'],
          [{ keep_previous_for: MAX_PREVIOUS_API_KEY_SECONDS + 1 }, 'keep_previous_for'],
          [{ keep_previous_for: null }, 'keep_previous_for'],
          [{ keepPreviousFor: 60 }, 'body'],
          [[60], 'body'],
        ],
        { keep_previous_for: 60 },
      );
      for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
        const unknown = await rotateOverApi({ keep_previous_for: 60 }, id);
        expect(unknown.status).toBe(404);
        expect(unknown.json).toEqual({
          error: 'not_found',
          error_description: `No passkey API tenant with id ${id}`,
        });
      }
      expect(await storedKeys()).toEqual(before);
      expect((await rotateKeyEvents()).length).toBe(events);
      expect(await working(firstKey)).toEqual(onEvery(true));
    }, 30_000);
  });

  it('keeps the old key working from the admin page when the confirmation says so', async () => {
    const admin = new Person(sesame.baseUrl);
    const next = await admin.signUp(asPage(await admin.browser.follow('/admin')), 'root@example.com');
    await sesame.db
      .updateTable('users')
      .set({ is_admin: true })
      .where('email', '=', 'root@example.com')
      .execute();
    await admin.browser.follow(next);

    const confirm = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`);
    expect(confirm.status).toBe(200);
    expect(confirm.text).toMatch(
      new RegExp(`action="/admin/passkey-tenants/${tenantId}/rotate-key"[^>]*data-step-up>`),
    );
    expect(confirm.text).toMatch(/name="keep_previous_for" value="0" checked/);
    expect((await stepUp(admin, confirm.csrf())).status).toBe(200);
    const post = (keep: string) =>
      admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`, {
        form: { _csrf: confirm.csrf(), _once: confirm.field('_once'), keep_previous_for: keep },
      });
    // A choice the form does not offer: refused, nothing changes.
    const before = await storedKeys();
    expect((await post('31536000')).status).toBe(400);
    expect(await storedKeys()).toEqual(before);

    const rotated = await post('3600');
    expect(rotated.status).toBe(200);
    const newKey = /id="api-key"[^>]*>([^<]+)</.exec(rotated.text)![1]!.trim();
    expect(rotated.text).toContain('The old key works until');
    expect(await working(firstKey, newKey)).toEqual(onEvery(true, true));
  }, 60_000);
});
