import type { Context, Next } from 'koa';
import {
  API_KEY_SCOPE_REACH,
  type ApiKeyScope,
  type ApiKeyView,
  apiKeyScopeAllows,
  authenticateApiKey,
  recordApiKeyUse,
} from '../../admin/apiKeys.js';
import type { Db } from '../../db/connect.js';
import { HttpError } from '../errors.js';

declare module 'koa' {
  interface DefaultState {
    apiKey?: ApiKeyView;
  }
}

/** RFC 6750 §3: a 401 names the scheme, and `invalid_token` when a key was presented but refused. */
function refuse(ctx: Context, presented: boolean): never {
  ctx.set(
    'WWW-Authenticate',
    presented ? 'Bearer realm="sesame", error="invalid_token"' : 'Bearer realm="sesame"',
  );
  throw new HttpError(
    401,
    presented ? 'invalid_token' : 'unauthorized',
    presented ? 'The API key is unknown or revoked' : 'Send an API key as "Authorization: Bearer <key>"',
  );
}

/**
 * RFC 6750 §3.1: a valid key whose scope does not reach this route is a 403
 * `insufficient_scope` naming the scope needed, so the operator sees which key to use.
 */
function refuseScope(ctx: Context, held: ApiKeyScope, needed: ApiKeyScope): never {
  ctx.set('WWW-Authenticate', `Bearer realm="sesame", error="insufficient_scope", scope="${needed}"`);
  throw new HttpError(
    403,
    'insufficient_scope',
    `This API key's scope is ${held} (${API_KEY_SCOPE_REACH[held]}); this needs a key with scope ${needed}`,
  );
}

/**
 * Admits requests that carry an active API key whose scope reaches `needed` as a bearer
 * token. It runs before the body is read, so a caller without such a key cannot make the
 * server parse anything. The audit actor for what follows is `api-key:<id>`.
 */
export function requireApiKey(db: Db, needed: ApiKeyScope) {
  return async function checkApiKey(ctx: Context, next: Next) {
    const header = ctx.get('authorization');
    if (!header) refuse(ctx, false);
    const match = /^Bearer +([^\s]+) *$/i.exec(header);
    if (!match) refuse(ctx, true);
    const apiKey = await authenticateApiKey(db, match[1]!);
    if (!apiKey) refuse(ctx, true);
    if (!apiKeyScopeAllows(apiKey.scope, needed)) refuseScope(ctx, apiKey.scope, needed);
    await recordApiKeyUse(db, apiKey);
    ctx.state.apiKey = apiKey;
    try {
      await next();
    } catch (error) {
      // The key was revoked while the request ran (see withAdminAuthority): RFC 6750 §3 as at the door.
      if (error instanceof HttpError && error.status === 401) {
        ctx.set('WWW-Authenticate', 'Bearer realm="sesame", error="invalid_token"');
      }
      throw error;
    }
  };
}

/** Who the audit log names for a request admitted by {@link requireApiKey}. */
export function apiKeyActor(ctx: Context): string {
  return `api-key:${ctx.state.apiKey!.id}`;
}
