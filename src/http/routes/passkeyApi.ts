import { STATUS_CODES } from 'node:http';
import { bodyParser } from '@koa/bodyparser';
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { z } from 'zod';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { AUDIT_LOG_EVENTS, pageTenantAuditLogs } from '../../passkeyApi/auditLog.js';
import {
  finishTenantLogin,
  finishTenantRegistration,
  startTenantLogin,
  startTenantRegistration,
} from '../../passkeyApi/ceremonies.js';
import {
  deleteTenantCredential,
  findTenantCredential,
  pageTenantCredentials,
  renameTenantCredential,
} from '../../passkeyApi/credentials.js';
import {
  HANKO_TITLES,
  hankoCause,
  hankoError,
  loginRefusal,
  registrationRefusal,
  toHankoError,
} from '../../passkeyApi/errors.js';
import { tenantJwks } from '../../passkeyApi/jwt.js';
import { webOrigins } from '../../passkeyApi/relyingParty.js';
import {
  auditLogsQuerySchema,
  credentialIdSchema,
  credentialRenameSchema,
  credentialsQuerySchema,
  loginInitializeSchema,
  registrationInitializeSchema,
  tenantAuthenticationResponseSchema,
  tenantRegistrationResponseSchema,
} from '../../passkeyApi/schemas.js';
import { findTenant } from '../../passkeyApi/tenants.js';
import { HttpError } from '../errors.js';
import { refuseIllFormedText, refusingUndecodableBodies } from '../middleware/bodies.js';
import { sesameRouter } from '../router.js';
import type { Services } from '../services.js';
import {
  type AuditState,
  auditedAs,
  bindNames,
  countCallToNoTenant,
  limitPerIpBeforeTenant,
  limitPerTenantOrIp,
  parseHankoBody,
  presentsTenantKey,
  requestUrl,
  setPageHeaders,
  subjectOf,
  tagRequest,
  userHandleOf,
  withoutTransports,
} from './passkeyApiKit.js';
import { mountMfaRoutes } from './passkeyApiMfa.js';
import { mountTransactionRoutes } from './passkeyApiTransactions.js';

/**
 * A passkey response is one or two kilobytes ("none" attestation); the largest request
 * here is a registration response, so anything past this is refused before it is read.
 */
const PASSKEY_API_BODY_LIMIT = '32kb';

/** The methods the passkey API answers (HEAD with GET; OPTIONS for CORS preflights). */
const PASSKEY_API_METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];

/** Browsers may cache a preflight answer this long (seconds): Hanko's value, the most Chromium keeps. */
const PREFLIGHT_MAX_AGE = 7200;

/** Access-Control-Request-Headers as browsers send it: header names (RFC 9110 tokens), comma-separated. */
const HEADER_NAME_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

interface TenantState extends AuditState {
  tenant: StoredTenant;
}

const tenantOf = (ctx: Context): StoredTenant => (ctx.state as TenantState).tenant;

function renderPasskeyApiErrors({ log }: Pick<Services, 'log'>) {
  return async function renderHankoErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (caught) {
      const error = toHankoError(caught);
      if (error.status >= 500) {
        log.error('passkey api request failed', {
          method: ctx.method,
          path: ctx.path,
          error: String((caught as Error)?.stack ?? caught),
        });
      }
      ctx.status = error.status;
      // As Hanko: an error without a cause of its own (a 500) has no `details`.
      ctx.body =
        error.status >= 500
          ? { title: error.message, status: error.status }
          : { title: error.message, details: hankoCause(error), status: error.status };
    }
  };
}

/**
 * A method the API never uses (PUT, TRACE, PROPFIND) is refused before the tenant is looked
 * up, as any other method on a path with no route of it (`unknownEndpoint` below): 405 with
 * the path's own methods in `Allow`, or 404 for a path the API does not have. Without this,
 * the router's 404 left Koa's 501 with a 404 body.
 */
function refuseOtherMethods(routerOf: () => Router) {
  return async function refuseMethodsTheApiNeverUses(ctx: Context, next: Next) {
    if (!PASSKEY_API_METHODS.includes(ctx.method)) refuseAtPath(routerOf(), ctx);
    await next();
  };
}

/** The refusal of a request no route of its method answers: 405 on a path of the API, else 404. */
function refuseAtPath(router: Router, ctx: Context): never {
  const allowed = methodsAt(router, ctx.path);
  if (allowed.length > 0) throw methodNotAllowed(ctx, allowed);
  throw hankoError(404, STATUS_CODES[404]!, 'No such endpoint');
}

/** Hanko's (echo's) 405, `Method Not Allowed`, with the methods the path answers in `Allow`. */
function methodNotAllowed(ctx: Context, allowed: readonly string[]): HttpError {
  ctx.set('Allow', allowed.join(', '));
  return hankoError(405, STATUS_CODES[405]!, `${ctx.method} is not allowed here`);
}

