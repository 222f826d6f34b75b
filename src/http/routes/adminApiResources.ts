import type Router from '@koa/router';
import { z } from 'zod';
import {
  allowMachineClient,
  createResource,
  deleteResource,
  denyMachineClient,
  findResource,
  listResources,
} from '../../oidc/resources.js';
import { notFound } from '../errors.js';
import { apiKeyActor } from '../middleware/apiKey.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';

/** `PUT /resources/{id}/clients/{client_id}`: the scopes the client may get (default: all the API's). */
const machineClientSchema = z
  .object({
    scopes: z
      .array(z.string({ error: 'must be strings' }).max(100), { error: 'must be an array of strings' })
      .max(50, { message: 'at most 50 scopes' })
      .optional(),
  })
  .strict();

const noResource = (id: string) => notFound(`No API (resource) with id ${id}`);

/**
 * /api/admin/resources: APIs registered as resource servers (RFC 8707). Mounted on the
 * admin API's router, so its guards (API key, JSON bodies, validation errors) apply.
 */
export function resourceApiRoutes(router: Router, { db, caches }: Services): void {
  router.get('/resources', async (ctx) => {
    ctx.body = await listResources(db);
  });

  router.post('/resources', async (ctx) => {
    const resource = await createResource(db, ctx.request.body, apiKeyActor(ctx));
    caches.resources.invalidate(resource.identifier);
    ctx.status = 201;
    ctx.set('Location', `/api/admin/resources/${resource.id}`);
    ctx.body = resource;
  });

  /** The API whose id the path names (by id only, as every path here). */
  async function resourceIn(id: string) {
    const resource = await findResource(db, id);
    if (!resource || resource.id !== id) throw noResource(id);
    return resource;
  }

  router.get('/resources/:id', async (ctx) => {
    ctx.body = await resourceIn(ctx.params.id!);
  });

  // Which clients may get client_credentials tokens for the API, and with which scopes.
  router.put('/resources/:id/clients/:clientId', async (ctx) => {
    const { id } = await resourceIn(ctx.params.id!);
    const { scopes } = parseBody(ctx, machineClientSchema);
    const resource = await allowMachineClient(db, id, ctx.params.clientId!, scopes, apiKeyActor(ctx));
    if (!resource) throw noResource(id);
    caches.resources.invalidate(resource.identifier);
    ctx.body = resource;
  });

  router.delete('/resources/:id/clients/:clientId', async (ctx) => {
    const { id } = await resourceIn(ctx.params.id!);
    const resource = await denyMachineClient(db, id, ctx.params.clientId!, apiKeyActor(ctx));
    if (!resource) throw noResource(id);
    caches.resources.invalidate(resource.identifier);
    ctx.body = resource;
  });

  router.delete('/resources/:id', async (ctx) => {
    const resource = await resourceIn(ctx.params.id!);
    await deleteResource(db, resource.id, apiKeyActor(ctx));
    caches.resources.invalidate(resource.identifier);
    ctx.status = 204;
  });
}
