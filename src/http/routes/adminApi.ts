import { bodyParser } from '@koa/bodyparser';
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import { auditEventsPage } from '../../admin/audit.js';
import {
  deleteUser,
  demoteUser,
  disableUser,
  enableUser,
  inviteUser,
  listUsers,
  MAX_USERS_PAGE,
  promoteUser,
} from '../../admin/users.js';
import {
  ClientValidationError,
  createClient,
  deleteClient,
  getClient,
  listClients,
  rotateClientSecret,
  updateClient,
} from '../../oidc/clients.js';
import { ResourceValidationError } from '../../oidc/resources.js';
import { TenantValidationError } from '../../passkeyApi/relyingParty.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { apiKeyActor, requireApiKey } from '../middleware/apiKey.js';
import { JSON_BODY_LIMIT, refuseIllFormedText, refusingUndecodableBodies } from '../middleware/bodies.js';
import { forgetCachesAfterChanges } from '../middleware/cacheChanges.js';
import { sesameRouter } from '../router.js';
import {
  auditEventIdParameter,
  auditFilterSchema,
  emailSchema,
  limitParameter,
  parseBody,
  parseQuery,
} from '../schemas.js';
import type { Services } from '../services.js';
import { adminApiGroupRoutes } from './adminApiGroups.js';
import { keyRotationApiRoutes } from './adminApiKeyRotations.js';
import { mailApiRoutes } from './adminApiMail.js';
import { passkeyTenantApiRoutes } from './adminApiPasskeyTenants.js';
import { resourceApiRoutes } from './adminApiResources.js';

const inviteSchema = z.object({ email: emailSchema, admin: z.boolean().default(false) }).strict();
/** `unverified: true` promotes an account whose address nobody proved (see promoteUser). */
const promoteSchema = z.object({ unverified: z.boolean().default(false) }).strict();
/** `GET /audit-events`: a page of at most `limit` events matching the filters, older than the event `before`. */
const auditQuerySchema = z.object({
  limit: limitParameter(500, 50),
  ...auditFilterSchema,
  before: auditEventIdParameter,
});
/** `GET /users`: a page of at most `limit` users, those matching `q`, after the cursor `after`. */
const usersQuerySchema = z.object({
  limit: limitParameter(MAX_USERS_PAGE, 100),
  q: z
    .string({ error: 'must be given once' })
    .max(200, { error: 'must be at most 200 characters' })
    .optional(),
  after: z
    .string({ error: 'must be given once' })
    .max(400, { error: 'must be at most 400 characters' })
    .optional(),
});
/** The admin API speaks JSON only; a body of another type is refused rather than guessed at. */
async function requireJsonBody(ctx: Context, next: Next) {
  const hasBody = Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '';
  if (hasBody && !ctx.is('application/json')) {
    throw new HttpError(415, 'unsupported_media_type', 'Send the body as application/json');
  }
  await next();
}

/** Secrets appear in some answers (new client secrets); no answer of this API may be cached. */
async function noStore(ctx: Context, next: Next) {
  ctx.set('Cache-Control', 'no-store');
  await next();
}

/** Client and tenant rules broken by the input become a 400 that names the field. */
async function validationErrors(_ctx: Context, next: Next) {
  try {
    await next();
  } catch (error) {
    if (error instanceof ClientValidationError) throw badRequest(error.message, { fields: error.fields });
    if (error instanceof ResourceValidationError) {
      throw badRequest(error.message, { fields: { [error.field]: error.reason } });
    }
    if (error instanceof TenantValidationError) {
      throw badRequest(`${error.field}: ${error.message}`, { fields: { [error.field]: error.message } });
    }
    throw error;
  }
}

const noClient = (id: string) => notFound(`No client with id ${id}`);
const noUser = (id: string) => notFound(`No user with id ${id}`);

/**
 * The admin REST API under /api/admin, for scripts and infrastructure tools: clients,
 * users, passkey API tenants, APIs (resources), key rotations, the audit log and the mail
 * outbox. Callers authenticate with an API key of scope `admin` (`Authorization: Bearer
 * ssk_...`; a `metrics` key gets 403); no cookies are read, so no CSRF token is needed.
 * Every change is audited as `api-key:<id>`.
 */
