import { STATUS_CODES } from 'node:http';
import { bodyParser } from '@koa/bodyparser';
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { z } from 'zod';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import {
  finishTenantLogin,
  finishTenantRegistration,
  startTenantLogin,
  startTenantRegistration,
} from '../../passkeyApi/ceremonies.js';
import {
  deleteTenantCredential,
  listTenantCredentials,
  renameTenantCredential,
} from '../../passkeyApi/credentials.js';
import { tenantJwks } from '../../passkeyApi/jwt.js';
import {
  credentialIdSchema,
  credentialRenameSchema,
  credentialsQuerySchema,
  loginInitializeSchema,
  registrationInitializeSchema,
} from '../../passkeyApi/schemas.js';
import { findTenant, tenantKeyMatches } from '../../passkeyApi/tenants.js';
import {
  badRequest,
  HttpError,
  isNulCharacterError,
  notFound,
  nulCharacterError,
  unauthorized,
} from '../errors.js';
import { refuseIllFormedText } from '../middleware/bodies.js';
import { sesameRouter } from '../router.js';
import { authenticationResponseSchema, parseBody, registrationResponseSchema } from '../schemas.js';
import type { Services } from '../services.js';
import { mountMfaRoutes } from './passkeyApiMfa.js';
import { mountTransactionRoutes } from './passkeyApiTransactions.js';

/**
 * A passkey response is one or two kilobytes ("none" attestation); the largest request
 * here is a registration response, so anything past this is refused before it is read.
 */
const PASSKEY_API_BODY_LIMIT = '32kb';

/** The methods the passkey API answers (HEAD with GET; OPTIONS for CORS preflights). */
const PASSKEY_API_METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];

/** Browsers may cache a preflight answer this long (seconds). */
const PREFLIGHT_MAX_AGE = 600;

interface TenantState {
  tenant: StoredTenant;
}

const tenantOf = (ctx: Context): StoredTenant => (ctx.state as TenantState).tenant;

/** Maps any error to the Hanko passkey API shape `{title, details, status}`; the status is the HTTP status. */
function toHankoError(caught: unknown): HttpError {
  if (caught instanceof HttpError) return caught;
  if (isNulCharacterError(caught)) return nulCharacterError();
  const error = caught as { status?: number; statusCode?: number; type?: string };
  const status = error?.status ?? error?.statusCode;
  if (status === 413) return new HttpError(413, 'payload_too_large', 'The request body is too large');
  if (status === 415) return new HttpError(415, 'unsupported_media_type', 'The body must be JSON');
  if (status && status >= 400 && status < 500) return badRequest('Malformed JSON body');
  return new HttpError(500, 'server_error', 'Something went wrong on our side');
}

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
      ctx.body = {
        title: STATUS_CODES[error.status] ?? 'Error',
        details: error.message,
        status: error.status,
      };
    }
  };
}

/**
 * A method the API never uses (TRACE, PROPFIND) is 405 with a body that says so, whatever
 * the path or tenant: without this, the router's 404 left Koa's 501 with a 404 body.
 */
async function refuseOtherMethods(ctx: Context, next: Next) {
  if (!PASSKEY_API_METHODS.includes(ctx.method)) {
    ctx.set('Allow', PASSKEY_API_METHODS.join(', '));
    throw new HttpError(405, 'method_not_allowed', `${ctx.method} is not allowed here`);
  }
  await next();
}

function loadTenant({ db }: Pick<Services, 'db'>) {
  return async function findTenantFromPath(ctx: Context, next: Next) {
    const tenant = await findTenant(db, String(ctx.params.tenantId ?? ''));
    if (!tenant) throw notFound('Tenant not found');
    (ctx.state as TenantState).tenant = tenant;
    await next();
  };
}

/**
 * CORS for the app's frontend, which may call the ceremony endpoints directly: only the
 * tenant's own origins are answered, and only with Content-Type allowed as a header — the
 * API key belongs on the app's server, so a browser cannot send it cross-origin.
 */
async function allowTenantOrigins(ctx: Context, next: Next) {
  ctx.vary('Origin');
  const origin = ctx.get('Origin');
  // "null" (a sandboxed frame, a data: URL) is never a tenant's origin, whatever was stored.
  const allowed = origin !== '' && origin !== 'null' && tenantOf(ctx).origins.includes(origin);
  if (allowed) ctx.set('Access-Control-Allow-Origin', origin);
  if (ctx.method === 'OPTIONS') {
    if (!allowed)
      throw new HttpError(403, 'origin_not_allowed', 'This origin is not allowed for this tenant');
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, PATCH, DELETE');
    ctx.set('Access-Control-Allow-Headers', 'Content-Type');
    ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE));
    ctx.status = 204;
    return;
  }
  await next();
}