/** Name of the route that answers every path under a tenant no other route has. */
const UNKNOWN_ENDPOINT = 'passkey-api-unknown-endpoint';

/** The methods of the routes (other than the catch-all) whose path is this one; none for an unknown path. */
function methodsAt(router: Router, path: string): string[] {
  const layers = router.match(path, '').path.filter((layer) => layer.name !== UNKNOWN_ENDPOINT);
  return [...new Set(layers.flatMap((layer) => layer.methods))];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function loadTenant({ db }: Pick<Services, 'db'>, countCallToNoTenant: (ctx: Context) => Promise<void>) {
  return async function findTenantFromPath(ctx: Context, next: Next) {
    const tenantId = String(ctx.params.tenantId ?? '');
    if (!UUID.test(tenantId)) throw hankoError(400, HANKO_TITLES.tenantIdInvalid);
    const tenant = await findTenant(db, tenantId);
    if (!tenant) {
      await countCallToNoTenant(ctx);
      throw hankoError(404, HANKO_TITLES.tenantNotFound);
    }
    (ctx.state as TenantState).tenant = tenant;
    await next();
  };
}

/**
 * CORS for the app's frontend, which may call the ceremony endpoints directly: only the
 * tenant's own origins are answered, and those as Hanko answers them (echo's CORS): with
 * credentials allowed, so a frontend that fetches with `credentials: 'include'` can read the
 * answer, and with the request headers the preflight asks for. The API reads no cookie, so
 * credentials give a page nothing it could not send anyway; an origin the tenant does not
 * list gets no CORS header at all (never `*`).
 */
async function allowTenantOrigins(ctx: Context, next: Next) {
  ctx.vary('Origin');
  const origin = ctx.get('Origin');
  // "null" (a sandboxed frame, a data: URL) is never a tenant's origin, whatever was stored.
  const allowed = origin !== '' && origin !== 'null' && webOrigins(tenantOf(ctx).origins).includes(origin);
  if (allowed) {
    ctx.set('Access-Control-Allow-Origin', origin);
    ctx.set('Access-Control-Allow-Credentials', 'true');
  }
  if (ctx.method === 'OPTIONS') {
    if (!allowed) throw hankoError(403, STATUS_CODES[403]!, 'This origin is not allowed for this tenant');
    ctx.vary('Access-Control-Request-Headers');
    const requested = ctx.get('Access-Control-Request-Headers').trim();
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, PATCH, DELETE');
    ctx.set('Access-Control-Allow-Headers', HEADER_NAME_LIST.test(requested) ? requested : 'Content-Type');
    ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE));
    ctx.status = 204;
    return;
  }
  await next();
}

/**
 * The `apikey` header (any case) must be the tenant's key; one tenant's key never opens
 * another. Every answer to a keyed call, refusals included, is `no-store`: the key travels
 * in a header that shared caches do not know as a credential (RFC 9111 §3.5 names only
 * Authorization), so they would keep a tenant's passkeys or audit log for the next caller.
 */
function checkApiKey(ctx: Context): void {
  ctx.set('Cache-Control', 'no-store');
  if (!presentsTenantKey(ctx)) {
    throw hankoError(
      401,
      HANKO_TITLES.apiKeyInvalid,
      'the apiKey header is missing or not a key of this tenant',
    );
  }
}

async function requireApiKey(ctx: Context, next: Next) {
  checkApiKey(ctx);
  await next();
}

const JSON_PARSER_OPTIONS = {
  enableTypes: ['json' as const],
  jsonLimit: PASSKEY_API_BODY_LIMIT,
  jsonStrict: true,
  encoding: 'utf-8',
};

const parseJson = refusingUndecodableBodies(bodyParser(JSON_PARSER_OPTIONS));

const parseJsonOfAnyType = refusingUndecodableBodies(
  bodyParser({ ...JSON_PARSER_OPTIONS, detectJSON: () => true }),
);

/**
 * JSON bodies only, small. An empty body counts as `{}` whatever its content type (Hanko's
 * tutorials send `/login/initialize` that way); a non-empty body must be JSON.
 */
async function jsonBody(ctx: Context, next: Next) {
  const hasBody = ctx.request.length > 0 || ctx.get('Transfer-Encoding') !== '';
  if (hasBody && !ctx.is('application/json')) {
    throw hankoError(415, STATUS_CODES[415]!, 'The body must be JSON (Content-Type: application/json)');
  }
  await parseJson(ctx, () => refuseIllFormedText(ctx, next));
}

