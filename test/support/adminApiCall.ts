import { createApiKey } from '../../src/admin/apiKeys.js';
import type { TestApp } from './testApp.js';

/** An admin API answer; its body parsed when it is JSON. */
export interface AdminApiAnswer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  json: any;
}

/**
 * A POST to `on`'s admin API with `key` as the bearer (null: no Authorization header). `json`
 * goes as a JSON body; `raw` as it is, with `contentType`; neither sends no body.
 */
export async function postToAdminApi(
  on: TestApp,
  key: string | null,
  path: string,
  body: { json?: unknown; raw?: string; contentType?: string } = {},
): Promise<AdminApiAnswer> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const sent = body.json !== undefined ? JSON.stringify(body.json) : body.raw;
  if (sent !== undefined) headers['content-type'] = body.contentType ?? 'application/json';
  const response = await fetch(`${on.baseUrl}/api/admin${path}`, { method: 'POST', headers, body: sent });
  const text = await response.text();
  const isJson = response.headers.get('content-type')?.startsWith('application/json');
  return { status: response.status, headers: response.headers, json: isJson ? JSON.parse(text) : text };
}

/** Admin API keys for a test: one of scope `admin` (with its id, which the audit log names) and one of scope `metrics`. */
export interface TestApiKeys {
  admin: string;
  adminId: string;
  metrics: string;
}

export async function createTestApiKeys(on: TestApp): Promise<TestApiKeys> {
  const admin = await createApiKey(on.db, 'rotations', 'test');
  const metrics = await createApiKey(on.db, 'scraper', 'test', 'metrics');
  return { admin: admin.key, adminId: admin.apiKey.id, metrics: metrics.key };
}

/**
 * Sends the admin API's `path` what it must refuse, and checks each answer: every body of
 * `invalid` is a 400 naming its field (`body` for the whole), malformed JSON a 400, a form a
 * 415, and `valid` a 403 `insufficient_scope` with a key of scope `metrics` and a 401 with none.
 */
export async function expectRefusedPosts(
  on: TestApp,
  keys: TestApiKeys,
  path: string,
  invalid: readonly (readonly [unknown, string])[],
  valid: unknown,
): Promise<void> {
  for (const [json, field] of invalid) {
    const answer = await postToAdminApi(on, keys.admin, path, { json });
    expect({ json, status: answer.status }).toEqual({ json, status: 400 });
    expect(answer.json).toMatchObject({ error: 'invalid_request', fields: { [field]: expect.any(String) } });
  }
  const malformed = await postToAdminApi(on, keys.admin, path, { raw: JSON.stringify(valid).slice(0, -1) });
  expect(malformed.status).toBe(400);
  expect(malformed.json.error).toBe('invalid_request');
  const form = await postToAdminApi(on, keys.admin, path, {
    raw: 'revoke_previous=true',
    contentType: 'application/x-www-form-urlencoded',
  });
  expect(form.status).toBe(415);
  const metrics = await postToAdminApi(on, keys.metrics, path, { json: valid });
  expect(metrics.status).toBe(403);
  expect(metrics.json.error).toBe('insufficient_scope');
  expect(metrics.headers.get('www-authenticate')).toContain('scope="admin"');
  expect((await postToAdminApi(on, null, path, { json: valid })).status).toBe(401);
}

/** The newest audit event of `action` on `on`'s database, to check who the log says did it. */
export function latestAuditEvent(on: TestApp, action: string) {
  return on.db
    .selectFrom('audit_events')
    .selectAll()
    .where('action', '=', action)
    .orderBy('id', 'desc')
    .executeTakeFirstOrThrow();
}
