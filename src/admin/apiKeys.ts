import { z } from 'zod';
import { withAdminAuthority, withAdministrationChange } from '../accounts/adminAuthority.js';
import { randomSecret, secretMatchesHash, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { apiKeysQueries } from '../db/queries/apiKeys.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { usersQueries } from '../db/queries/users.js';
import { API_KEY_SCOPES, type ApiKeyRow, type ApiKeyScope } from '../db/schema.js';
import { shownName } from '../text.js';

/**
 * Every API key starts with this, so secret scanners (GitHub push protection, gitleaks)
 * can recognise a leaked one; the 256 random bits follow.
 */
export const API_KEY_PREFIX = 'ssk_';

const API_KEY_SHAPE = /^ssk_[A-Za-z0-9_-]{43}$/;

export const apiKeyNameSchema = shownName(100);

export { API_KEY_SCOPES, type ApiKeyScope };

const apiKeyScopeSchema = z.enum(API_KEY_SCOPES, { error: `must be one of ${API_KEY_SCOPES.join(', ')}` });

/** What a key of each scope opens, in words for refusals and the admin pages. */
export const API_KEY_SCOPE_REACH: Record<ApiKeyScope, string> = {
  admin: 'the admin API and GET /metrics',
  metrics: 'GET /metrics only',
};

/**
 * Whether a key of scope `held` may be used where `needed` is asked: an `admin` key goes
 * everywhere a key does, a `metrics` key only to GET /metrics.
 */
export function apiKeyScopeAllows(held: ApiKeyScope, needed: ApiKeyScope): boolean {
  return held === 'admin' || held === needed;
}

/** An API key as admins see it: never the key or its hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  /**
   * Who created it: `user:<id>` (an admin, on the API keys page; revoked when that admin is
   * demoted, disabled or deleted), `cli:<name>`, or null for a key older than that record.
   */
  created_by: string | null;
  scope: ApiKeyScope;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const iso = (value: Date | string | null) => (value ? new Date(value).toISOString() : null);

export function apiKeyView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    created_by: row.created_by,
    scope: row.scope,
    created_at: new Date(row.created_at).toISOString(),
    last_used_at: iso(row.last_used_at),
    revoked_at: iso(row.revoked_at),
  };
}

/** Raised when an API key's name or scope breaks a rule; the message starts with the field's name. */
export class ApiKeyValidationError extends Error {
  constructor(
    readonly field: 'name' | 'scope',
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
  }
}

/**
 * Creates an API key for the admin API, of `scope` (`admin` unless told). The key is returned
 * once; only its SHA-256 is stored. It records `actor` as its creator: an admin's keys go when
 * the admin does (see withdrawAdminHandouts).
 */
export async function createApiKey(db: Db, name: unknown, actor: Actor, scope: unknown = 'admin') {
  const parsedName = apiKeyNameSchema.safeParse(name);
  if (!parsedName.success) throw new ApiKeyValidationError('name', parsedName.error.issues[0]!.message);
  const parsedScope = apiKeyScopeSchema.safeParse(scope);
  if (!parsedScope.success) throw new ApiKeyValidationError('scope', parsedScope.error.issues[0]!.message);
  const key = API_KEY_PREFIX + randomSecret();
  const row = await withAdminAuthority(db, actor, async (trx) => {
    const created = await apiKeysQueries.insert(trx, {
      name: parsedName.data,
      keyHash: sha256Hex(key),
      scope: parsedScope.data,
      createdBy: actor,
    });
    await auditQueries.record(trx, actor, 'api_key.create', created.id, {
      name: created.name,
      scope: created.scope,
    });
    return created;
  });
  return { apiKey: apiKeyView(row), key };
}

export async function listApiKeys(db: Db): Promise<ApiKeyView[]> {
  return (await apiKeysQueries.list(db)).map(apiKeyView);
}

/**
 * Who created a key, in words for the admin pages: an admin's email, `CLI (name)`, or
 * `unknown` for a key older than that record.
 */
export async function creatorOf(db: Db, apiKey: Pick<ApiKeyView, 'created_by'>): Promise<string> {
  const createdBy = apiKey.created_by;
  if (createdBy?.startsWith('user:')) {
    const user = await usersQueries.findById(db, createdBy.slice('user:'.length));
    return user ? user.email : 'a deleted account';
  }
  if (createdBy?.startsWith('cli:')) return `CLI (${createdBy.slice('cli:'.length)})`;
  return createdBy ?? 'unknown';
}

export async function findApiKey(db: Db, id: string): Promise<ApiKeyView | undefined> {
  const row = await apiKeysQueries.findById(db, id);
  return row ? apiKeyView(row) : undefined;
}

/**
 * Revokes a key; requests carrying it get 401 from then on, and the unused one-time links it
 * issued (admin invites included) are cancelled with it, as an admin's are when they are
 * demoted (see withdrawAdminHandouts). It runs under the administrators lock, so a request
 * the key was admitted for either lands before the revocation or is refused.
 * @returns the key, `alreadyRevoked` when it was revoked before, and `cancelledLinks`, how
 *   many links were cancelled; or undefined for an unknown id.
 */
export async function revokeApiKey(db: Db, id: string, actor: Actor) {
  return withAdministrationChange(db, actor, async (trx) => {
    const revoked = await apiKeysQueries.revoke(trx, id);
    const row = revoked ?? (await apiKeysQueries.findById(trx, id));
    if (!row) return undefined;
    // Also for a key revoked before: its links outlived it until this was done on revocation.
    const cancelledLinks = await oneTimeTokensQueries.invalidateUnusedCreatedBy(trx, [`api-key:${id}`]);
    if (revoked || cancelledLinks > 0) {
      await auditQueries.record(trx, actor, 'api_key.revoke', id, {
        name: row.name,
        links: cancelledLinks,
        ...(!revoked && { already_revoked: true }),
      });
    }
    return { apiKey: apiKeyView(row), alreadyRevoked: !revoked, cancelledLinks };
  });
}

/**
 * Finds the active key a caller presents. The lookup is by SHA-256, an index hit: the key
 * has 256 random bits, so knowing a hash prefix from timing helps nobody guess a key.
 * Its use is recorded only once the request is admitted ({@link recordApiKeyUse}): a key
 * refused for its scope was not used.
 */
export async function authenticateApiKey(db: Db, presented: string): Promise<ApiKeyView | undefined> {
  if (!API_KEY_SHAPE.test(presented)) return undefined;
  const row = await apiKeysQueries.findActiveByHash(db, sha256Hex(presented));
  if (!row || !secretMatchesHash(presented, row.key_hash)) return undefined;
  return apiKeyView(row);
}

/** Records that a key was accepted for a request: its `last_used_at` (at most once a minute). */
export async function recordApiKeyUse(db: Db, apiKey: Pick<ApiKeyView, 'id'>): Promise<void> {
  await apiKeysQueries.touch(db, apiKey.id);
}