/**
 * The body of a `finalize` call (the credential or assertion the browser made) is read as
 * JSON whatever its Content-Type says, or without one, as Hanko's server reads it
 * (go-webauthn parses the body as it comes): an app's frontend moving from Hanko may send it
 * as `text/plain` (a fetch with a string body and no headers). A body that is not JSON is
 * still 400, one over the limit 413.
 */
async function jsonBodyOfAnyType(ctx: Context, next: Next) {
  await parseJsonOfAnyType(ctx, () => refuseIllFormedText(ctx, next));
}

/**
 * The query string by its schema, refused in Hanko's words: `titleOf` gives the title for the
 * first rule it breaks, our reason is the cause.
 */
function parseQuery<T extends z.ZodObject>(
  ctx: Context,
  schema: T,
  titleOf: (issue: z.core.$ZodIssue) => string,
): z.output<T> {
  const result = schema.safeParse(bindNames(ctx.query, Object.keys(schema.shape)));
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw hankoError(400, titleOf(issue), `${issue.path.join('.') || 'query'}: ${issue.message}`);
  }
  return result.data;
}

/**
 * As Hanko's credentials handler: a value its binding cannot read (`page=abc`, `per_page=1.5`)
 * is "unable to process request", one that breaks a rule (`order=sideways`) "unable to
 * validate request".
 */
const credentialsQueryTitle = (issue: z.core.$ZodIssue) =>
  issue.code === 'invalid_type' ? HANKO_TITLES.unreadable : HANKO_TITLES.invalid;

/** As Hanko's audit log handler: every refused query is "unable to list audit logs". */
const auditLogsQueryTitle = () => HANKO_TITLES.auditLogsUnreadable;

function credentialIdParam(ctx: Context): string {
  const id = String(ctx.params.credentialId ?? '');
  if (!credentialIdSchema.safeParse(id).success) {
    throw hankoError(404, `credential with id '${id.slice(0, 64)}' not found`);
  }
  return id;
}

/**
 * The passkey API, compatible with Hanko's: apps that run the WebAuthn ceremony in their own
 * pages ask for options and send back the result; a JWT tells their backend who signed in.
 * Base URL `${ISSUER}/passkey-api`, then `/{tenant_id}/...` as with Hanko. No CSRF token: it
 * is an API called cross-origin, protected by the API key where Hanko requires one, by the
 * tenant's origins and RP ID in every WebAuthn verification, and by single-use challenges.
 */
