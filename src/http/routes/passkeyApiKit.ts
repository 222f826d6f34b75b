/**
 * The pieces that make the passkey API answer as Hanko's beyond the calls themselves: request
 * ids, the audit log, paging headers, option tweaks and Hanko's `/{tenant_id}` layout at the root.
 */
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import type { z } from 'zod';
import { randomId } from '../../crypto.js';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { type AuditLogEvent, type AuditLogMeta, recordTenantAuditLog } from '../../passkeyApi/auditLog.js';
import { HANKO_TITLES, hankoCause, hankoError, toHankoError } from '../../passkeyApi/errors.js';
import { tenantIssuer } from '../../passkeyApi/jwt.js';
import { paginationLink } from '../../passkeyApi/pagination.js';
import { tenantKeyMatches } from '../../passkeyApi/tenants.js';
import { HttpError } from '../errors.js';
import { keyedRateLimit, passkeyApiKeyedCallsPerTenant } from '../middleware/rateLimit.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';

/** What the passkey API's middleware keeps in `ctx.state` for the audit log. */
export interface AuditState {
  tenant: StoredTenant;
  /** Whether the request's API key is the tenant's, once asked ({@link presentsTenantKey}). */
  apiKeyVerdict?: ApiKeyVerdict | undefined;
  /** Where the request came from, for the tenant's audit log. */
  auditMeta: AuditLogMeta;
  /** The app's user the request acts for, when known: the audit log's `actor_user_id`. */
  auditActor?: string | undefined;
  /** The app's id of the transaction the request signs, when known: the audit log's `transaction_id`. */
  auditTransaction?: string | undefined;
  /** Whether the request was counted against its IP before its tenant was looked up ({@link limitPerIpBeforeTenant}). */
  countedPerIp?: boolean | undefined;
}

/** A request id the client sent (X-Request-Id) is kept when it is a plain token. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** As Hanko (echo's RequestID): every answer carries an X-Request-Id, which the audit log records. */
export async function tagRequest(ctx: Context, next: Next) {
  const presented = ctx.get('X-Request-Id');
  const requestId = REQUEST_ID.test(presented) ? presented : randomId(16);
  ctx.set('X-Request-Id', requestId);
  (ctx.state as AuditState).auditMeta = {
    requestId,
    sourceIp: ctx.ip,
    userAgent: ctx.get('User-Agent'),
  };
  await next();
}

/** Whether `presented` (the `apikey` header) is a key of `tenant`, as decided for this request. */
interface ApiKeyVerdict {
  tenant: StoredTenant;
  presented: string;
  matches: boolean;
}

/**
 * Whether the request's `apikey` header (any case) is a key of the tenant it is for, compared
 * once per request: the rate limiter asks first, the route's key check gets the same answer
 * without hashing the key again. The answer kept is reused only for the very tenant (the
 * object loadTenant put in `ctx.state`) and header it was given for; for any other, or when
 * nothing asked before (rate limits off), the key is compared anew.
 */
export function presentsTenantKey(ctx: Context): boolean {
  const state = ctx.state as AuditState;
  const { tenant, apiKeyVerdict: kept } = state;
  const presented = ctx.get('apikey').trim();
  if (kept?.tenant === tenant && kept.presented === presented) return kept.matches;
  const matches = tenantKeyMatches(tenant, presented);
  state.apiKeyVerdict = { tenant, presented, matches };
  return matches;
}

async function noPasskeyApiRateLimit(_ctx: Context, next: Next) {
  await next();
}

/**
 * The passkey API's per-IP limit before the tenant is looked up: a call without an `apikey`
 * header (the app's frontend), and every preflight, is counted against the caller's IP
 * (`rateLimit`) here, so a flood of calls, to an unknown tenant too, is refused 429 without
 * a lookup each. A call with a key is counted once its tenant is known
 * ({@link limitPerTenantOrIp}, {@link countCallToNoTenant}): the app's server keeps its
 * per-tenant quota. A refusal here comes before the tenant's CORS headers, which need the
 * tenant: a browser sees a failed request rather than the 429.
 */