export function adminApiRoutes(services: Services): Router {
  const { config, db, caches } = services;
  const router = sesameRouter(
    { prefix: '/api/admin' },
    noStore,
    requireApiKey(db, 'admin'),
    forgetCachesAfterChanges(caches.groups, caches.models),
    requireJsonBody,
    refusingUndecodableBodies(
      bodyParser({ enableTypes: ['json'], jsonLimit: JSON_BODY_LIMIT, jsonStrict: true, encoding: 'utf-8' }),
    ),
    refuseIllFormedText,
    validationErrors,
  );

  router.get('/clients', async (ctx) => {
    ctx.body = await listClients(db);
  });

  router.post('/clients', async (ctx) => {
    const { client, client_secret } = await createClient(db, ctx.request.body, apiKeyActor(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/admin/clients/${encodeURIComponent(client.client_id)}`);
    ctx.body = { ...client, ...(client_secret && { client_secret }) };
  });

  router.get('/clients/:id', async (ctx) => {
    const client = await getClient(db, ctx.params.id!);
    if (!client) throw noClient(ctx.params.id!);
    ctx.body = client;
  });

  router.patch('/clients/:id', async (ctx) => {
    const client = await updateClient(db, ctx.params.id!, ctx.request.body, apiKeyActor(ctx));
    caches.clients.invalidate(ctx.params.id!);
    if (!client) throw noClient(ctx.params.id!);
    ctx.body = client;
  });

  router.delete('/clients/:id', async (ctx) => {
    const deleted = await deleteClient(db, ctx.params.id!, apiKeyActor(ctx));
    caches.clients.invalidate(ctx.params.id!);
    if (!deleted) throw noClient(ctx.params.id!);
    ctx.status = 204;
  });

  router.post('/clients/:id/rotate-secret', async (ctx) => {
    const client = await getClient(db, ctx.params.id!);
    if (!client) throw noClient(ctx.params.id!);
    if (client.public) throw badRequest('A public client has no secret to rotate');
    const rotated = await rotateClientSecret(db, client.client_id, apiKeyActor(ctx));
    caches.clients.invalidate(client.client_id);
    if (!rotated) throw noClient(ctx.params.id!);
    ctx.body = rotated;
  });

  // The body stays an array; the next page is in a Link header (RFC 8288), as GitHub's API does.
  router.get('/users', async (ctx) => {
    const { limit, q, after } = parseQuery(ctx, usersQuerySchema);
    const page = await listUsers(db, { search: q, after, limit });
    if (page.next) {
      const next = new URLSearchParams({ limit: String(limit), ...(q && { q }), after: page.next });
      ctx.set('Link', `</api/admin/users?${next}>; rel="next"`);
    }
    ctx.body = page.users;
  });

  router.post('/users/invite', async (ctx) => {
    const input = parseBody(ctx, inviteSchema);
    ctx.status = 201;
    ctx.body = await inviteUser(db, config, input, apiKeyActor(ctx));
  });

  router.post('/users/:id/disable', async (ctx) => {
    const user = await disableUser(db, ctx.params.id!, apiKeyActor(ctx));
    if (!user) throw noUser(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });

  router.post('/users/:id/enable', async (ctx) => {
    const user = await enableUser(db, ctx.params.id!, apiKeyActor(ctx));
    if (!user) throw noUser(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });

  router.post('/users/:id/promote', async (ctx) => {
    const { unverified } = parseBody(ctx, promoteSchema);
    const user = await promoteUser(db, config, ctx.params.id!, apiKeyActor(ctx), { unverified });
    if (!user) throw noUser(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });

  router.post('/users/:id/demote', async (ctx) => {
    const user = await demoteUser(db, ctx.params.id!, apiKeyActor(ctx));
    if (!user) throw noUser(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });

  router.delete('/users/:id', async (ctx) => {
    const deleted = await deleteUser(db, ctx.params.id!, apiKeyActor(ctx));
    if (!deleted) throw noUser(ctx.params.id!);
    caches.users.invalidate(deleted.id);
    ctx.status = 204;
  });

  passkeyTenantApiRoutes(router, { config, db });
  keyRotationApiRoutes(router, { config, db });
  resourceApiRoutes(router, services);
  adminApiGroupRoutes(router, { db, caches });
  mailApiRoutes(router, { db });

  // Older events page by page, as /users does: a script exporting the log reaches all of it,
  // not only the newest 500.
  router.get('/audit-events', async (ctx) => {
    const { limit, before, ...filter } = parseQuery(ctx, auditQuerySchema);
    const page = await auditEventsPage(db, { limit, before, filter });
    if (page.older) {
      const next = new URLSearchParams({
        limit: String(limit),
        ...Object.fromEntries(Object.entries(filter).filter(([, value]) => value)),
        before: page.older,
      });
      ctx.set('Link', `</api/admin/audit-events?${next}>; rel="next"`);
    }
    ctx.body = page.events;
  });

  // Anything else under /api/admin is a JSON 404, not the provider's HTML page.
  router.all('/{*rest}', () => {
    throw notFound('No such admin API endpoint');
  });

  return router;
}