/** The `apikey` header (any case) must be the tenant's key; one tenant's key never opens another. */
function checkApiKey(ctx: Context): void {
  const presented = ctx.get('apikey');
  if (!presented) throw unauthorized('The apikey header is missing');
  if (!tenantKeyMatches(tenantOf(ctx), presented))
    throw unauthorized('The API key is not valid for this tenant');
}

async function requireApiKey(ctx: Context, next: Next) {
  checkApiKey(ctx);
  await next();
}

const parseJson = bodyParser({
  enableTypes: ['json'],
  jsonLimit: PASSKEY_API_BODY_LIMIT,
  jsonStrict: true,
  encoding: 'utf-8',
});

/**
 * JSON bodies only, small. An empty body counts as `{}` whatever its content type (Hanko's
 * tutorials send `/login/initialize` that way); a non-empty body must be JSON.
 */
async function jsonBody(ctx: Context, next: Next) {
  const hasBody = ctx.request.length > 0 || ctx.get('Transfer-Encoding') !== '';
  if (hasBody && !ctx.is('application/json')) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      'The body must be JSON (Content-Type: application/json)',
    );
  }
  await parseJson(ctx, () => refuseIllFormedText(ctx, next));
}

function parseQuery<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  const result = schema.safeParse(ctx.query);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw badRequest(`${issue.path.join('.') || 'query'}: ${issue.message}`);
  }
  return result.data;
}

function credentialIdParam(ctx: Context): string {
  const parsed = credentialIdSchema.safeParse(ctx.params.credentialId);
  if (!parsed.success) throw notFound('Credential not found');
  return parsed.data;
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
  rateLimit,
}: Pick<Services, 'config' | 'db' | 'log' | 'rateLimit'>): Router {
  // Limited after CORS, so an app's frontend can read the 429 and its Retry-After.
  const router = sesameRouter(
    { prefix: '/passkey-api/:tenantId' },
    renderPasskeyApiErrors({ log }),
    refuseOtherMethods,
    loadTenant({ db }),
    allowTenantOrigins,
    rateLimit,
  );

  router.post(
    '/registration/initialize',
    requireApiKey,
    jsonBody,
    async function initializeRegistration(ctx: Context) {
      const body = parseBody(ctx, registrationInitializeSchema);
      const publicKey = await startTenantRegistration(db, tenantOf(ctx), {
        userId: body.user_id,
        username: body.username,
        displayName: body.display_name,
        icon: body.icon,
      });
      ctx.body = { publicKey };
    },
  );

  router.post('/registration/finalize', jsonBody, async function finalizeRegistration(ctx: Context) {
    const response = parseBody(ctx, registrationResponseSchema);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { token: await finishTenantRegistration(db, config, tenantOf(ctx), response) };
  });

  router.post('/login/initialize', jsonBody, async function initializeLogin(ctx: Context) {
    const { user_id } = parseBody(ctx, loginInitializeSchema);
    // Naming a user reveals whether they have passkeys here: that needs the key.
    if (user_id != null) checkApiKey(ctx);
    ctx.body = { publicKey: await startTenantLogin(db, tenantOf(ctx), user_id ?? undefined) };
  });

  router.post('/login/finalize', jsonBody, async function finalizeLogin(ctx: Context) {
    const response = parseBody(ctx, authenticationResponseSchema);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { token: await finishTenantLogin(db, config, tenantOf(ctx), response) };
  });

  router.get('/credentials', requireApiKey, async function listCredentials(ctx: Context) {
    const { user_id } = parseQuery(ctx, credentialsQuerySchema);
    ctx.body = await listTenantCredentials(db, tenantOf(ctx).id, user_id);
  });

  router.patch(
    '/credentials/:credentialId',
    requireApiKey,
    jsonBody,
    async function renameCredential(ctx: Context) {
      const id = credentialIdParam(ctx);
      const { name } = parseBody(ctx, credentialRenameSchema);
      await renameTenantCredential(db, tenantOf(ctx).id, id, name);
      ctx.status = 204;
    },
  );

  router.delete('/credentials/:credentialId', requireApiKey, async function deleteCredential(ctx: Context) {
    await deleteTenantCredential(db, tenantOf(ctx).id, credentialIdParam(ctx));
    ctx.status = 204;
  });

  router.get('/.well-known/jwks.json', function publishJwks(ctx: Context) {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = tenantJwks(tenantOf(ctx), config);
  });

  const kit = { tenantOf, requireApiKey, jsonBody };
  mountMfaRoutes(router, { config, db }, kit);
  mountTransactionRoutes(router, { config, db }, kit);

  // Preflights are answered by allowTenantOrigins; anything else under a tenant is unknown.
  router.all('/{*path}', function unknownEndpoint() {
    throw notFound('No such endpoint');
  });
  return router;
}