export function limitPerIpBeforeTenant({ config, rateLimit }: Pick<Services, 'config' | 'rateLimit'>) {
  if (config.rateLimitPerMinute === 0) return noPasskeyApiRateLimit;
  return async function limitPasskeyApiRateBeforeTenant(ctx: Context, next: Next) {
    if (ctx.method !== 'OPTIONS' && ctx.get('apikey').trim() !== '') return next();
    (ctx.state as AuditState).countedPerIp = true;
    return rateLimit(ctx, next);
  };
}

/**
 * A call with an `apikey` header for a tenant that does not exist: no tenant holds that key,
 * so the call is counted against the caller's IP, as a wrong key is, and refused 429 past the
 * limit (each such call still costs its lookup). Nothing for a call counted already.
 */
export function countCallToNoTenant({ config, rateLimit }: Pick<Services, 'config' | 'rateLimit'>) {
  const enabled = config.rateLimitPerMinute > 0;
  return async function countCallToUnknownTenant(ctx: Context): Promise<void> {
    if (enabled && !(ctx.state as AuditState).countedPerIp) await rateLimit(ctx, async () => {});
  };
}

/**
 * The passkey API's rate limit once the tenant is known, for a call not counted before it
 * ({@link limitPerIpBeforeTenant}): a call with the tenant's API key comes from the app's own
 * server and counts against the tenant's quota ({@link passkeyApiKeyedCallsPerTenant}); a
 * wrong key against the caller's IP (`rateLimit`). A right key is never refused for its IP's
 * count, which others behind that address (a NAT, a platform's egress) could use up. With
 * RATE_LIMIT_PER_MINUTE=0 it compares no key: the routes that need one still do.
 */
export function limitPerTenantOrIp({
  config,
  hits,
  rateLimit,
}: Pick<Services, 'config' | 'hits' | 'rateLimit'>) {
  if (config.rateLimitPerMinute === 0) return noPasskeyApiRateLimit;
  const countKeyedCall = keyedRateLimit(passkeyApiKeyedCallsPerTenant(config.rateLimitPerMinute), hits);
  return async function limitPasskeyApiRate(ctx: Context, next: Next) {
    if ((ctx.state as AuditState).countedPerIp) return next();
    if (!presentsTenantKey(ctx)) return rateLimit(ctx, next);
    await countKeyedCall(ctx, (ctx.state as AuditState).tenant.id);
    await next();
  };
}

/**
 * Request options without transports in `allowCredentials`, as Hanko sends them: with
 * `internal` listed, Android and Windows start the built-in authenticator even when the
 * passkey is on another device (Hanko's login service says so).
 */
export function withoutTransports(
  options: PublicKeyCredentialRequestOptionsJSON,
): PublicKeyCredentialRequestOptionsJSON {
  if (!options.allowCredentials) return options;
  return {
    ...options,
    allowCredentials: options.allowCredentials.map(({ transports: _, ...allowed }) => allowed),
  };
}

/** The `sub` of a token Sesame has just signed: the app's user the ceremony was for. */
export const subjectOf = (token: string): string | undefined => decodeJwt(token).sub;

/** The user id an assertion's user handle names (UTF-8, as registration made it), if any. */
export function userHandleOf(handle: string | null | undefined): string | undefined {
  return handle ? Buffer.from(handle, 'base64url').toString('utf8') : undefined;
}

/**
 * Records the request in the tenant's audit log as Hanko does: `event.succeeded`, or
 * `event.failed` with the error, with the user the handler named in `auditActor` (and the
 * transaction in `auditTransaction`).
 */
export function auditedAs(db: Services['db'], event: AuditLogEvent) {
  return async function recordInAuditLog(ctx: Context, next: Next) {
    const state = ctx.state as AuditState;
    try {
      await next();
    } catch (caught) {
      if (event.failed) {
        const error = toHankoError(caught);
        const cause = hankoCause(error);
        await recordTenantAuditLog(db, state.tenant.id, event.failed, state.auditMeta, {
          actor_user_id: state.auditActor,
          transaction_id: state.auditTransaction,
          error: cause ? `${error.message}: ${cause}` : error.message,
        });
      }
      throw caught;
    }
    await recordTenantAuditLog(db, state.tenant.id, event.succeeded, state.auditMeta, {
      actor_user_id: state.auditActor,
      transaction_id: state.auditTransaction,
    });
  };
}

