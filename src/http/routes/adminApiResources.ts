import type Router from '@koa/router';
import { createResource, deleteResource, findResource, listResources } from '../../oidc/resources.js';
import { notFound } from '../errors.js';
import { apiKeyActor } from '../middleware/apiKey.js';
import type { Services } from '../services.js';

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

  router.get('/resources/:id', async (ctx) => {
    const resource = await findResource(db, ctx.params.id!);
    if (!resource || resource.id !== ctx.params.id) throw noResource(ctx.params.id!);
    ctx.body = resource;
  });

  router.delete('/resources/:id', async (ctx) => {
    const resource = await findResource(db, ctx.params.id!);
    if (!resource || resource.id !== ctx.params.id) throw noResource(ctx.params.id!);
    await deleteResource(db, resource.id, apiKeyActor(ctx));
    caches.resources.invalidate(resource.identifier);
    ctx.status = 204;
  });
}