export function passkeyApiRoutes({
  config,
  db,
  log,
  hits,
  rateLimit,
}: Pick<Services, 'config' | 'db' | 'log' | 'hits' | 'rateLimit'>): Router {
  // Tagged first, so the earliest refusals (405, a tenant id that is no UUID or unknown) carry
  // their X-Request-Id too. Limited per IP before the tenant's lookup (a call without a key,
  // a preflight), so no caller makes lookups without end; a call with a key once the tenant
  // is known: per tenant for the app's server (its API key), per IP for a wrong key or none.
  const router = sesameRouter(
    { prefix: '/passkey-api/:tenantId' },
    renderPasskeyApiErrors({ log }),
    tagRequest,
    // The router, once made: the API's own paths say which methods they answer.
    refuseOtherMethods(() => router),
    limitPerIpBeforeTenant({ config, rateLimit }),
    loadTenant({ db }, countCallToNoTenant({ config, rateLimit })),
    allowTenantOrigins,
    limitPerTenantOrIp({ config, hits, rateLimit }),
  );

  router.post(
    '/registration/initialize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.registrationInit),
    async function initializeRegistration(ctx: Context) {
      const body = parseHankoBody(ctx, registrationInitializeSchema, HANKO_TITLES.invalid);
      (ctx.state as TenantState).auditActor = body.user_id;
      const publicKey = await startTenantRegistration(db, tenantOf(ctx), {
        userId: body.user_id,
        username: body.username,
        displayName: body.display_name,
        icon: body.icon,
      });
      ctx.body = { publicKey };
    },
  );

  router.post(
    '/registration/finalize',
    jsonBodyOfAnyType,
    auditedAs(db, AUDIT_LOG_EVENTS.registrationFinal),
    async function finalizeRegistration(ctx: Context) {
      const response = parseHankoBody(
        ctx,
        tenantRegistrationResponseSchema,
        HANKO_TITLES.unparsableCreationResponse,
      );
      ctx.set('Cache-Control', 'no-store');
      let token: string;
      try {
        token = await finishTenantRegistration(db, config, tenantOf(ctx), response);
      } catch (caught) {
        throw await registrationRefusal(caught, tenantOf(ctx), response);
      }
      (ctx.state as TenantState).auditActor = subjectOf(token);
      ctx.body = { token };
    },
  );

  router.post(
    '/login/initialize',
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.authenticationInit),
    async function initializeLogin(ctx: Context) {
      const { user_id } = parseHankoBody(ctx, loginInitializeSchema, HANKO_TITLES.invalid);
      // Naming a user reveals whether they have passkeys here: that needs the key.
      if (user_id != null) {
        (ctx.state as TenantState).auditActor = user_id;
        if (ctx.get('apikey').trim() === '') throw hankoError(401, HANKO_TITLES.apiKeyMissing);
        checkApiKey(ctx);
      }
      try {
        const publicKey = await startTenantLogin(db, tenantOf(ctx), user_id ?? undefined);
        ctx.body = { publicKey: withoutTransports(publicKey) };
      } catch (caught) {
        // As Hanko: an unknown user is 404 "user not found".
        throw caught instanceof HttpError && caught.status === 404
          ? hankoError(404, HANKO_TITLES.userNotFound)
          : caught;
      }
    },
  );

  router.post(
    '/login/finalize',
    jsonBodyOfAnyType,
    auditedAs(db, AUDIT_LOG_EVENTS.authenticationFinal),
    async function finalizeLogin(ctx: Context) {
      const response = parseHankoBody(ctx, tenantAuthenticationResponseSchema, HANKO_TITLES.unparsableLogin);
      (ctx.state as TenantState).auditActor = userHandleOf(response.response.userHandle);
      ctx.set('Cache-Control', 'no-store');
      let token: string;
      try {
        token = await finishTenantLogin(db, config, log, tenantOf(ctx), response);
      } catch (caught) {
        throw loginRefusal(caught);
      }
      (ctx.state as TenantState).auditActor = subjectOf(token);
      ctx.body = { token };
    },
  );

  router.get('/credentials', requireApiKey, async function listCredentials(ctx: Context) {
    const query = parseQuery(ctx, credentialsQuerySchema, credentialsQueryTitle);
    const page = { page: query.page, perPage: query.per_page };
    const { credentials, total } = await pageTenantCredentials(db, tenantOf(ctx).id, {
      // As Hanko: an empty user_id is no filter.
      userId: query.user_id || undefined,
      order: query.order,
      ...page,
    });
    setPageHeaders(ctx, requestUrl(ctx, config, '/credentials'), total, page);
    ctx.body = credentials;
  });

  router.get('/credentials/:credentialId', requireApiKey, async function showCredential(ctx: Context) {
    ctx.body = await findTenantCredential(db, tenantOf(ctx).id, credentialIdParam(ctx));
  });

  router.patch(
    '/credentials/:credentialId',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.credentialUpdated),
    async function renameCredential(ctx: Context) {
      const id = credentialIdParam(ctx);
      const { name } = parseHankoBody(ctx, credentialRenameSchema, HANKO_TITLES.invalid);
      (ctx.state as TenantState).auditActor = await renameTenantCredential(db, tenantOf(ctx).id, id, name);
      ctx.status = 204;
    },
  );

  router.delete(
    '/credentials/:credentialId',
    requireApiKey,
    auditedAs(db, AUDIT_LOG_EVENTS.credentialDeleted),
    async function deleteCredential(ctx: Context) {
      const id = credentialIdParam(ctx);
      (ctx.state as TenantState).auditActor = await deleteTenantCredential(db, tenantOf(ctx).id, id);
      ctx.status = 204;
    },
  );

  router.get('/audit_logs', requireApiKey, async function listAuditLogs(ctx: Context) {
    const query = parseQuery(ctx, auditLogsQuerySchema, auditLogsQueryTitle);
    const page = { page: query.page, perPage: query.per_page };
    const { entries, total } = await pageTenantAuditLogs(
      db,
      tenantOf(ctx).id,
      {
        startTime: query.start_time,
        endTime: query.end_time,
        types: query.type,
        actorUserId: query.actor_user_id,
        sourceIp: query.meta_source_ip,
        search: query.q,
      },
      page,
    );
    setPageHeaders(ctx, requestUrl(ctx, config, '/audit_logs'), total, page);
    ctx.body = entries;
  });

  router.get('/.well-known/jwks.json', async function publishJwks(ctx: Context) {
    // Hanko's value: apps cache the keys ten minutes.
    ctx.set('Cache-Control', 'max-age=600');
    ctx.body = await tenantJwks(db, tenantOf(ctx), config);
  });

  const kit = { tenantOf, requireApiKey, jsonBody, jsonBodyOfAnyType };
  mountMfaRoutes(router, { config, db, log }, kit);
  mountTransactionRoutes(router, { config, db, log }, kit);

  // Preflights are answered by allowTenantOrigins. A path of the API asked with another
  // method is 405, as Hanko's router answers it; any other path under a tenant is unknown.
  router.all(UNKNOWN_ENDPOINT, '/{*path}', function unknownEndpoint(ctx: Context) {
    refuseAtPath(router, ctx);
  });
  return router;
}