/** The URL of this request under the tenant's base URL (ISSUER, never the Host header), for Link headers. */
export function requestUrl(ctx: Context, config: Services['config'], path: string): URL {
  const url = new URL(`${tenantIssuer(config, (ctx.state as AuditState).tenant.id)}${path}`);
  url.search = ctx.querystring;
  return url;
}

/** The paging headers of Hanko's lists: `Link` and `X-Total-Count`. */
export function setPageHeaders(
  ctx: Context,
  url: URL,
  total: number,
  page: { page: number; perPage: number },
) {
  ctx.set('Link', paginationLink(url, total, page.page, page.perPage));
  ctx.set('X-Total-Count', String(total));
}

/** `/{tenant uuid}/...` at the root: where Hanko serves its API. */
const HANKO_ROOT_PATH = /^\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/.*)?$/i;

/**
 * Serves the passkey API at `/{tenant_id}/...` as well, where Hanko has it. Hanko's next-auth
 * provider builds `new URL(`${tenantId}/...`, baseUrl)`, which drops the last segment of a
 * base URL without a trailing slash (`https://sesame.example/passkey-api` becomes
 * `https://sesame.example/{tenant}/...`): that URL now reaches the same API. No other
 * Sesame path starts with a UUID.
 */
export function passkeyApiAtRoot(ctx: Context, next: Next) {
  const match = HANKO_ROOT_PATH.exec(ctx.path);
  if (match) ctx.path = `/passkey-api/${match[1]}${match[2] ?? ''}`;
  return next();
}

/**
 * A request body by its schema; a refusal in Hanko's words (`title`), our reason as the cause.
 * Where Hanko binds the body before it validates it (`title` is "unable to validate
 * request"), a member of the wrong JSON type (`"user_id": 5`, a body that is an array) fails
 * its binding, which Hanko words "unable to process request"; a missing or empty member, or
 * `null` (Go's decoder leaves the zero value), breaks a rule and keeps `title`.
 */
export function parseHankoBody<T extends z.ZodType>(ctx: Context, schema: T, title: string): z.output<T> {
  // Go's encoding/json, which Hanko's binding uses, matches a member's name ignoring case
  // when no field has it exactly: `{"User_ID": …}` is `user_id` there, and was missing here.
  const body: unknown = ctx.request.body;
  if ('shape' in schema && body !== null && typeof body === 'object' && !Array.isArray(body))
    ctx.request.body = bindNames(body as Record<string, unknown>, Object.keys(schema.shape as object), true);
  try {
    return parseBody(ctx, schema);
  } catch (caught) {
    if (!(caught instanceof HttpError)) throw caught;
    const unbound = title === HANKO_TITLES.invalid && failsBinding(ctx.request.body, schema);
    throw hankoError(400, unbound ? HANKO_TITLES.unreadable : title, caught.message);
  }
}

/**
 * The values of `given` by the names a schema reads, as Hanko's Go binding finds them: a name
 * not given exactly is looked up ignoring case (echo's query binding and encoding/json alike;
 * `USER_ID=alice` read as no filter listed every user's passkeys). With `keepOthers`, the
 * members no name matches stay as they were (a body's unknown members are the schema's to judge).
 */
export function bindNames(
  given: Record<string, unknown>,
  names: string[],
  keepOthers = false,
): Record<string, unknown> {
  const bound: Record<string, unknown> = {};
  const used = new Set<string>();
  for (const name of names) {
    const key = Object.hasOwn(given, name)
      ? name
      : Object.keys(given).find((other) => other.toLowerCase() === name.toLowerCase());
    if (key === undefined) continue;
    bound[name] = given[key];
    used.add(key);
  }
  if (keepOthers) for (const [key, value] of Object.entries(given)) if (!used.has(key)) bound[key] ??= value;
  return bound;
}

/**
 * Whether the body holds a value of the wrong JSON type anywhere, which Go's decoder refuses
 * before any rule is checked (a missing member found first does not hide it).
 */
function failsBinding(body: unknown, schema: z.ZodType): boolean {
  return (schema.safeParse(body).error?.issues ?? []).some((issue) => {
    if (issue.code !== 'invalid_type') return false;
    let value = body;
    for (const key of issue.path) {
      if (value === null || typeof value !== 'object') return false;
      value = (value as Record<PropertyKey, unknown>)[key];
    }
    return value !== undefined && value !== null;
  });
}
